"""Run plots as PNG files: the training loss curve and per-field F1 bars.

matplotlib is imported lazily and used through `Figure` objects (its Agg canvas), never pyplot, so no global
backend is switched and no display is needed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _save_atomic(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def loss_curve(history: Sequence[tuple[int, float]], path: str | Path, title: str = "training loss") -> Path:
    """Write a step-vs-loss line plot to `path` (PNG)."""
    from matplotlib.figure import Figure

    if not history:
        raise ValueError("loss_curve: empty history")
    steps = [int(s) for s, _ in history]
    losses = [float(v) for _, v in history]
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.plot(steps, losses, marker="o" if len(steps) < 50 else None, linewidth=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return _save_atomic(fig, Path(path))


def field_bars(per_field: dict[str, float], path: str | Path, title: str = "per-field F1") -> Path:
    """Write a horizontal bar chart of per-field scores (0..1), best at the top, to `path` (PNG)."""
    from matplotlib.figure import Figure

    if not per_field:
        raise ValueError("field_bars: no fields")
    items = sorted(per_field.items(), key=lambda kv: (float(kv[1]), kv[0]))
    names = [k for k, _ in items]
    values = [float(v) for _, v in items]
    fig = Figure(figsize=(6, max(2.0, 0.3 * len(items) + 1.0)))
    ax = fig.add_subplot()
    bars = ax.barh(range(len(items)), values, color="tab:blue")
    ax.set_yticks(range(len(items)), labels=names)
    ax.set_xlim(0.0, 1.05)
    ax.set_xlabel("F1")
    ax.set_title(title)
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=2, fontsize=8)
    return _save_atomic(fig, Path(path))


def write_loss_curve(history: Sequence[tuple[int, float]], path: str | Path) -> Path | None:
    """The loss-curve PNG, or None when there is no history to plot."""
    return loss_curve(history, path) if history else None


def write_field_plot(per_field: dict[str, float], path: str | Path) -> Path | None:
    """The per-field F1 PNG, or None when there are no fields."""
    return field_bars(per_field, path) if per_field else None
