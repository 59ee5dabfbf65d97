"""`llmops --help` stays fast: the CLI imports no heavy library at start-up."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "mlflow", "accelerate", "bitsandbytes", "kfp", "kubeflow")


def test_cli_import_is_light() -> None:
    code = ("import sys, llmops.cli; heavy = [m for m in %r if m in sys.modules]; print(','.join(heavy))" % (HEAVY,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"imported at start-up: {out}"


def test_help_lists_commands() -> None:
    proc = subprocess.run([sys.executable, "-m", "llmops.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for command in ("quickstart", "run", "train", "predict", "evaluate", "eval-idp", "eval-code", "data", "kfp",
                    "serve", "deploy"):
        assert command in proc.stdout
