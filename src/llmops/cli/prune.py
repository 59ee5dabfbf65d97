"""`llmops prune`: a smaller student made from a model by dropping its least important decoder layers."""

from __future__ import annotations

import typer

from llmops.cli.common import guard
from llmops.errors import ConfigError


def _layers(value: str) -> int | float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"--layers {value}: give a count of layers to keep (15) or a fraction (0.5)") from None
    return int(number) if number >= 1 and number.is_integer() else number


def prune(
    model: str = typer.Argument(..., help="model to prune: a built-in name, a saved folder (merged or adapter)"),
    layers: str = typer.Option(..., "--layers", help="decoder layers to keep: a count (15) or a fraction (0.5)"),
    output: str = typer.Option(..., "--output", "-o", help="folder the pruned model is written to"),
    calibration: str | None = typer.Option(
        None, "--calibration", help="training data whose examples measure layer importance"
    ),
    flow_type: str = typer.Option("IDP", "--flow-type", "--flow_type", help="IDP or CodeGen (of --calibration)"),
    schema: str | None = typer.Option(None, "--schema", help="IDP: the JSON Schema of --calibration's records"),
    importance: str = typer.Option(
        "cosine",
        "--importance",
        help="cosine: 1 - cos(layer input, output), one pass; loss: loss increase when "
        "the layer is skipped, one pass per layer; block: the contiguous block "
        "whose input and output are closest, one pass",
    ),
    examples: int = typer.Option(64, "--examples", help="calibration examples used"),
    max_len: int = typer.Option(512, "--max-len", help="calibration tokens per example"),
) -> None:
    """Depth pruning: keep the most important decoder layers (measured on calibration data), save a loadable model."""

    def body() -> None:
        from llmops.models.prune import GENERIC_TEXTS, IMPORTANCE, prune_to_folder
        from llmops.run_inputs import training_examples

        if importance not in IMPORTANCE:
            raise ConfigError(f"--importance {importance}: use {', '.join(IMPORTANCE)}")
        keep = _layers(layers)
        records = training_examples(calibration, flow_type, schema) if calibration else None
        if records is None:
            typer.echo(
                "warning: no --calibration data: layer importance is measured on a few generic texts; "
                "pass your training data for a student that keeps what your task needs",
                err=True,
            )
        report = prune_to_folder(
            model,
            keep,
            output,
            texts=None if records else GENERIC_TEXTS,
            records=records,
            method=importance,
            max_len=max_len,
            calibration=examples,
        )
        typer.echo(f"kept {len(report.kept)} of {report.layers_before} decoder layers: {report.kept}")
        typer.echo(f"removed: {report.removed}")
        typer.echo(f"parameters: {report.parameters_before:,} -> {report.parameters_after:,}")
        typer.echo(f"wrote {output} ({report.seconds:.0f} s); try: llmops evaluate --model {output} --eval_data ...")

    guard(body)


def register(app: typer.Typer) -> None:
    app.command()(prune)
