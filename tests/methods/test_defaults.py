"""Defaults that let a user's own data train without tuning: the learning rate follows the method and the adapter,
bf16 follows the hardware, and a full page fits training.max_len."""

from __future__ import annotations

import pytest

from llmops.config import RunConfig
from llmops.methods.trainer import learning_rate


@pytest.mark.parametrize(
    ("train_type", "peft", "expected"),
    [
        ("SFT", "lora", 5e-4),
        ("KD", "qlora", 5e-4),
        ("DPO", "lora", 2e-4),
        ("GRPO", "lora", 2e-4),
        ("SFT", "full", 2e-4),
        ("DPO", "full", 2e-4),
    ],
)
def test_unset_learning_rate_is_the_methods_rate_for_its_adapter(train_type: str, peft: str, expected: float) -> None:
    cfg = RunConfig(student="s", train_type=train_type, peft={"method": peft})
    assert cfg.training.learning_rate is None
    assert learning_rate(cfg) == expected


def test_a_set_learning_rate_wins() -> None:
    cfg = RunConfig(student="s", training={"learning_rate": 1e-5})
    assert learning_rate(cfg) == 1e-5


def test_unset_bf16_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops.models import device

    monkeypatch.setattr(device, "has_cuda", lambda: False)
    unset = RunConfig(student="s").training
    for native in (True, False):
        monkeypatch.setattr(device, "cpu_supports_bf16", lambda native=native: native)
        assert device.use_bf16(unset) is native
        assert device.use_bf16(unset.model_copy(update={"bf16": False})) is False


def test_a_full_page_and_its_answer_fit_the_default_context() -> None:
    assert RunConfig(student="s").training.max_len >= 2048
