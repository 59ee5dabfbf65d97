"""An IDP model carries its schema (llmops_schema.json, written when the run saves it); `llmops serve` constrains
requests without a response_format to it, and `{"type": "text"}` opts out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

pytest.importorskip("xgrammar")


def _valid(text: str, schema: dict) -> bool:
    try:
        jsonschema.validate(json.loads(text), schema)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def test_saved_idp_model_is_served_constrained_to_its_schema(tmp_path: Path, tiny_idp: dict[str, Path]) -> None:
    from fastapi.testclient import TestClient

    from llmops.models.export import SCHEMA_FILE, save_outputs
    from llmops.models.loader import load_for_inference
    from llmops.serving.launch import build

    schema = json.loads(Path(tiny_idp["schema"]).read_text())
    model, tokenizer = load_for_inference(tiny_idp["model"])
    outputs = save_outputs(model, tokenizer, tmp_path / "model", merge=True, schema=schema)
    assert json.loads((outputs["merged"] / SCHEMA_FILE).read_text()) == schema
    app = build(str(outputs["merged"]), json_string_max=16, served_name="idp")
    with TestClient(app) as client:
        for i in range(3):
            body = {
                "model": "idp",
                "max_tokens": 400,
                "messages": [{"role": "user", "content": f"Extract the fields of document {i}."}],
            }
            answer = client.post("/v1/chat/completions", json=body).json()
            choice = answer["choices"][0]
            assert choice["finish_reason"] == "stop", answer
            jsonschema.validate(json.loads(choice["message"]["content"]), schema)
        free = client.post(
            "/v1/chat/completions", json={**body, "max_tokens": 6, "response_format": {"type": "text"}}
        ).json()
        # Unconstrained: a random model's 6 tokens are cut off, or are no answer to the schema.
        text, reason = free["choices"][0]["message"]["content"], free["choices"][0]["finish_reason"]
        assert free["usage"]["completion_tokens"] <= 6
        assert reason == "length" or not _valid(text, schema), (text, reason)
    app.state.engine.close()


def test_a_missing_schema_file_is_a_clear_error(tmp_path: Path, tiny_idp: dict[str, Path]) -> None:
    from llmops.errors import ConfigError
    from llmops.serving.launch import build

    folder = tmp_path / "m"
    shutil.copytree(tiny_idp["model"], folder)
    with pytest.raises(ConfigError, match="no such file"):
        build(str(folder), schema=str(tmp_path / "missing.json"))


def test_the_quickstart_schema_compiles_at_the_default_string_cap(tiny_idp: dict[str, Path]) -> None:
    """xgrammar 0.2.8 fails on bounded strings much past 128 characters; the default cap must compile."""
    from llmops.models.loader import load_for_inference
    from llmops.serving.engine import MAX_STRING_REPEAT, Engine, narrow_schema

    schema = json.loads(Path(tiny_idp["schema"]).read_text())
    engine = Engine(*load_for_inference(tiny_idp["model"]))
    try:
        assert engine.grammar("json_schema", schema) is not None
        wide = narrow_schema({"type": "string", "maxLength": 1000}, None)
        assert wide["pattern"].endswith(f"{{0,{MAX_STRING_REPEAT}}}$")
    finally:
        engine.close()
