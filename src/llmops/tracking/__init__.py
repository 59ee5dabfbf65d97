"""Experiment tracking and the model registry: MLflow when `tracking.enabled`, else a no-op tracker.

Cheap to import: mlflow loads only when `make_tracker` builds an MLflow tracker or `resolve_model` reads the registry.
Modules: `gate` (the pure champion decision), `uri` (where runs are recorded), `tracker` (the interface and the
no-op tracker), `mlflow_tracker`, `registry` (versions and aliases), `resolve` (models:/ URIs), `plots`.
"""

from __future__ import annotations

import os

from llmops.config import RunConfig
from llmops.tracking.gate import CHALLENGER, CHAMPION, GateResult
from llmops.tracking.resolve import resolve_model
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
