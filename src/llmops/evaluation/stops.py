"""The tokens that end an answer."""

from __future__ import annotations

from typing import Any

from llmops.errors import ModelError


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every token id that ends an answer: the model's generation EOS ids and the tokenizer's EOS."""
    ids: list[int] = []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (configured if isinstance(configured, list) else [configured]) + [tokenizer.eos_token_id]:
        if value is not None and value not in ids:
            ids.append(int(value))
    if not ids:
        raise ModelError("the tokenizer has no EOS token and the model's generation config names none")
    return ids
