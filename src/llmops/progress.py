"""The progress of long loops outside training (generation, running programs), on stderr.

On a terminal, a rich progress bar. Otherwise (CI, `kubectl logs`, output piped to a file) one plain line per
`PLAIN_EVERY_S` while a loop runs, so a long generation is never silent: `sampling answers: 256/1024 (25%), 3:05
left`. Loops that end sooner print nothing.
"""

from __future__ import annotations

import sys
import time
from typing import Any

PLAIN_EVERY_S = 30.0


class PlainProgress:
    """The part of rich's Progress the loops use (add_task, advance, a context manager), as occasional lines."""

    def __init__(self, every_s: float = PLAIN_EVERY_S, stream: Any = None) -> None:
        self.every_s = every_s
        self.stream = stream
        self.tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
        task = len(self.tasks)
        now = time.monotonic()
        self.tasks[task] = {"desc": description, "total": total, "done": 0.0, "start": now, "last": now}
        return task

    def advance(self, task: int, advance: float = 1) -> None:
        t = self.tasks[task]
        t["done"] += advance
        now = time.monotonic()
        if now - t["last"] < self.every_s:
            return
        t["last"] = now
        done, total = t["done"], t["total"]
        line = f"{t['desc']}: {done:.0f}"
        if total:
            left = (now - t["start"]) / max(done, 1e-9) * (total - done)
            line += f"/{total:.0f} ({100 * done / total:.0f}%), {int(left) // 60}:{int(left) % 60:02d} left"
        print(line, file=self.stream or sys.stderr, flush=True)


def progress_bar(enabled: bool = True) -> Any:
    """A rich progress bar on stderr when it is a terminal; else occasional plain lines (nothing if not
    `enabled`)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if enabled and not console.is_terminal:
        return PlainProgress()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not enabled,
    )
