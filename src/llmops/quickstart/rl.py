"""The quickstarts that learn from the task's own judges: GRPO, and DPO on pairs mined from the model's samples.

Both start from the real model under-trained by the flow's SFT recipe (`start_steps` of its steps: room to improve),
trained once per workdir and reused. The GRPO (or DPO) run's `baseline/` metrics are those of that start, `eval/`
after; the table adds the pretrained model's zero-shot metrics (the start stage's own baseline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmops.quickstart.stages import merge, recipe, run_stage, trained_once


def judged_data(flow: str, entries: dict[str, Any]) -> str:
    """Training records the task can judge answers by: CodeGen's tasks with tests, IDP's documents with gold."""
    train = Path(entries["data"])
    return str(train.with_name("train_problems.jsonl")) if flow == "codegen" else str(train)


def start_model(
    workdir: Path,
    flow: str,
    recipes: Path,
    entries: dict[str, Any],
    student: str,
    steps: int,
    overrides: list[str],
    console: Any,
    tag: str,
) -> str:
    """The under-trained start: the SFT recipe for `steps` steps (trained once per workdir, then reused)."""
    base = merge(recipe(recipes, flow, "sft"), {"training": {"max_steps": steps, "save_steps": steps}})
    return trained_once(
        workdir,
        f"{flow}-sft-start{steps}{tag}",
        base,
        {**entries, "student": student},
        overrides,
        console,
        what=f"the SFT recipe for {steps} steps (an under-trained start)",
    )


def _run_summary(model_dir: str) -> dict[str, Any]:
    """summary.json of the run that produced `model_dir` ({} when there is none)."""
    for folder in Path(model_dir).parents:
        path = folder / "summary.json"
        if path.exists():
            return json.loads(path.read_text())
    return {}


def run_grpo(
    workdir: Path,
    flow: str,
    recipes: Path,
    entries: dict[str, Any],
    student: str,
    steps: int,
    overrides: list[str],
    console: Any,
    tag: str = "",
) -> Any:
    """Under-trained start, then GRPO on the training tasks' own rewards; prints zero-shot, start and after."""
    start = start_model(workdir, flow, recipes, entries, student, steps, overrides, console, tag)
    console.print(
        "[bold]GRPO[/] from the under-trained start (baseline = the start; rewards from the training tasks only)"
    )
    summary = run_stage(
        recipe(recipes, flow, "grpo"), {**entries, "student": start, "data": judged_data(flow, entries)}, overrides
    )
    print_progression(console, "GRPO", _run_summary(start), summary, steps)
    return summary


def run_dpo_self(
    workdir: Path,
    flow: str,
    recipes: Path,
    entries: dict[str, Any],
    student: str,
    steps: int,
    overrides: list[str],
    console: Any,
    tag: str = "",
) -> Any:
    """Under-trained start, then DPO on pairs mined from its own samples (judged by the task)."""
    start = start_model(workdir, flow, recipes, entries, student, steps, overrides, console, tag)
    console.print(
        "[bold]DPO on mined pairs[/]: the start samples answers to the training prompts, the task judges "
        "them, best vs worst become the pairs"
    )
    summary = run_stage(
        recipe(recipes, flow, "dpo-self"), {**entries, "student": start, "data": judged_data(flow, entries)}, overrides
    )
    print_progression(console, "DPO (mined pairs)", _run_summary(start), summary, steps)
    return summary


def print_progression(console: Any, method: str, start_run: dict[str, Any], summary: Any, steps: int) -> None:
    """One table: the pretrained model zero-shot, the under-trained start, and after `method`."""
    from rich.table import Table

    zero_shot = start_run.get("baseline", {})
    table = Table(title=f"held-out: pretrained -> start (SFT, {steps} steps) -> {method}")
    for column in ("metric", "pretrained", "start", method):
        table.add_column(column, justify="left" if column == "metric" else "right")
    keys = [k for k in summary.metrics if "/" not in k and k in summary.baseline]
    for key in keys:
        before = zero_shot.get(key)
        table.add_row(
            key,
            "" if before is None else f"{before:.3f}",
            f"{summary.baseline[key]:.3f}",
            f"{summary.metrics[key]:.3f}",
        )
    console.print(table)
