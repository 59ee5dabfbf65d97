"""The progress bar of long loops outside training (generation, running programs): rich, on stderr."""

from __future__ import annotations

from typing import Any


def progress_bar(enabled: bool = True) -> Any:
    """A rich progress bar on stderr, silent when stderr is not a terminal (or when not `enabled`)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=not (enabled and console.is_terminal),
    )
