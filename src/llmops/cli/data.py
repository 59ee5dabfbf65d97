"""`llmops data validate`: check a dataset before training."""

from __future__ import annotations

import typer

from llmops.cli.common import guard
from llmops.errors import DataError
from llmops.methods.registry import names as method_names

TRAIN_TYPE_HELP = "training method: " + ", ".join(method_names())
data_app = typer.Typer(help="Check datasets before training.", no_args_is_help=True)


@data_app.command("validate")
def data_validate(
    file: str = typer.Argument(..., help="JSONL/JSON file or URI"),
    flow_type: str = typer.Option("IDP", "--flow-type", "--flow_type", help="IDP or CodeGen"),
    train_type: str = typer.Option("SFT", "--train-type", "--train_type", help=TRAIN_TYPE_HELP),
    schema: str | None = typer.Option(None, "--schema", help="JSON Schema the gold JSON must satisfy"),
    role: str = typer.Option("train", "--role", help="train or eval data"),
) -> None:
    """Check a dataset; every problem is printed as FILE:LINE: what is wrong (exit 2 on any)."""

    def body() -> None:
        from llmops.config import build_config
        from llmops.run_inputs import validate_file
        from llmops.tasks.idp import load_schema

        cfg = build_config(flags={"flow_type": flow_type, "train_type": train_type})
        schema_obj = load_schema(schema) if schema else None
        problems = validate_file(file, cfg.flow_type, cfg.train_type, schema_obj, role=role)
        if problems:
            raise DataError(f"{file}: {len(problems)} problem(s) found", problems)
        typer.echo(f"{file}: OK")

    guard(body)
