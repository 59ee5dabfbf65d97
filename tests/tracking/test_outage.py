"""A tracking outage during a real `llmops run`: the `mlflow server` process is killed mid-training (slow).

Restarted 20 s later: the run finishes, every metric is in MLflow once (none lost, none duplicated), one version
is registered. Never restarted: one clear error, the model stays on disk, nothing registered; once the server is
back, `--resume` sends the kept metrics and registers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import _stop, free_port, start_mlflow_server

STEPS = 160
LOG_EVERY = 2


def _env(uri: str) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_TRACKING_URI": uri, "COLUMNS": "200"}
    env.pop("MLFLOW_REGISTRY_URI", None)
    return env


def _args(tiny_run_args: Callable[..., list[str]], save_dir: Path, name: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "llmops.cli",
        *tiny_run_args(
            save_dir,
            "--max_steps",
            str(STEPS),
            "--set",
            f"training.logging_steps={LOG_EVERY}",
            "--set",
            "training.save_steps=40",
            "--set",
            "eval.baseline=false",
            "--set",
            "eval.max_new_tokens=8",
            "--set",
            f"tracking.registered_model={name}",
            "--set",
            "tracking.log_model=false",
            *extra,
        ),
    ]


def _start_and_kill_server_at(
    cmd: list[str], cwd: Path, uri: str, server: subprocess.Popen, at_step: int
) -> tuple[subprocess.Popen, list[str]]:
    """Start the run; once its progress shows `at_step`, kill the server (SIGKILL, its whole process group)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(uri), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        m = re.search(r"step (\d+)/", line)
        if m and int(m.group(1)) >= at_step:
            os.killpg(server.pid, 9)
            server.wait(timeout=10)
            return proc, seen
    raise AssertionError("the run ended before the server was killed:\n" + "".join(seen)[-3000:])


def _finish(proc: subprocess.Popen, seen: list[str]) -> str:
    assert proc.stdout is not None
    seen.extend(proc.stdout)
    proc.wait(timeout=600)
    return "".join(seen)


def _check_metrics_complete(uri: str, run_id: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    history = client.get_metric_history(run_id, "train/loss")
    steps = Counter(m.step for m in history)
    assert sorted(steps) == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY)), sorted(steps)  # none lost
    assert set(steps.values()) == {1}, steps  # none duplicated
    for key in ("eval/field_f1", "train/final_loss"):
        assert len(client.get_metric_history(run_id, key)) == 1, key


def _versions(uri: str, name: str) -> list:
    from mlflow import MlflowClient

    return MlflowClient(uri, registry_uri=uri).search_model_versions(f"name='{name}'")


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(1200)  # the run's 600 s budget, two server starts (90 s each), 20 s down
def test_server_killed_mid_training_and_back_20_s_later(
    tmp_path: Path, tiny_run_args: Callable[..., list[str]]
) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_mlflow_server(tmp_path / "server", port)
    try:
        proc, seen = _start_and_kill_server_at(
            _args(tiny_run_args, tmp_path / "runs", "outage"), tmp_path, uri, server, at_step=20
        )
        time.sleep(20)
        server = start_mlflow_server(tmp_path / "server", port)
        out = _finish(proc, seen)
        assert proc.returncode == 0, out[-3000:]
        assert "does not answer" in out  # it said so, and went on
        (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if (p / "state.json").exists()]
        state = json.loads((run_dir / "state.json").read_text())
        assert not (run_dir / "tracking-spool.jsonl").exists()  # everything kept was sent
        _check_metrics_complete(uri, state["run_id"])
        assert len(_versions(uri, "outage")) == 1
    finally:
        _stop(server)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(1800)  # the run's and the resume's 600 s budgets, two server starts
def test_server_killed_for_good_ends_clearly_and_resume_finishes_later(
    tmp_path: Path, tiny_run_args: Callable[..., list[str]]
) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_mlflow_server(tmp_path / "server", port)
    try:
        proc, seen = _start_and_kill_server_at(
            _args(tiny_run_args, tmp_path / "runs", "gone", "--set", "tracking.retry_s=6"),
            tmp_path,
            uri,
            server,
            at_step=20,
        )
        out = _finish(proc, seen)
        assert proc.returncode == 1, out[-3000:]
        assert "Traceback" not in out and "did not answer for 6 s (tracking.retry_s)" in out, out[-2000:]
        assert "llmops run --resume RUN_DIR" in out
        (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if (p / "state.json").exists()]
        state = json.loads((run_dir / "state.json").read_text())
        assert Path(state["model_dir"]).is_dir() and "gate" not in state  # model on disk, nothing registered
        assert (run_dir / "tracking-spool.jsonl").stat().st_size > 0  # what MLflow did not take is kept

        server = start_mlflow_server(tmp_path / "server", port)
        assert _versions(uri, "gone") == []
        resumed = subprocess.run(
            [sys.executable, "-m", "llmops.cli", "run", "--resume", str(run_dir)],
            cwd=tmp_path,
            env=_env(uri),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert not (run_dir / "tracking-spool.jsonl").exists()
        _check_metrics_complete(uri, state["run_id"])
        assert len(_versions(uri, "gone")) == 1
    finally:
        _stop(server)
