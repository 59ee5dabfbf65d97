"""Helpers for the tracking tests (the MLflow server fixture lives in tests/conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmops.config import RunConfig, build_config


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test works in its own folder: no stray mlflow.db / mlruns, no user MLflow settings, own model cache.

    A run sets MLflow's process-wide tracking and registry URIs (and their environment variables, which child
    processes inherit); the root conftest puts them back after every test.
    """
    uris = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    monkeypatch.chdir(tmp_path)
    for name in uris:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("LLMOPS_CACHE", str(tmp_path / "cache"))
    yield  # MLflow's process-wide URIs are put back by tests/conftest.py (mlflow_uris_restored)


@pytest.fixture
def make_cfg(request: pytest.FixtureRequest) -> Callable[..., RunConfig]:
    """RunConfig factory with a per-test experiment and registered model name."""
    name = request.node.name.replace("[", "-").replace("]", "").lower()

    def make(uri: str | None, **tracking: object) -> RunConfig:
        section = {"experiment_name": f"exp-{name}", "registered_model": f"model-{name}", "system_metrics": False}
        if uri:
            section["tracking_uri"] = uri
        section.update(tracking)
        return build_config(base={"tracking": section})

    return make


@pytest.fixture
def fake_model(tmp_path: Path) -> Callable[[str], Path]:
    """A model-shaped folder (config.json + a weights file) whose content identifies it."""

    def make(label: str) -> Path:
        d = tmp_path / "models" / label
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"label": label}))
        (d / "model.safetensors").write_bytes(label.encode() * 10)
        return d

    return make
