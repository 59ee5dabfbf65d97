"""`llmops --help` stays fast (no heavy library at start-up) and lists every command the app registers."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import typer

HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "mlflow", "accelerate", "bitsandbytes", "kfp", "kubeflow")


def test_cli_import_is_light() -> None:
    code = f"import sys, llmops.cli; heavy = [m for m in {HEAVY!r} if m in sys.modules]; print(','.join(heavy))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"imported at start-up: {out}"


COMMANDS = {
    "quickstart",
    "run",
    "train",
    "predict",
    "evaluate",
    "eval-idp",
    "eval-code",
    "data",
    "kfp",
    "serve",
    "deploy",
}


def _help_commands(text: str) -> list[str]:
    """The command names in the Commands panel of `--help` (not the description or the options above it)."""
    panel = text.split("─ Commands ─", 1)[1].split("╰", 1)[0]
    return [m.group(1) for m in re.finditer(r"^│ (\S+)\s{2,}", panel, flags=re.MULTILINE)]


def test_every_command_is_registered() -> None:
    from llmops.cli import app

    registered = set(typer.main.get_command(app).commands)
    assert COMMANDS <= registered, f"missing: {sorted(COMMANDS - registered)}"


def test_help_lists_commands() -> None:
    from llmops.cli import app

    env = {**os.environ, "COLUMNS": "120", "TERM": "dumb"}
    proc = subprocess.run([sys.executable, "-m", "llmops.cli", "--help"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    listed = _help_commands(proc.stdout)
    assert len(listed) == len(set(listed))
    assert set(listed) == set(typer.main.get_command(app).commands)  # every registered command, nothing else
    assert COMMANDS <= set(listed)
