"""A rich progress bar for transformers/TRL trainers: step, loss, learning rate, tokens/s and ETA.

On a terminal it draws a live bar; otherwise (CI, logs piped to a file) it prints one plain line per logging step.
Under torchrun / accelerate only the main process (world rank 0) shows anything.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import TrainerCallback


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _is_main(state: Any) -> bool:
    return bool(getattr(state, "is_world_process_zero", True))


class RichProgressCallback(TrainerCallback):
    """Shows training progress; `tokens_per_second` is added to each log from the trainer's `num_tokens`."""

    def __init__(self, desc: str = "training", console: Console | None = None) -> None:
        self.desc = desc
        self.console = console or Console()
        self.progress: Progress | None = None
        self.task: Any = None
        self.start_time = 0.0
        self.start_step = 0
        self.fields: dict[str, Any] = {"loss": "-", "lr": "-", "tps": "-"}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start_time = time.perf_counter()
        self.start_step = state.global_step
        if not self.console.is_terminal or not _is_main(state):
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[tps]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.progress.start()
        self.task = self.progress.add_task(self.desc, total=state.max_steps, completed=state.global_step, **self.fields)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not logs or "loss" not in logs or not _is_main(state):
            return
        elapsed = max(time.perf_counter() - self.start_time, 1e-9)
        if "num_tokens" in logs:
            logs["tokens_per_second"] = float(logs["num_tokens"]) / elapsed
            self.fields["tps"] = f"{logs['tokens_per_second']:,.0f}"
        self.fields["loss"] = f"{float(logs['loss']):.4f}"
        if "learning_rate" in logs:
            self.fields["lr"] = f"{float(logs['learning_rate']):.2e}"
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step, **self.fields)
            return
        done = state.global_step - self.start_step
        eta = elapsed / done * (state.max_steps - state.global_step) if done > 0 else 0.0
        self.console.print(
            f"{self.desc} step {state.global_step}/{state.max_steps}  loss {self.fields['loss']}  "
            f"lr {self.fields['lr']}  {self.fields['tps']} tok/s  eta {_fmt_duration(eta)}",
            highlight=False,
        )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)
            self.progress.stop()
            self.progress = None
