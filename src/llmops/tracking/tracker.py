"""The tracker interface the pipeline talks to, and a do-nothing tracker with the same methods.

Callers never branch on whether tracking is on: `make_tracker` hands them an `MlflowTracker` or a `NullTracker`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from llmops.tracking.gate import GateResult
from llmops.tracking.plots import write_field_plot, write_loss_curve


@runtime_checkable
class Tracker(Protocol):
    """What a pipeline run records: params, metrics, artifacts, plots, and the registered model."""

    @property
    def tracking_uri(self) -> str | None:
        """Where runs are recorded (None when tracking is off)."""
        ...

    @property
    def run_id(self) -> str | None:
        """The current (or last) run's id."""
        ...

    def check(self) -> None:
        """Fail fast with a TrackingError if the tracking store cannot be reached."""
        ...

    def start(
        self, run_name: str, tags: dict[str, str] | None = None, run_id: str | None = None
    ) -> AbstractContextManager[Tracker]:
        """One run for the block (resumes `run_id` if given); an exception inside ends it FAILED."""
        ...

    def log_params(self, params: dict[str, Any]) -> None:
        """Record parameters, flattened, with secrets redacted."""
        ...

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Record numeric metrics, e.g. `eval/field_f1`, `train/loss` at `step`."""
        ...

    def set_tags(self, tags: dict[str, str]) -> None:
        """Tag the current run (e.g. `llmops.interrupted`)."""
        ...

    def keep_unsent_in(self, run_dir: str | Path) -> None:
        """Keep metrics the server does not take now in the run folder, and send those kept there before."""
        ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload one file."""
        ...

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Upload a folder's contents."""
        ...

    def log_loss_curve(self, history: Sequence[tuple[int, float]], path: str | Path) -> Path | None:
        """Write the loss-curve PNG to `path` and upload it under `plots/`."""
        ...

    def log_field_plot(self, per_field: dict[str, float], path: str | Path) -> Path | None:
        """Write the per-field F1 PNG to `path` and upload it under `plots/`."""
        ...

    def register(
        self, model_dir: str | Path, cfg: Any, metrics: dict[str, float], baseline: dict[str, float] | None = None
    ) -> GateResult:
        """Register the model folder as a new version (alias challenger) and run the champion gate."""
        ...

    def preview_gate(self, cfg: Any, metrics: dict[str, float], baseline: dict[str, float] | None = None) -> GateResult:
        """The gate's decision for these metrics now, registering nothing."""
        ...


class NullTracker:
    """Tracking switched off: records nothing and registers nothing, but still writes the run's plots locally."""

    tracking_uri: str | None = None

    def __init__(self) -> None:
        self.run_id: str | None = None

    def check(self) -> None:
        """Nothing to reach."""

    @contextmanager
    def start(
        self, run_name: str, tags: dict[str, str] | None = None, run_id: str | None = None
    ) -> Iterator[NullTracker]:
        """A block with no run behind it."""
        yield self

    def log_params(self, params: dict[str, Any]) -> None:
        """Dropped."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Dropped."""

    def set_tags(self, tags: dict[str, str]) -> None:
        """Dropped."""

    def keep_unsent_in(self, run_dir: str | Path) -> None:
        """Nothing is ever sent."""

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Dropped."""

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Dropped."""

    def log_loss_curve(self, history: Sequence[tuple[int, float]], path: str | Path) -> Path | None:
        """Writes the PNG only."""
        return write_loss_curve(history, path)

    def log_field_plot(self, per_field: dict[str, float], path: str | Path) -> Path | None:
        """Writes the PNG only."""
        return write_field_plot(per_field, path)

    def register(
        self, model_dir: str | Path, cfg: Any, metrics: dict[str, float], baseline: dict[str, float] | None = None
    ) -> GateResult:
        """Registers nothing."""
        return GateResult(False, None, None, None, None, "tracking disabled: nothing registered")

    def preview_gate(self, cfg: Any, metrics: dict[str, float], baseline: dict[str, float] | None = None) -> GateResult:
        """Nothing can win without a registry."""
        return GateResult(False, None, None, None, None, "tracking disabled: no gate")
