"""`llmops serve BASE --adapter NAME=PATH`: the request's `model` picks the LoRA adapter or the base, and one batch
mixes them (peft's adapter_names)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("xgrammar")


def _adapter(base: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random (non-zero) weights on the tiny model: it changes the greedy answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    return out


def _direct(base: Path, adapter: Path | None, prompt_ids: list[int], n: int) -> list[int]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    with torch.inference_mode():
        out = model.eval().generate(torch.tensor([prompt_ids]), max_new_tokens=n, do_sample=False, eos_token_id=None)
    return out[0, len(prompt_ids) :].tolist()


def test_model_field_selects_the_adapter_in_a_mixed_batch(tmp_path: Path, tiny_idp: dict[str, Path]) -> None:
    from fastapi.testclient import TestClient

    from llmops.serving.launch import build

    base = tiny_idp["model"]
    a = _adapter(base, tmp_path / "a", 1)
    app = build(str(base), adapters=[f"alpha={a}"], served_name="base", batch_wait_ms=200, json_string_max=16)
    engine = app.state.engine
    messages = [{"role": "user", "content": "Extract the fields."}]
    with TestClient(app) as client:
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["base", "alpha"]

        def ask(model: str) -> dict:
            body = {
                "model": model,
                "messages": messages,
                "max_tokens": 12,
                "temperature": 0,
                "response_format": {"type": "text"},
            }
            return client.post("/v1/chat/completions", json=body).json()

        calls = engine.generate_calls
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(ask, ["base", "alpha", "base", "alpha"]))
        assert engine.generate_calls - calls < 4  # served together, not one by one
        texts = [a["choices"][0]["message"]["content"] for a in answers]
        assert texts[0] == texts[2] and texts[1] == texts[3] and texts[0] != texts[1]
        assert client.post("/v1/chat/completions", json={"model": "beta", "messages": messages}).status_code == 404
    prompt_ids = engine.encode_chat(messages)
    tok = engine.tokenizer
    expected_base = tok.decode(_direct(base, None, prompt_ids, 12), skip_special_tokens=True)
    expected_alpha = tok.decode(_direct(base, a, prompt_ids, 12), skip_special_tokens=True)
    assert texts[0] == expected_base.strip() or texts[0] == expected_base
    assert texts[1] == expected_alpha.strip() or texts[1] == expected_alpha
    engine.close()


def test_an_adapter_folder_that_does_not_exist_is_a_clear_error(tiny_idp: dict[str, Path]) -> None:
    from llmops.errors import ConfigError
    from llmops.serving.launch import build

    with pytest.raises(ConfigError, match="does not exist"):
        build(str(tiny_idp["model"]), adapters=["alpha=/no/such/adapter"])
