"""Batched greedy generation: order, left-padding invariance, EOS/length limits, pad-less tokenizers."""

from __future__ import annotations

from typing import Any

import pytest

from llmops.errors import ModelError
from llmops.evaluation.generate import generate

PROMPTS = [
    [{"role": "user", "content": "Invoice No: INV-20391"}],
    [{"role": "user", "content": "Date: 2024-03-15\nVendor: Acme Widgets Ltd\nTotal: 1,234.50 EUR and more text"}],
    [{"role": "user", "content": "Total"}],
    [{"role": "user", "content": "Vendor: Acme Widgets Ltd"}],
    [{"role": "user", "content": "Extract the fields from the document as JSON"}],
]


def test_batched_equals_one_by_one_in_input_order(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    alone = [generate(model, tokenizer, [p], batch_size=1, max_new_tokens=12)[0] for p in PROMPTS]
    batched = generate(model, tokenizer, PROMPTS, batch_size=4, max_new_tokens=12)
    assert batched == alone
    assert len(set(alone)) > 1  # distinct prompts give distinct answers, so a reordering would show
    assert tokenizer.padding_side == "left" and model.training is False


def test_completion_only_and_token_limit(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    model.train()
    short = generate(model, tokenizer, PROMPTS[:2], batch_size=2, max_new_tokens=3)
    assert model.training is True  # restored
    longer = generate(model, tokenizer, PROMPTS[:2], batch_size=2, max_new_tokens=12)
    for cut, full in zip(short, longer):
        assert "<|" not in full and "Invoice No" not in full
        assert full.startswith(cut) and len(cut) < len(full)
    assert generate(model, tokenizer, [], batch_size=2, max_new_tokens=5) == []


def test_tokenizer_without_pad_token(fresh_tiny: tuple[Any, Any]) -> None:
    model, tokenizer = fresh_tiny
    with_pad = generate(model, tokenizer, PROMPTS, batch_size=3, max_new_tokens=8)
    tokenizer.pad_token = None
    model.generation_config.pad_token_id = None
    assert tokenizer.pad_token_id is None
    assert generate(model, tokenizer, PROMPTS, batch_size=3, max_new_tokens=8) == with_pad


def test_tokenizer_without_chat_template(fresh_tiny: tuple[Any, Any]) -> None:
    model, tokenizer = fresh_tiny
    tokenizer.chat_template = None
    with pytest.raises(ModelError, match="no chat template"):
        generate(model, tokenizer, PROMPTS[:1], batch_size=1, max_new_tokens=2)


def test_stops_at_any_eos_id(fresh_tiny: tuple[Any, Any]) -> None:
    model, tokenizer = fresh_tiny
    text = tokenizer.apply_chat_template(PROMPTS[0], tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    new = model.generate(**inputs, max_new_tokens=12, do_sample=False)[0, inputs["input_ids"].shape[1] :].tolist()
    assert generate(model, tokenizer, PROMPTS[:1], batch_size=1, max_new_tokens=12)[0] == tokenizer.decode(new)
    stop = new[6]
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, stop]
    cut = generate(model, tokenizer, PROMPTS[:1], batch_size=1, max_new_tokens=12)[0]
    assert cut == tokenizer.decode(new[: new.index(stop)])
