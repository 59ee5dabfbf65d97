"""A tiny offline model, built once per session by the repo's own builder."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def make_sft_examples(n: int, seed: int = 0) -> list[dict]:
    """Small IDP-style prompt-completion examples of varied length."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        fields = {"id": str(rng.randint(100, 999)), "total": str(rng.randint(1, 99))}
        doc = " ".join(f"line {rng.randint(0, 9)}" for _ in range(rng.randint(1, 6)))
        out.append({"prompt": [{"role": "user", "content": f"Extract JSON.\nInvoice {fields['id']} {doc} "
                                                           f"total {fields['total']}"}],
                    "completion": [{"role": "assistant", "content": json.dumps(fields)}], "class": "invoice"})
    return out


@pytest.fixture
def sft_examples() -> Callable[..., list[dict]]:
    """make_sft_examples(n, seed=0)."""
    return make_sft_examples


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide Llama with a BPE tokenizer trained on the example texts."""
    from llmops.models.tiny import build_tiny_model

    texts = [e["prompt"][0]["content"] + e["completion"][0]["content"] for e in make_sft_examples(200, seed=1)]
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts, hidden_size=32, num_layers=2,
                            num_heads=2, vocab_size=300)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a shared CPU, spinning OpenMP threads cost seconds a test."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
