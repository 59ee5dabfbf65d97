"""Tests for the tiny offline model builder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops.models.tiny import build_tiny_model

TEXTS = [
    "Invoice No: INV-20391\nDate: 2024-03-15\nVendor: Acme Widgets Ltd\nTotal: 1,234.50 EUR",
    '{"invoice_number":"INV-20391","invoice_date":"2024-03-15","total_amount":"1234.50"}',
] * 10


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "model"
    return build_tiny_model(out, TEXTS, vocab_size=300, hidden_size=32, num_layers=1, num_heads=2, seed=3)


@pytest.fixture(scope="module")
def loaded(tiny_dir: Path):  # noqa: ANN201
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_dir), AutoTokenizer.from_pretrained(tiny_dir)


def test_saves_safetensors_and_tokenizer(tiny_dir: Path) -> None:
    assert (tiny_dir / "model.safetensors").is_file()
    assert (tiny_dir / "tokenizer.json").is_file()
    config = json.loads((tiny_dir / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert config["tie_word_embeddings"] is True
    assert config["hidden_size"] == 32 and config["num_hidden_layers"] == 1


def test_special_tokens_and_vocab(loaded) -> None:  # noqa: ANN001
    model, tok = loaded
    assert tok.eos_token == "<|end|>" and tok.pad_token == "<|pad|>"
    assert tok.pad_token_id != tok.eos_token_id
    assert model.config.vocab_size == len(tok) <= 300
    assert model.config.eos_token_id == tok.eos_token_id
    assert tok.convert_tokens_to_ids("<|user|>") != tok.unk_token_id


def test_digits_are_single_tokens_and_text_round_trips(loaded) -> None:  # noqa: ANN001
    _, tok = loaded
    text = "Total: 98,765.43 on 2031-12-09 by Zorblax Qyx"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    pieces = [tok.decode([i]) for i in ids]
    digits = [p for p in pieces if any(c.isdigit() for c in p)]
    assert digits and all(len(p) == 1 for p in digits)
    assert tok.decode(ids) == text


def test_name_tokenized_same_in_document_and_json(loaded) -> None:  # noqa: ANN001
    _, tok = loaded
    in_doc = tok.tokenize("Vendor: Acme Widgets")
    in_json = tok.tokenize('{"vendor_name":"Acme Widgets"}')
    name = tok.tokenize("Acme Widgets")
    assert in_doc[-len(name) :] == name
    assert in_json[-len(name) - 1 : -1] == name


def test_chat_template_prompt_is_prefix_and_ends_with_eos(loaded) -> None:  # noqa: ANN001
    _, tok = loaded
    prompt = [{"role": "user", "content": "Document:\nTotal: 12"}]
    completion = [{"role": "assistant", "content": '{"total":"12"}'}]
    p_text = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(prompt + completion, tokenize=False)
    assert p_text == "<|user|>\nDocument:\nTotal: 12<|end|>\n<|assistant|>\n"
    assert full.startswith(p_text)
    assert full[len(p_text) :].startswith('{"total":"12"}<|end|>')
    p_ids = tok(p_text, add_special_tokens=False)["input_ids"]
    f_ids = tok(full, add_special_tokens=False)["input_ids"]
    assert f_ids[: len(p_ids)] == p_ids
    assert tok.eos_token_id in f_ids[len(p_ids) :]
    assert tok.decode(f_ids) == full


def test_generates_with_left_padding(loaded) -> None:  # noqa: ANN001
    model, tok = loaded
    prompts = [
        tok.apply_chat_template([{"role": "user", "content": c}], tokenize=False, add_generation_prompt=True)
        for c in ("a", "a much longer prompt 123")
    ]
    batch = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    assert tok.padding_side == "left"
    assert batch["input_ids"][0, 0].item() == tok.pad_token_id
    out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[0] == 2 and out.shape[1] <= batch["input_ids"].shape[1] + 3


def test_same_seed_same_weights(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    a = build_tiny_model(tmp_path / "a", TEXTS, vocab_size=280, hidden_size=16, num_layers=1, num_heads=2, seed=1)
    b = build_tiny_model(tmp_path / "b", TEXTS, vocab_size=280, hidden_size=16, num_layers=1, num_heads=2, seed=1)
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()


def test_bad_heads_is_a_model_error(tmp_path: Path) -> None:
    from llmops.errors import ModelError

    with pytest.raises(ModelError, match="num_heads"):
        build_tiny_model(tmp_path / "m", TEXTS, hidden_size=30, num_layers=1, num_heads=4)
    assert not (tmp_path / "m").exists()
