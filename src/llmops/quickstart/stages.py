"""The multi-stage quickstarts: KD (teacher, distilled student, SFT-only student) and DPO (SFT, then DPO).

Each stage is an ordinary pipeline run (tracked, gated, registered) built from the flow's SFT recipe plus an overlay
recipe (`<flow>-kd.yaml`, `<flow>-dpo.yaml`). The plain quickstart's fine-tuned model (`<flow>-sft<tag>`) is both
KD's teacher and DPO's starting point: it is trained once per workdir and data size (`tag`) and reused after that.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llmops.config import RunConfig, build_config, read_yaml

STAGES = "stages.json"


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def recipe(recipes: Path, flow: str, train: str) -> dict[str, Any]:
    """The flow's SFT recipe with the method's overlay on top."""
    base = read_yaml(recipes / f"{flow}-sft.yaml")
    return base if train == "sft" else merge(base, read_yaml(recipes / f"{flow}-{train}.yaml"))


def _stages(workdir: Path) -> dict[str, str]:
    path = workdir / STAGES
    return json.loads(path.read_text()) if path.exists() else {}


def known(workdir: Path, name: str) -> str | None:
    """The model folder an earlier quickstart recorded for stage `name`, if any."""
    return _stages(workdir).get(name)


def remember(workdir: Path, name: str, model_dir: str) -> None:
    """Record the model folder of a finished stage, for later quickstarts in the same workdir."""
    stages = {**_stages(workdir), name: model_dir}
    tmp = workdir / (STAGES + ".tmp")
    tmp.write_text(json.dumps(stages, indent=2))
    os.replace(tmp, workdir / STAGES)


def stage_config(base: dict[str, Any], entries: dict[str, Any], overrides: list[str]) -> RunConfig:
    """A stage's config: the recipe, the quickstart's entries (data, models, tracking) on top, then `--set`."""
    return build_config(base=merge(base, entries), overrides=overrides)


def run_stage(base: dict[str, Any], entries: dict[str, Any], overrides: list[str]) -> Any:
    """One pipeline run from a recipe and the quickstart's entries (data, models, tracking); prints its summary."""
    from llmops import pipeline
    from llmops.summary import print_summary

    summary = pipeline.run(stage_config(base, entries, overrides))
    print_summary(summary)
    return summary


def trained_once(
    workdir: Path,
    name: str,
    base: dict[str, Any],
    entries: dict[str, Any],
    overrides: list[str],
    console: Any,
    what: str = "the SFT recipe",
) -> str:
    """The model folder of stage `name`: trained now with the SFT recipe, or reused from an earlier quickstart.

    `--set` overrides apply to every stage; a stage trained with overrides is not kept for reuse.
    """
    known = _stages(workdir).get(name)
    if known and (Path(known) / "config.json").exists():
        console.print(f"{name}: reusing {known}")
        return known
    console.print(f"[bold]{name}[/]: training it with {what}")
    summary = run_stage(base, merge(entries, {"tracking": {"registered_model": f"quickstart-{name}"}}), overrides)
    if not overrides:
        remember(workdir, name, summary.model_dir)
    return summary.model_dir


def run_kd(
    workdir: Path,
    flow: str,
    recipes: Path,
    entries: dict[str, Any],
    student: Path,
    teacher: Path,
    overrides: list[str],
    console: Any,
    tag: str = "",
) -> Any:
    """Train (or reuse) the teacher, distil it into the (smaller) student, and train the student by SFT alone.

    The teacher is `teacher` fine-tuned by the flow's SFT recipe: the plain quickstart's model, reused when present.
    """
    sft = recipe(recipes, flow, "sft")
    kd = recipe(recipes, flow, "kd")
    teacher_dir = trained_once(
        workdir, f"{flow}-sft{tag}", sft, {**entries, "student": str(teacher)}, overrides, console
    )
    console.print("[bold]distilled student[/] (logit KD from the teacher)")
    distilled = run_stage(kd, {**entries, "student": str(student), "teacher": teacher_dir}, overrides)
    console.print("[bold]SFT-only student[/] (same student, data and steps, no teacher)")
    steps = {
        "training": {"max_steps": kd["training"]["max_steps"]},
        "peft": kd["peft"],
        "tracking": {"registered_model": f"quickstart-{flow}-sft-only"},
    }
    alone = run_stage(sft, merge({**entries, "student": str(student)}, steps), overrides)
    _print_side_by_side(console, distilled, alone)
    return distilled


def _print_side_by_side(console: Any, distilled: Any, alone: Any) -> None:
    from rich.table import Table

    table = Table(title="held-out: distilled vs SFT alone (same student, data and steps)")
    for column in ("metric", "SFT alone", "distilled"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key in [k for k in distilled.metrics if "/" not in k and k in alone.metrics]:
        table.add_row(key, f"{alone.metrics[key]:.3f}", f"{distilled.metrics[key]:.3f}")
    if "teacher_kl" in distilled.metrics:
        before = distilled.baseline.get("teacher_kl", float("nan"))
        table.add_row("teacher_kl (before -> after)", "", f"{before:.3f} -> {distilled.metrics['teacher_kl']:.3f}")
    console.print(table)


def run_dpo(
    workdir: Path,
    flow: str,
    recipes: Path,
    entries: dict[str, Any],
    student: Path,
    pairs: Path,
    overrides: list[str],
    console: Any,
    tag: str = "",
) -> Any:
    """Fine-tune (or reuse) the SFT start, then train it with DPO on the preference pairs."""
    sft = recipe(recipes, flow, "sft")
    start = trained_once(workdir, f"{flow}-sft{tag}", sft, {**entries, "student": str(student)}, overrides, console)
    console.print("[bold]DPO[/] from the SFT model (baseline = before DPO)")
    return run_stage(recipe(recipes, flow, "dpo"), {**entries, "student": start, "data": str(pairs)}, overrides)
