"""What a run produced: the RunSummary, saved as summary.json and printed as a baseline-vs-fine-tuned table."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

GATE_METRICS = ("field_f1", "pass_at_1")


@dataclass
class RunSummary:
    """What a run produced, printed at the end and saved as summary.json."""

    run_dir: str
    run_id: str | None
    tracking_uri: str | None
    registered_model: str | None
    version: str | None
    promoted: bool
    gate_reason: str
    baseline: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    train: dict[str, float] = field(default_factory=dict)
    model_dir: str | None = None
    sample: str | None = None


def write_summary(run_dir: Path, summary: RunSummary) -> None:
    """summary.json in the run folder, written atomically."""
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(asdict(summary), indent=2))
    os.replace(tmp, run_dir / "summary.json")


def print_summary(summary: RunSummary) -> None:
    """A baseline-vs-fine-tuned table, the MLflow location and the gate decision."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="baseline vs fine-tuned (held-out)")
    table.add_column("metric")
    table.add_column("baseline", justify="right")
    table.add_column("fine-tuned", justify="right")
    keys = [k for k in summary.metrics if "/" not in k]
    keys += sorted(
        k for k in summary.metrics if "/" in k and k.rsplit("/", 1)[1] in GATE_METRICS and not k.startswith("field/")
    )
    keys += sorted(k for k in summary.metrics if k.startswith("field/") and k.endswith("/f1"))  # which fields fail
    for key in keys:
        base = summary.baseline.get(key)
        table.add_row(key, "-" if base is None else f"{base:.3f}", f"{summary.metrics[key]:.3f}")
    console.print(table)
    console.print(f"run folder:   {summary.run_dir}")
    console.print(f"MLflow:       {summary.tracking_uri}  run {summary.run_id}")
    if summary.registered_model:
        verdict = "champion" if summary.promoted else "challenger only"
        console.print(f"registered:   {summary.registered_model} v{summary.version} ({verdict}: {summary.gate_reason})")
    if summary.sample is not None:
        console.print("sample prediction:")
        console.print(summary.sample, markup=False, highlight=False)
