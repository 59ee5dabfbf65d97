"""Constrained JSON answers always finish and validate against the client's schema: random schemas through the
engine with an untrained model (a real one with LLMOPS_REAL_MODEL_DIR, slow), 20 concurrent json_schema requests
per schema through the official openai client against a real server, and a 400 for a max_tokens too small."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, example, given, settings

pytest.importorskip("xgrammar")
openai = pytest.importorskip("openai")

from tests.serving.concurrent import assert_all_valid  # noqa: E402
from tests.serving.strategies import schemas  # noqa: E402
from tests.serving.test_schema_bounds import RECEIPT  # noqa: E402

from llmops.evaluation.schema_bounds import narrow_schema  # noqa: E402
from llmops.evaluation.schema_size import max_json_bytes  # noqa: E402
from llmops.serving.engine import Completion, Engine, GenRequest  # noqa: E402

LINE_ITEMS = {
    "type": "object",
    "required": ["lines"],
    "properties": {
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["description", "amount"],
                "properties": {"description": {"type": "string"}, "amount": {"type": "number"}},
            },
        }
    },
}
NESTED = {
    "type": "object",
    "required": ["customer", "order"],
    "properties": {
        "customer": {
            "type": "object",
            "required": ["name", "address"],
            "properties": {
                "name": {"type": "string"},
                "address": {
                    "type": "object",
                    "required": ["city", "country"],
                    "properties": {"city": {"type": "string"}, "country": {"enum": ["DE", "FR", "US"]}},
                },
            },
        },
        "order": {
            "type": "object",
            "required": ["id", "total", "tags"],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "total": {"type": "number", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}},
            },
        },
    },
}
SHORT_PATTERNS = ["^[A-Z]{2}[0-9]+$", "[0-9]{3}"]
STRING_MAX = 8
CONTEXT = 2048


@pytest.fixture(scope="module")
def engine(tiny_idp: dict[str, Path]) -> Any:
    from llmops.models.loader import load_for_inference

    eng = Engine(*load_for_inference(tiny_idp["model"]), json_string_max=STRING_MAX, name="tiny")
    yield eng
    eng.close()


def _budget(engine: Engine, schema: dict) -> int:
    """max_tokens enough for the longest answer the narrowed schema allows (a token is at least one byte)."""
    longest = max_json_bytes(narrow_schema(schema, engine.json_string_max))
    assert longest is not None
    return longest + 1


def _answer(
    engine: Engine, schema: dict, prompt_ids: list[int], max_tokens: int, temperature: float = 0.0
) -> Completion:
    constraint = engine.constraint("json_schema", schema)
    req = GenRequest(
        prompt_ids=prompt_ids,
        max_tokens=max_tokens,
        temperature=temperature,
        grammar=constraint.grammar,
        min_tokens=constraint.min_tokens,
    )
    return asyncio.run(engine.run(req))


def _check_answer(engine: Engine, schema: dict, prompt_ids: list[int]) -> None:
    budget = _budget(engine, schema)
    assume(len(prompt_ids) + budget <= (engine.max_positions or CONTEXT))
    out = _answer(engine, schema, prompt_ids, budget)
    assert out.finish_reason == "stop", (out, narrow_schema(schema, engine.json_string_max))
    jsonschema.validate(json.loads(out.text), schema)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(schema=schemas(SHORT_PATTERNS, max_leaves=4))
@example(schema={"enum": ["\x7f"]})  # written as "\u007f": 8 bytes, not the 3 a raw DEL takes
def test_random_schemas_always_get_a_valid_answer(engine: Engine, schema: dict) -> None:
    _check_answer(engine, schema, engine.encode_text("Answer in JSON:"))


@pytest.fixture(scope="module")
def real_model(request: pytest.FixtureRequest) -> str:
    """LLMOPS_REAL_MODEL_DIR (e.g. a fine-tuned quickstart model), else the untrained SmolLM2 built in."""
    return os.environ.get("LLMOPS_REAL_MODEL_DIR") or str(request.getfixturevalue("smollm2_dir"))


@pytest.mark.slow
@pytest.mark.timeout(1800)  # SmolLM2 on CPU, ten schemas
def test_random_schemas_always_get_a_valid_answer_from_a_real_model(real_model: str) -> None:
    real = Engine.load(real_model)

    @settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(schema=schemas(SHORT_PATTERNS, max_leaves=4))
    def check(schema: dict) -> None:
        ask = f"Reply with one JSON value for this JSON Schema: {json.dumps(schema)}"
        _check_answer(real, schema, real.encode_chat([{"role": "user", "content": ask}]))

    try:
        check()
    finally:
        real.close()


def test_an_answer_complete_at_exactly_max_tokens_is_a_stop(engine: Engine) -> None:
    prompt = engine.encode_text("Receipt:")
    full = _answer(engine, RECEIPT, prompt, _budget(engine, RECEIPT))
    assert full.finish_reason == "stop"
    exact = _answer(engine, RECEIPT, prompt, full.completion_tokens - 1)  # the same greedy answer, without EOS
    assert (exact.text, exact.finish_reason) == (full.text, "stop")


def test_the_shortest_answer_length_is_a_lower_bound(engine: Engine) -> None:
    text = '{"merchant": "", "total": 0, "paid": true, "currency": "USD", "items": 0}'
    assert engine.constraint("json_schema", RECEIPT).min_tokens == engine.fewest_tokens(text)
    assert 0 < engine.fewest_tokens(text) <= len(engine.encode_text(text))


@pytest.fixture(scope="module")
def served(engine: Engine) -> Any:
    from tests.serving.test_serve import _Server

    from llmops.serving.app import create_app

    json_engine = Engine(
        engine.model, engine.tokenizer, max_batch_size=8, max_queue=64, json_string_max=24, name="tiny"
    )
    srv = _Server(create_app(json_engine, max_tokens_limit=CONTEXT - 64, served_name="tiny-json"))
    srv.engine = json_engine
    srv.client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=300)
    yield srv
    srv.stop()
    json_engine.close()


@pytest.mark.integration
@pytest.mark.parametrize("schema", [RECEIPT, LINE_ITEMS, NESTED], ids=["receipt", "line-items", "nested"])
def test_twenty_concurrent_json_schema_requests_all_validate(served: Any, schema: dict) -> None:
    budget = _budget(served.engine, schema)
    assert budget <= 1500  # the narrowed schema's longest answer fits a typical max_tokens
    assert_all_valid(served.client, "tiny-json", schema, lambda i: f"Extract document {i} as JSON", budget)


def test_open_bounds_tighten_until_the_longest_answer_fits_max_tokens(engine: Engine) -> None:
    wide = Engine(engine.model, engine.tokenizer, json_string_max=128, name="tiny")
    try:
        loose = max_json_bytes(narrow_schema(LINE_ITEMS, 128))
        assert loose > 300  # 8 items of 128-character strings
        prompt = wide.encode_text("Lines:")
        for temperature in (0.0, 1.0):
            constraint = wide.constraint("json_schema", LINE_ITEMS, max_tokens=120)
            req = GenRequest(
                prompt_ids=prompt,
                max_tokens=120,
                temperature=temperature,
                grammar=constraint.grammar,
                min_tokens=constraint.min_tokens,
            )
            out = asyncio.run(wide.run(req))
            assert out.finish_reason == "stop", out
            jsonschema.validate(json.loads(out.text), LINE_ITEMS)
        # A schema's own bounds are kept: only the open ones tighten.
        bounded = {**LINE_ITEMS, "properties": {"lines": {**LINE_ITEMS["properties"]["lines"], "minItems": 3}}}
        caps = wide.json_grammar().caps(bounded, 120)
        assert narrow_schema(bounded, *caps)["properties"]["lines"]["maxItems"] >= 3
    finally:
        wide.close()


@pytest.mark.integration
def test_max_tokens_below_the_shortest_answer_is_a_400(served: Any) -> None:
    needed = served.engine.constraint("json_schema", RECEIPT).min_tokens
    fmt = {"type": "json_schema", "json_schema": {"name": "receipt", "schema": RECEIPT}}
    messages = [{"role": "user", "content": "Receipt"}]
    with pytest.raises(openai.BadRequestError) as caught:
        served.client.chat.completions.create(
            model="tiny-json", messages=messages, max_tokens=needed - 1, response_format=fmt
        )
    error = caught.value.body
    assert caught.value.status_code == 400 and error["param"] == "max_tokens"
    assert error["code"] == "max_tokens_too_small" and str(needed) in error["message"]
    out = served.client.chat.completions.create(
        model="tiny-json", messages=messages, max_tokens=needed, response_format=fmt, temperature=0
    )
    assert out.choices[0].finish_reason in ("stop", "length")


@pytest.fixture(scope="module")
def real_served(real_model: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.serving.test_serve import _Server

    from llmops.quickstart.idp_data import generate_idp_dataset
    from llmops.serving.app import create_app

    data = generate_idp_dataset(tmp_path_factory.mktemp("idp"), 4, 1, seed=3)
    eng = Engine.load(real_model, max_batch_size=20, max_queue=64)
    srv = _Server(create_app(eng, max_tokens_limit=1024, served_name="real"))
    srv.engine, srv.data = eng, data
    srv.client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=600)
    yield srv
    srv.stop()
    eng.close()


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(1800)  # SmolLM2 on CPU, 20 answers of up to 256 tokens (the client waits 600 s)
@pytest.mark.parametrize("name", ["quickstart", "receipt", "line-items", "nested"])
def test_a_real_model_answers_twenty_concurrent_json_schema_requests(real_served: Any, name: str) -> None:
    """The real model (SmolLM2, or LLMOPS_REAL_MODEL_DIR) behind `llmops serve`, the official openai client, 20
    requests at once, max_tokens 256: every answer finishes, parses and validates against the client's schema."""
    schema = {
        "quickstart": json.loads(Path(real_served.data.schema).read_text()),
        "receipt": RECEIPT,
        "line-items": LINE_ITEMS,
        "nested": NESTED,
    }[name]
    document = Path(real_served.data.sample_document).read_text()
    assert_all_valid(
        real_served.client,
        "real",
        schema,
        max_tokens=256,
        sampled=0.8,
        prompt=lambda i: f"Extract the fields from the document as JSON (request {i}).\nDocument:\n{document}",
    )
