"""`llmops quickstart --train kd` on a pretrained model: prune the fine-tuned teacher, distil it back, compare.

1. Teacher: the plain quickstart's model (the pretrained student fine-tuned by the SFT recipe; trained once per
   workdir and reused).
2. Student: the teacher depth-pruned to `kd.student_from_teacher` decoder layers (layer importance measured on the
   training data; pruned once per workdir and reused).
3. For the same data and steps, three runs from that pruned student (each an ordinary tracked, gated, registered
   pipeline run): SFT alone (its baseline is the pruned student before training), off-policy logit KD, and
   on-policy KD (`kd.on_policy` of the batches on the student's own samples) given the off-policy run's training
   time (`training.max_train_seconds`), so the two are compared at equal wall-clock time.
4. One table and `kd_report.json` in the workdir: task metric, teacher_kl on the teacher's held-out answers, decoder
   layers, parameters and greedy generation tokens/s (same prompts and batch for every model, fastest of 3 runs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llmops.quickstart import stages

REPORT = "kd_report.json"
TASK_METRIC = {"IDP": "field_f1", "CodeGen": "pass_at_1"}
SPEED_BATCH, SPEED_TOKENS, SPEED_REPEATS = 8, 48, 3


def _pruned_once(workdir: Path, name: str, teacher_dir: str, layers: int | float, cfg: Any, console: Any) -> str:
    """The teacher pruned to `layers` decoder layers, importance measured on the training examples; reused."""
    from llmops.models.prune import PRUNE_FILE, prune_to_folder, read_report
    from llmops.run_inputs import validate

    known = stages.known(workdir, name)
    if known and (Path(known) / PRUNE_FILE).is_file() and read_report(known).get("source") == teacher_dir:
        console.print(f"{name}: reusing {known}")
        return known
    folder = workdir / "models" / name
    console.print(
        f"[bold]{name}[/]: pruning the teacher to {layers} decoder layers "
        f"({cfg.kd.prune_importance} importance on {cfg.kd.prune_calibration} training examples)"
    )
    report = prune_to_folder(
        teacher_dir,
        layers,
        folder,
        records=validate(cfg).train,
        method=cfg.kd.prune_importance,
        max_len=cfg.training.max_len,
        calibration=cfg.kd.prune_calibration,
    )
    console.print(
        f"kept layers {report.kept} of {report.layers_before}: {report.parameters_after:,} of "
        f"{report.parameters_before:,} parameters ({report.seconds:.0f} s)"
    )
    stages.remember(workdir, name, str(folder))
    return str(folder)


def _teacher_metrics(teacher_dir: str) -> dict[str, float]:
    summary = Path(teacher_dir).parents[1] / "summary.json"  # <run>/model/merged -> <run>/summary.json
    return json.loads(summary.read_text()).get("metrics", {}) if summary.is_file() else {}


def run_pruned_kd(
    workdir: Path,
    flow: str,
    recipes: Path,
    entries: dict[str, Any],
    model: str,
    overrides: list[str],
    console: Any,
    tag: str = "",
) -> Any:
    """The teacher, its pruned student, and the student trained three ways; prints and writes the comparison."""
    sft, kd = stages.recipe(recipes, flow, "sft"), stages.recipe(recipes, flow, "kd")
    teacher_recipe = stages.merge(sft, {"eval": {"baseline": False}})
    teacher_dir = stages.trained_once(
        workdir, f"{flow}-sft{tag}", teacher_recipe, {**entries, "student": model}, overrides, console
    )
    kd_cfg = stages.stage_config(kd, {**entries, "student": teacher_dir, "teacher": teacher_dir}, overrides)
    layers = kd_cfg.kd.student_from_teacher or 0.5
    student = _pruned_once(workdir, f"{flow}-pruned-l{layers}{tag}", teacher_dir, layers, kd_cfg, console)
    share = kd_cfg.kd.on_policy or ON_POLICY_SHARE
    steps = {"training": kd["training"], "peft": kd["peft"]}
    no_prune = {"student_from_teacher": None}

    console.print("[bold]SFT alone[/] (the pruned student on the data's answers; baseline = before training)")
    alone = stages.run_stage(
        sft,
        stages.merge(
            {**entries, "student": student},
            {**steps, "eval": {"baseline": True}, "tracking": {"registered_model": f"quickstart-{flow}-pruned-sft"}},
        ),
        overrides,
    )
    console.print("[bold]off-policy KD[/] (the teacher's logits on the data's answers)")
    off = stages.run_stage(
        kd,
        stages.merge(
            {**entries, "student": student, "teacher": teacher_dir},
            {
                "kd": {**no_prune, "on_policy": 0.0},
                "eval": {"baseline": False},
                "tracking": {"registered_model": f"quickstart-{flow}-pruned-kd"},
            },
        ),
        overrides,
    )
    budget = float(off.train.get("train_seconds") or 0) or None
    console.print(
        f"[bold]on-policy KD[/] ({share:.0%} of batches on the student's own samples; "
        f"{budget or 0:.0f} s of training, as off-policy KD had)"
    )
    on = stages.run_stage(
        kd,
        stages.merge(
            {**entries, "student": student, "teacher": teacher_dir},
            {
                "kd": {**no_prune, "on_policy": share},
                "eval": {"baseline": False},
                "training": {"max_train_seconds": budget},
                "tracking": {"registered_model": f"quickstart-{flow}-pruned-kd-on-policy"},
            },
        ),
        overrides,
    )

    metric = TASK_METRIC[kd_cfg.flow_type]
    rows = [
        ("teacher", teacher_dir, _teacher_metrics(teacher_dir), {}),
        ("pruned, before training", student, alone.baseline, {}),
        ("pruned + SFT alone", alone.model_dir, alone.metrics, alone.train),
        ("pruned + KD (off-policy)", off.model_dir, off.metrics, off.train),
        (f"pruned + on-policy KD ({share:g})", on.model_dir, on.metrics, on.train),
    ]
    report = measure(rows, metric, kd_cfg, teacher_dir, console)
    _write_report(workdir / REPORT, report)
    _print_table(console, report, metric)
    console.print(f"report: {workdir / REPORT}")
    return on if kd_cfg.kd.on_policy else off


SHORT = {
    "pruned, before training": "pruned",
    "pruned + SFT alone": "SFT alone",
    "pruned + KD": "KD",
    "pruned + on-policy KD": "on-policy KD",
}
ON_POLICY_SHARE = 0.5  # the on-policy row's share of batches when the recipe's default is off-policy


def measure(
    rows: list[tuple[str, str, dict, dict]], metric: str, cfg: Any, teacher_dir: str, console: Any
) -> list[dict[str, Any]]:
    """Per model: the task metric, teacher_kl on the teacher's greedy held-out answers, decoder layers, parameters,
    greedy tokens/s (same prompts, batch and length for all; the fastest of SPEED_REPEATS runs each)."""
    import torch

    from llmops.evaluation.generate import generation_speed
    from llmops.methods.kd import kd_cache_dir
    from llmops.methods.kd_metrics import teacher_answers, teacher_kl
    from llmops.models.loader import load_for_inference
    from llmops.models.prune import decoder_layers
    from llmops.run_inputs import validate

    if cfg.training.num_threads:
        torch.set_num_threads(cfg.training.num_threads)
    prompts = [example["prompt"] for example in validate(cfg).eval]
    teacher, tokenizer = load_for_inference(teacher_dir)
    console.print("measuring: teacher answers, teacher_kl and generation speed of each model")
    answers = teacher_answers(
        teacher, tokenizer, prompts, cfg.eval.batch_size, cfg.eval.answer_tokens, cache_dir=kd_cache_dir(cfg)
    )  # the KD stages' answers, read back
    out = []
    for name, folder, metrics, train in rows:
        model = teacher if folder == teacher_dir else load_for_inference(folder)[0]
        kl = (
            0.0
            if model is teacher
            else teacher_kl(model, teacher, tokenizer, prompts, answers, batch_size=cfg.eval.batch_size)
        )
        out.append(
            {
                "name": name,
                "model_dir": str(folder),
                metric: metrics.get(metric),
                "exact_match": metrics.get("exact_match"),
                "teacher_kl": round(kl, 5),
                "decoder_layers": len(decoder_layers(model)[1]),
                "parameters": sum(p.numel() for p in model.parameters()),
                "generation_tokens_per_s": round(
                    generation_speed(model, tokenizer, prompts, SPEED_BATCH, SPEED_TOKENS, repeats=SPEED_REPEATS), 1
                ),
                "train_steps": train.get("steps"),
                "train_seconds": train.get("train_seconds"),
            }
        )
        if model is not teacher:
            del model
    return out


def _write_report(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, path)


def _print_table(console: Any, rows: list[dict[str, Any]], metric: str) -> None:
    from rich.table import Table

    teacher = rows[0]
    table = Table(
        title=f"held-out {metric} (score; % of the teacher's), teacher_kl, size and greedy tokens/s "
        "(x the teacher's) of the teacher, its pruned student and the student trained three ways; "
        "KL = teacher_kl",
        show_edge=False,
    )
    for column in ("model", "score", "%", "KL", "layers", "params", "tok/s", "x", "steps"):
        table.add_column(column, justify="left" if column == "model" else "right", no_wrap=True)
    for row in rows:
        value = row.get(metric)
        ratio = value / teacher[metric] if value is not None and teacher.get(metric) else None
        table.add_row(
            SHORT.get(row["name"].split(" (")[0], row["name"]),
            "-" if value is None else f"{value:.3f}",
            "-" if ratio is None else f"{ratio:.0%}",
            f"{row['teacher_kl']:.3f}",
            str(row["decoder_layers"]),
            f"{row['parameters'] / 1e6:.0f}M",
            f"{row['generation_tokens_per_s']:.0f}",
            f"{row['generation_tokens_per_s'] / teacher['generation_tokens_per_s']:.2f}x",
            "-" if row.get("train_steps") is None else str(row["train_steps"]),
        )
    console.print(table)
