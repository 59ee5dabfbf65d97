"""`llmops quickstart`: synthetic data, a student (SmolLM2-135M-Instruct by default, or the tiny model built here),
and the whole pipeline, offline."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError
from llmops.tracking.uri import resolve_tracking_uri, sqlite_uri

RECIPES = Path(__file__).with_name("recipes")  # for a pretrained student (the SmolLM2 default, or --model M)
TINY_RECIPES = RECIPES / "tiny"  # for --model tiny: a tiny Llama trained from scratch
DEFAULT_MODEL = "smollm2-135m-instruct"


def _console() -> Any:
    from rich.console import Console

    return Console()


def _tracking_uri(workdir: Path) -> str:
    """MLFLOW_TRACKING_URI when set, else an SQLite store inside the workdir."""
    return resolve_tracking_uri(default=sqlite_uri(workdir / "mlflow.db"))


def _build_model(
    workdir: Path, flow: str, role: str, texts: list[str], settings: Any, hidden: int, layers: int, heads: int
) -> Path:
    """Build (once per workdir, flow and size) a tiny model; the same texts and vocab give the same tokenizer."""
    from llmops.models.tiny import build_tiny_model

    out = workdir / "models" / f"tiny-{flow}-{role}-v{settings.vocab_size}-h{hidden}-l{layers}"
    if (out / "config.json").exists():
        return out
    return build_tiny_model(
        out,
        texts,
        vocab_size=settings.vocab_size,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        seed=settings.seed,
    )


def _document_inputs(workdir: Path, settings: Any, console: Any) -> tuple[dict[str, Any], list[str]]:
    """Realistic IDP documents (full-page PDFs and scans, three languages, unseen layouts held out): config entries."""
    from llmops.quickstart.idp_documents import generate_document_dataset

    n_eval = settings.n_eval_per_class * 3
    with _console().status(f"writing {settings.n_train + n_eval} documents (PDFs and scans)"):
        data = generate_document_dataset(
            workdir / "data", settings.n_train, n_eval, settings.seed, settings.scan_fraction
        )
    console.print(
        f"data: {data.train} (train: PDFs and scans of {settings.n_train} documents, 12 layouts), "
        f"{data.eval} (held-out: {n_eval} documents in 4 layouts and with values never seen in training)"
    )
    entries = {
        "data": str(data.train),
        "eval_data": str(data.eval),
        "schema": str(data.schema),
        "document": str(data.sample_document),
    }
    return entries, []


def _idp_inputs(workdir: Path, settings: Any, console: Any) -> tuple[dict[str, Any], list[str]]:
    """Synthetic IDP data: config entries for it and the tokenizer's training texts."""
    from llmops.quickstart.idp_data import generate_idp_dataset, tokenizer_corpus

    data = generate_idp_dataset(
        workdir / "data", settings.n_train, settings.n_eval_per_class, settings.seed, settings.mini_fraction
    )
    console.print(f"data: {data.train} (train), {data.eval} (held-out, unseen names/numbers/dates)")
    entries = {
        "data": str(data.train),
        "eval_data": str(data.eval),
        "schema": str(data.schema),
        "document": str(data.sample_document),
    }
    return entries, tokenizer_corpus(data)


def _codegen_inputs(workdir: Path, settings: Any, console: Any) -> tuple[dict[str, Any], list[str]]:
    """Synthetic programming tasks: config entries for them and the tokenizer's training texts."""
    from llmops.quickstart.codegen_data import generate_codegen_dataset, tokenizer_corpus
    from llmops.tasks.codegen import CodeGenTask

    data = generate_codegen_dataset(workdir / "data", settings.n_train, settings.n_eval_per_class, settings.seed)
    console.print(f"data: {data.train} (train), {data.eval} (held-out tasks with tests, unseen names/constants)")
    entries = {"data": str(data.train), "eval_data": str(data.eval), "prompt": data.sample_prompt}
    return entries, tokenizer_corpus(data, CodeGenTask().build_prompt)


def _pairs(flow: str, entries: dict[str, Any], seed: int) -> Path:
    """Preference pairs built from the training data (chosen = gold, rejected = a plausible wrong answer)."""
    from llmops.quickstart.pairs import write_codegen_pairs, write_idp_pairs

    train = Path(entries["data"])
    write = write_codegen_pairs if flow == "codegen" else write_idp_pairs
    return write(train, train.with_name("pairs.jsonl"), seed)


