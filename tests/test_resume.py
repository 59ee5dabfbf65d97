"""kill -9 during training, then `llmops run --resume RUN_DIR`: the run ends as an uninterrupted one would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import llmops_cli

STEPS = 160


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}


def _args(make: Callable[..., list[str]], save_dir: Path) -> list[str]:
    return make(
        save_dir,
        "--max_steps",
        str(STEPS),
        "--set",
        "training.save_steps=20",
        "--set",
        "training.logging_steps=1",
        "--set",
        "eval.max_examples=3",
        "--set",
        "eval.max_new_tokens=8",
        "--set",
        "tracking.run_name=resume-check",
    )


def _complete_checkpoints(run_dir: Path) -> list[Path]:
    return [p for p in (run_dir / "checkpoints").glob("checkpoint-*") if (p / "trainer_state.json").exists()]


@pytest.mark.integration
def test_kill_and_resume_matches_uninterrupted(tmp_path: Path, tiny_run_args: Callable[..., list[str]]) -> None:
    from mlflow.tracking import MlflowClient

    reference = llmops_cli(_args(tiny_run_args, tmp_path / "ref"), tmp_path)
    assert reference.returncode == 0, reference.stderr[-3000:]
    ref_summary = json.loads((tmp_path / "ref" / "resume-check" / "summary.json").read_text())

    run_dir = tmp_path / "killed" / "resume-check"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops.cli", *_args(tiny_run_args, tmp_path / "killed")],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not _complete_checkpoints(run_dir) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists(), "the run finished before it could be killed"
    assert _complete_checkpoints(run_dir)

    resumed = llmops_cli(["run", "--resume", str(run_dir)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["train"]["steps"] == STEPS
    ref_loss, loss = ref_summary["train"]["final_loss"], summary["train"]["final_loss"]
    assert abs(loss - ref_loss) <= 0.01 * abs(ref_loss), (loss, ref_loss)
    # The resumed run continues the same MLflow run, which now ends FINISHED.
    state = json.loads((run_dir / "state.json").read_text())
    assert summary["run_id"] == state["run_id"]
    run = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(state["run_id"])
    assert run.info.status == "FINISHED"


def test_resume_rejects_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    proc = llmops_cli(["run", "--resume", str(tmp_path)], tmp_path)
    assert proc.returncode == 2
    assert "not a run folder" in proc.stderr and "Traceback" not in proc.stderr
