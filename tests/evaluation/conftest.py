"""A tiny random chat model shared by the evaluation tests (built once per session by the repo's own code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

TEXTS = [
    "Invoice No: INV-20391\nDate: 2024-03-15\nVendor: Acme Widgets Ltd\nTotal: 1,234.50 EUR",
    '{"invoice_number":"INV-20391","invoice_date":"2024-03-15","total_amount":"1234.50"}',
    "Extract the fields from the document as JSON matching the schema. Answer with JSON only.",
] * 10


@pytest.fixture(scope="session")
def invoice_tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer, 32-wide Llama with a 320-token tokenizer trained on invoice text (not the root `tiny_model_dir`)."""
    from llmops.models.tiny import build_tiny_model

    out = tmp_path_factory.mktemp("eval-tiny") / "model"
    return build_tiny_model(out, TEXTS, vocab_size=320, hidden_size=32, num_layers=1, num_heads=2, seed=1)


@pytest.fixture(scope="session")
def tiny(invoice_tiny_model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoTokenizer

    return load_diverse(invoice_tiny_model_dir), AutoTokenizer.from_pretrained(invoice_tiny_model_dir)


def load_diverse(path: Path) -> Any:
    """The tiny model with large random weights: its greedy answers then depend on the prompt."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    return model


@pytest.fixture
def fresh_tiny(invoice_tiny_model_dir: Path) -> tuple[Any, Any]:
    """A fresh copy of the tiny model and tokenizer, for tests that change them."""
    from transformers import AutoTokenizer

    return load_diverse(invoice_tiny_model_dir), AutoTokenizer.from_pretrained(invoice_tiny_model_dir)