def _model_tag(model: str) -> str:
    """A short name for stage reuse: the built-in name, or the folder/file name of a local model."""
    return "".join(c if c.isalnum() or c in "-." else "-" for c in Path(model.rstrip("/")).name.lower())[:48]


def run_quickstart(
    flow: str,
    train: str,
    workdir: Path,
    overrides: list[str],
    sizes: dict[str, int] | None = None,
    model: str = DEFAULT_MODEL,
    pairs: str = "gold",
) -> Any:
    """Generate data, resolve the student (or build the tiny models), run the pipeline (stages), print the
    comparison. `model` is the SmolLM2 default, `tiny`, or any model `student:` accepts (a pretrained student gets
    the LoRA recipes in recipes/; `tiny` the from-scratch recipes in recipes/tiny/)."""
    from llmops.quickstart import stages
    from llmops.quickstart.settings import settings_for

    if train not in ("sft", "kd", "dpo", "grpo"):
        raise ConfigError(f"quickstart --train {train}: use sft, kd, dpo or grpo")
    if pairs not in ("gold", "self"):
        raise ConfigError(f"quickstart --pairs {pairs}: use gold (written from the data) or self (mined)")
    if pairs == "self" and train != "dpo":
        raise ConfigError("quickstart --pairs self: only with --train dpo")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    console = _console()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tiny = model.lower() == "tiny"
    if tiny and (train == "grpo" or pairs == "self"):
        raise ConfigError(
            "quickstart --model tiny: GRPO and mined pairs learn from the model's own samples, which "
            "a model trained from scratch for a few minutes cannot give; use the default model"
        )
    settings = replace(settings_for(flow, pretrained=not tiny), **(sizes or {}))
    started = time.time()
    console.print(f"[bold]llmops quickstart[/] ({flow}/{train}) in {workdir.resolve()}")
    if not tiny:  # a missing or unconvertible model is reported before any data is generated
        from llmops.models.loader import resolve_model_path

        console.print(f"student: {model} ({resolve_model_path(model)})")
    inputs = _codegen_inputs if flow == "codegen" else _idp_inputs if tiny else _document_inputs
    entries, corpus = inputs(workdir, settings, console)
    s = settings
    entries.update({"save_dir": str(workdir / "runs"), "tracking": {"tracking_uri": _tracking_uri(workdir)}})
    if tiny:
        recipes = TINY_RECIPES
        student: str | Path = _build_model(
            workdir, flow, "student", corpus, s, s.hidden_size, s.num_layers, s.num_heads
        )
        small: str | Path = student
        console.print(f"tiny student: {student}")
        tag = f"-n{s.n_train}"  # stages are reused only for the same data (and model)
    else:
        recipes, student = RECIPES, model
        small = student
        tag = f"-n{s.n_train}" if model == DEFAULT_MODEL else f"-{_model_tag(model)}-n{s.n_train}"
    if train == "kd" and not tiny:
        from llmops.quickstart.distill import run_pruned_kd

        console.print(f"KD: teacher = {student} fine-tuned by the SFT recipe; student = the teacher, pruned")
        summary = run_pruned_kd(workdir, flow, recipes, entries, str(student), overrides, console, tag)
    elif train == "kd":
        if tiny:
            small = _build_model(
                workdir,
                flow,
                "student",
                corpus,
                s,
                s.kd_student_hidden_size,
                s.kd_student_num_layers,
                s.kd_student_num_heads,
            )
        console.print(f"KD: teacher = {student} fine-tuned by the SFT recipe; distilled into {small}")
        summary = stages.run_kd(
            workdir,
            flow,
            recipes,
            entries,
            student=small,
            teacher=student,
            overrides=overrides,
            console=console,
            tag=tag,
        )
    elif train == "grpo" or (train == "dpo" and pairs == "self"):
        from llmops.quickstart import rl

        run = rl.run_grpo if train == "grpo" else rl.run_dpo_self
        summary = run(workdir, flow, recipes, entries, str(student), s.rl_start_steps, overrides, console, tag)
    elif train == "dpo":
        summary = stages.run_dpo(
            workdir, flow, recipes, entries, student, _pairs(flow, entries, s.seed), overrides, console, tag
        )
    else:
        summary = stages.run_stage(stages.recipe(recipes, flow, "sft"), {**entries, "student": str(student)}, overrides)
        if not overrides and summary.model_dir:  # the teacher of a later --train kd, the start of --train dpo
            stages.remember(workdir, f"{flow}-sft{tag}", summary.model_dir)
    console.print(f"quickstart finished in {time.time() - started:.0f} s")
    return summary
