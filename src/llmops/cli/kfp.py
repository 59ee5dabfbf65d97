"""`llmops kfp compile | submit | run-local`: the seed flags and `--set`, exactly as `llmops run` takes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer

from llmops.cli.seed_flags import seed_command

kfp_app = typer.Typer(
    help="Kubeflow Pipelines: compile, submit to a KFP host, or run locally with kfp.local.", no_args_is_help=True
)


def _seed_command(name: str, extra: dict[str, tuple[Any, Any]], help_text: str) -> Callable:
    return seed_command(kfp_app, name, extra, help_text)


@_seed_command(
    "compile",
    {"output": (Path, typer.Option(Path("pipeline.yaml"), "--output", "-o", help="where the KFP v2 YAML is written"))},
    "Compile the pipeline for this config to KFP v2 YAML.",
)
def _compile(cfg: Any, output: Path) -> None:
    from llmops.kfp.launch import compile_pipeline

    path = compile_pipeline(cfg, output)
    typer.echo(f"compiled: {path} (image {cfg.kfp.image}; upload it in the KFP UI or run `llmops kfp submit`)")


@_seed_command(
    "submit",
    {"package": (Optional[Path], typer.Option(None, "--package", help="a compiled YAML to submit as is"))},
    "Compile, upload (a new version when the pipeline exists) and start a run on the KFP host (--host).",
)
def _submit(cfg: Any, package: Path | None) -> None:
    from llmops.kfp.launch import submit

    ids = submit(cfg, cfg.host, package)
    typer.echo(
        f"submitted: run {ids['run_id']} of pipeline {cfg.kfp.pipeline_name} "
        f"(version {ids['version_id']}) on {cfg.host}"
    )


@_seed_command(
    "run-local",
    {"workdir": (Path, typer.Option(Path("kfp-local"), "--workdir", help="run folders and kfp.local outputs go here"))},
    "Run the same pipeline here with the real kfp.local runner (each step a subprocess).",
)
def _run_local(cfg: Any, workdir: Path) -> None:
    import json

    from llmops.kfp.launch import run_local
    from llmops.summary import RunSummary, print_summary

    summary = run_local(cfg, workdir)
    print_summary(RunSummary(**{k: v for k, v in summary.items() if k in RunSummary.__dataclass_fields__}))
    typer.echo(json.dumps({"run_dir": summary["run_dir"], "kfp_outputs": summary["kfp_outputs"]}))
