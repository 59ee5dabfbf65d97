"""Experiment tracking and the model registry: MLflow when `tracking.enabled`, else a no-op tracker.

Cheap to import: mlflow loads only when `make_tracker` builds an MLflow tracker or `resolve_model` reads the registry.
"""

from __future__ import annotations

import os
from pathlib import Path

from llmops.config import RunConfig
from llmops.tracking.registry import CHALLENGER, CHAMPION, GateResult
from llmops.tracking.tracker import NullTracker, Tracker

# Before mlflow is first imported anywhere through this package.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

__all__ = ["CHALLENGER", "CHAMPION", "GateResult", "NullTracker", "Tracker", "make_tracker", "resolve_model"]


def make_tracker(cfg: RunConfig) -> Tracker:
    """The run's tracker: MLflow at the configured/env/default URI, or a NullTracker when tracking is off."""
    if not cfg.tracking.enabled:
        return NullTracker()
    from llmops.tracking.mlflow_tracker import MlflowTracker

    return MlflowTracker(cfg)


def resolve_model(model: str, cache_dir: str | Path | None = None, tracking_uri: str | None = None) -> str:
    """A local folder for `models:/NAME@ALIAS` / `models:/NAME/VERSION`; paths and hub ids come back unchanged."""
    from llmops.tracking.registry import resolve_model as _resolve

    return _resolve(model, cache_dir, tracking_uri)
