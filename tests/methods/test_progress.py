"""The progress callback: a live bar on a terminal, one plain line per log otherwise, tokens/s added to logs."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from llmops.methods.train_progress import RichProgressCallback


def _drive(console: Console, main: bool = True) -> list[dict]:
    callback = RichProgressCallback("sft", console=console)
    state = SimpleNamespace(global_step=0, max_steps=4, is_world_process_zero=main)
    callback.on_train_begin(None, state, None)
    logs = []
    for step in range(1, 5):
        state.global_step = step
        callback.on_step_end(None, state, None)
        if step % 2 == 0:
            entry = {"loss": 1.0 / step, "learning_rate": 1e-3, "num_tokens": 100.0 * step}
            callback.on_log(None, state, None, logs=entry)
            logs.append(entry)
    callback.on_train_end(None, state, None)
    return logs


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    logs = _drive(Console(file=out, force_terminal=False))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("sft step 4/4  loss 0.2500  lr 1.00e-03")
    assert "tok/s" in lines[-1] and "eta 0:00:00" in lines[-1]
    assert all(entry["tokens_per_second"] > 0 for entry in logs)


def test_live_bar_on_a_terminal() -> None:
    out = io.StringIO()
    _drive(Console(file=out, force_terminal=True, width=120))
    text = out.getvalue()
    assert "4/4" in text and "loss 0.2500" in text and "sft step" not in text


def test_only_the_main_process_prints() -> None:
    for terminal in (False, True):
        out = io.StringIO()
        _drive(Console(file=out, force_terminal=terminal, width=120), main=False)
        assert out.getvalue() == ""
