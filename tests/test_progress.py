"""Long loops outside training report progress in logs too (no terminal): occasional plain lines."""

from __future__ import annotations

import io

from llmops.progress import PlainProgress, progress_bar


def test_plain_lines_say_how_far_and_how_long_left() -> None:
    out = io.StringIO()
    with PlainProgress(every_s=0, stream=out) as progress:
        task = progress.add_task("sampling answers", total=8)
        for _ in range(4):
            progress.advance(task, 2)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("sampling answers: 2/8 (25%), ") and lines[0].endswith(" left")
    assert lines[-1].startswith("sampling answers: 8/8 (100%)")


def test_short_loops_print_nothing_and_disabled_bars_stay_silent(capsys) -> None:
    out = io.StringIO()
    with PlainProgress(every_s=3600, stream=out) as progress:
        task = progress.add_task("x", total=3)
        progress.advance(task, 3)
    assert out.getvalue() == ""
    with progress_bar(enabled=False) as progress:  # not a terminal under pytest, and not enabled: nothing
        progress.advance(progress.add_task("y", total=1), 1)
    assert capsys.readouterr().err == ""
