"""`llmops quickstart`: synthetic data, a tiny model built here, and the whole pipeline, offline."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmops.config import build_config, env_tracking_uri, read_yaml
from llmops.errors import ConfigError

RECIPES = Path(__file__).with_name("recipes")


def _console() -> Any:
    from rich.console import Console

    return Console()


def _tracking_uri(workdir: Path) -> str:
    """MLFLOW_TRACKING_URI when set, else an SQLite store inside the workdir."""
    return env_tracking_uri() or f"sqlite:///{(workdir / 'mlflow.db').resolve()}"


def _build_student(workdir: Path, flow: str, texts: list[str], settings: Any) -> Path:
    """Build (once per workdir, flow and settings) the tiny student the quickstart trains."""
    from llmops.models.tiny import build_tiny_model

    size = f"v{settings.vocab_size}-h{settings.hidden_size}-l{settings.num_layers}"
    out = workdir / "models" / f"tiny-{flow}-student-{size}"
    if (out / "config.json").exists():
        return out
    return build_tiny_model(out, texts, vocab_size=settings.vocab_size, hidden_size=settings.hidden_size,
                            num_layers=settings.num_layers, num_heads=settings.num_heads, seed=settings.seed)


def _idp_inputs(workdir: Path, settings: Any, console: Any) -> tuple[dict[str, Any], list[str]]:
    """Synthetic IDP data: config entries for it and the tokenizer's training texts."""
    from llmops.quickstart.idp_data import generate_idp_dataset, tokenizer_corpus

    data = generate_idp_dataset(workdir / "data", settings.n_train, settings.n_eval_per_class, settings.seed,
                                settings.mini_fraction)
    console.print(f"data: {data.train} (train), {data.eval} (held-out, unseen names/numbers/dates)")
    entries = {"data": str(data.train), "eval_data": str(data.eval), "schema": str(data.schema),
               "document": str(data.sample_document)}
    return entries, tokenizer_corpus(data)


def _codegen_inputs(workdir: Path, settings: Any, console: Any) -> tuple[dict[str, Any], list[str]]:
    """Synthetic programming tasks: config entries for them and the tokenizer's training texts."""
    from llmops.quickstart.codegen_data import generate_codegen_dataset, tokenizer_corpus
    from llmops.tasks.codegen import CodeGenTask

    data = generate_codegen_dataset(workdir / "data", settings.n_train, settings.n_eval_per_class, settings.seed)
    console.print(f"data: {data.train} (train), {data.eval} (held-out tasks with tests, unseen names/constants)")
    entries = {"data": str(data.train), "eval_data": str(data.eval), "prompt": data.sample_prompt}
    return entries, tokenizer_corpus(data, CodeGenTask().build_prompt)


def run_quickstart(flow: str, train: str, workdir: Path, overrides: list[str],
                   sizes: dict[str, int] | None = None) -> Any:
    """Generate data, build the tiny model, run the pipeline and print the comparison."""
    from llmops import pipeline
    from llmops.quickstart.settings import settings_for

    if train != "sft":
        raise ConfigError(f"quickstart --train {train}: only --train sft is available yet")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    console = _console()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    settings = replace(settings_for(flow), **(sizes or {}))
    started = time.time()
    console.print(f"[bold]llmops quickstart[/] ({flow}/{train}) in {workdir.resolve()}")
    inputs = _codegen_inputs if flow == "codegen" else _idp_inputs
    entries, corpus = inputs(workdir, settings, console)
    student = _build_student(workdir, flow, corpus, settings)
    console.print(f"tiny student: {student}")
    base = read_yaml(RECIPES / f"{flow}-{train}.yaml")
    base.update({"student": str(student), "save_dir": str(workdir / "runs"), **entries})
    base.setdefault("tracking", {})["tracking_uri"] = _tracking_uri(workdir)
    cfg = build_config(base=base, overrides=overrides)
    summary = pipeline.run(cfg)
    pipeline.print_summary(summary)
    console.print(f"quickstart finished in {time.time() - started:.0f} s")
    return summary
