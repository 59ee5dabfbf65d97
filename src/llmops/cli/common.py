"""What every command shares: the error guard (one message, a non-zero exit, no traceback) and --debug."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from llmops.environment import default_env
from llmops.errors import DataError, LlmopsError

STATE: dict[str, bool] = {"debug": False}


def guard(fn: Callable[[], Any]) -> Any:
    """Run a command body; user errors become one message and a non-zero exit."""
    default_env()
    try:
        return fn()
    except LlmopsError as e:
        if STATE["debug"]:
            raise
        for line in str(e).splitlines() or [type(e).__name__]:
            typer.echo(f"error: {line}", err=True)
        if isinstance(e, DataError):
            for p in e.problems:
                if p != str(e):
                    typer.echo(f"  {p}", err=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
