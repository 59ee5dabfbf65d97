"""`llmops run` (the whole pipeline) and `llmops train` (only training, under a launcher too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from llmops.cli.seed_flags import seed_command


def register(app: typer.Typer) -> None:
    @seed_command(
        app,
        "run",
        {
            "resume": (
                Optional[Path],
                typer.Option(
                    None, "--resume", help="continue an interrupted run from RUN_DIR (with --set overrides only)"
                ),
            )
        },
        "Run the whole pipeline: validate -> baseline eval -> train -> eval -> gate -> register.",
        pass_overrides=True,
    )
    def _run(cfg: Any, resume: Path | None, overrides: list[str]) -> None:
        from llmops import pipeline
        from llmops.summary import print_summary

        summary = pipeline.resume(resume, overrides=overrides) if resume is not None else pipeline.run(cfg)
        print_summary(summary)

    output_help = (
        "where the trained model, its checkpoints and train_result.json go (default: <save_dir>/train-<timestamp>)"
    )

    @seed_command(
        app,
        "train",
        {"output": (Optional[Path], typer.Option(None, "--output", help=output_help))},
        "Only train (no eval, no MLflow): validate -> train -> save. Runs under accelerate launch / torchrun too.",
    )
    def _train(cfg: Any, output: Path | None) -> None:
        from llmops import training_job
        from llmops.methods.distributed import is_main_process

        result = training_job.train(cfg, output)
        if is_main_process():
            typer.echo(
                f"trained:  {result['steps']} steps on {result['world_size']} process(es), final loss "
                f"{result['final_loss']:.4f}, {result['tokens_per_second']:,.0f} tokens/s, "
                f"{result['train_seconds']:.1f} s"
            )
            typer.echo(f"model:    {result['model_dir']}")
            typer.echo(f"result:   {Path(result['output']) / training_job.RESULT_FILE}")
