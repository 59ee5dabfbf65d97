"""The method registry: every train_type is a registered Method, and adding one is a module plus one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llmops.config import build_config
from llmops.errors import ConfigError
from llmops.methods import registry
from llmops.methods.base import Method


def test_every_registered_method_loads_cheaply_and_names_itself() -> None:
    import subprocess

    assert registry.names() == ["SFT", "KD", "DPO", "GRPO"]
    for method in registry.all_methods():
        assert isinstance(method, Method) and method.name in registry.names() and method.summary
    assert registry.get("kd") is registry.get("KD")
    # validation and --help import every method: none may pull in torch, transformers or TRL at import time
    code = (
        "import sys; from llmops.methods import registry; registry.all_methods(); "
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_unknown_method_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="train_type must be one of SFT, KD, DPO, GRPO, got 'PPO'"):
        registry.get("PPO")


def test_a_new_method_is_one_module_and_one_registry_line(
    tiny_idp: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmops import pipeline

    # an in-process run sets MLflow's process-wide URIs (and their environment variables, which later tests'
    # subprocesses inherit): these setenv calls make the teardown put both back
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.setitem(registry.METHODS, "NEFT", "neftune_method:NEFTune")  # the registry line
    registry._load.cache_clear()
    import neftune_method

    cfg = build_config(
        flags={
            "student": str(tiny_idp["model"]),
            "data": str(tiny_idp["train"]),
            "eval_data": str(tiny_idp["eval"]),
            "schema": str(tiny_idp["schema"]),
            "save_dir": str(tmp_path / "runs"),
            "flow_type": "IDP",
            "train_type": "neft",
        },
        overrides=[
            "peft.method=full",
            "training.max_steps=2",
            "training.per_device_train_batch_size=4",
            "eval.max_new_tokens=8",
            "eval.max_examples=3",
            "tracking.system_metrics=false",
            f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            "training.num_threads=1",
        ],
    )
    try:
        summary = pipeline.run(cfg)
    finally:
        import mlflow

        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        registry._load.cache_clear()
    assert neftune_method.TRAINED_WITH == [neftune_method.NOISE_ALPHA]
    assert summary.registered_model == "llmops-idp-neft" and summary.train["steps"] == 2
    assert "field_f1" in summary.metrics
