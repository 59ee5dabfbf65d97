"""Preemption as Kubernetes does it: SIGTERM to a real `llmops run` process at a step, then `llmops run --resume`
(slow: `make test-slow`).

Real processes and real signals: the run finishes its step, writes a checkpoint at it, records the interruption
(state.json, MLflow run KILLED) and exits 143 within `training.preempt_grace_s`; resuming ends where the
uninterrupted run ends. A half-written checkpoint (a kill mid-save) is skipped.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

STEPS = 60
GRACE_S = 20


def _env(cwd: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}",
        "COLUMNS": "200",
    }


def _args(tiny_run_args: Callable[..., list[str]], save_dir: Path) -> list[str]:
    return tiny_run_args(
        save_dir,
        "--max_steps",
        str(STEPS),
        "--set",
        "training.logging_steps=1",
        "--set",
        "training.save_steps=1000",
        "--set",
        "training.save_total_limit=1",
        "--set",
        "eval.baseline=false",
        "--set",
        "eval.max_new_tokens=8",
        "--set",
        f"training.preempt_grace_s={GRACE_S}",
        "--set",
        "tracking.register_model=false",
        "--set",
        "training.learning_rate=0.0005",
    )


def _run_dir(save_dir: Path) -> Path:
    (run_dir,) = [p for p in save_dir.iterdir() if (p / "state.json").exists()]
    return run_dir


def _losses(run_dir: Path) -> dict[int, float]:
    """train/loss per step from the run's MLflow history (the last value logged at each step)."""
    from mlflow.tracking import MlflowClient

    state = json.loads((run_dir / "state.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir.parent.parent / 'mlflow.db'}")
    history = sorted(client.get_metric_history(state["run_id"], "train/loss"), key=lambda m: m.timestamp)
    return {m.step: m.value for m in history}


def _term_at(cmd: list[str], cwd: Path, at_step: int) -> tuple[int, float, str]:
    """Start `cmd`, SIGTERM it once its progress shows step `at_step`; (exit code, seconds to exit, output)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(cwd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen: list[str] = []
    sent = None
    for line in proc.stdout:
        seen.append(line)
        m = re.search(r"step (\d+)/(\d+)", line)
        if m and int(m.group(1)) >= at_step and sent is None:
            proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
    rc = proc.wait(timeout=300)
    assert sent is not None, "".join(seen)[-3000:]
    return rc, time.monotonic() - sent, "".join(seen)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(1800)  # the whole run's 600 s, the cut one's 300 s, the resume's 600 s budgets
def test_sigterm_at_three_steps_then_resume_ends_where_an_uninterrupted_run_ends(
    tmp_path: Path, tiny_run_args: Callable[..., list[str]]
) -> None:
    from mlflow.tracking import MlflowClient

    cli = [sys.executable, "-m", "llmops.cli"]
    whole = tmp_path / "whole"
    whole.mkdir()
    ref = subprocess.run(
        [*cli, *_args(tiny_run_args, whole / "runs")],
        cwd=whole,
        env=_env(whole),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    reference = json.loads((_run_dir(whole / "runs") / "summary.json").read_text())["train"]["final_loss"]

    cut = tmp_path / "cut"
    cut.mkdir()
    steps = sorted(random.Random(os.getpid()).sample(range(4, STEPS - 12), 3))
    cmd = [*cli, *_args(tiny_run_args, cut / "runs")]
    stopped_at = []
    for i, at in enumerate(steps):
        rc, seconds, out = _term_at(cmd, cut, at)
        assert rc == 143, out[-3000:]
        assert seconds < GRACE_S, seconds
        assert "Traceback" not in out and "interrupted by SIGTERM at step" in out, out[-2000:]
        run_dir = _run_dir(cut / "runs")
        state = json.loads((run_dir / "state.json").read_text())
        step = state["interrupted"]["step"]
        assert at <= step < STEPS and state["interrupted"]["signal"] == "SIGTERM"
        assert state["interrupted"]["checkpoint"] == str(run_dir / "checkpoints" / f"checkpoint-{step}")
        assert (run_dir / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").is_file()
        assert "model_dir" not in state  # nothing past training happened
        run = MlflowClient(tracking_uri=f"sqlite:///{cut / 'mlflow.db'}").get_run(state["run_id"])
        assert run.info.status == "KILLED" and run.data.tags["llmops.interrupted"] == f"SIGTERM at step {step}"
        stopped_at.append(step)
        if i == 0:
            # A kill during the next save leaves a checkpoint folder without its trainer_state.json: skipped.
            torn = run_dir / "checkpoints" / f"checkpoint-{step + 3}"
            shutil.copytree(run_dir / "checkpoints" / f"checkpoint-{step}", torn)
            (torn / "trainer_state.json").unlink()
        cmd = [*cli, "run", "--resume", str(run_dir)]
    assert len(set(stopped_at)) == 3, stopped_at

    done = subprocess.run(cmd, cwd=cut, env=_env(cut), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = _run_dir(cut / "runs")
    state = json.loads((run_dir / "state.json").read_text())
    assert "interrupted" not in state and state["train"]["steps"] == STEPS
    assert (run_dir / "checkpoints" / f"torn-checkpoint-{stopped_at[0] + 3}").is_dir()  # set aside, not used
    final = state["train"]["final_loss"]
    assert final == pytest.approx(reference, rel=0.01), (final, reference)
    # The loss curve in MLflow covers every step, as the uninterrupted run's does.
    assert sorted(_losses(run_dir)) == list(range(1, STEPS + 1))
    run = MlflowClient(tracking_uri=f"sqlite:///{cut / 'mlflow.db'}").get_run(state["run_id"])
    assert run.info.status == "FINISHED"
