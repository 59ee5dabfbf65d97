"""A real MLflow tracking server (one per test session) and small helpers for the tracking tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmops.config import RunConfig, build_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    # The server runs uvicorn workers as children: signal its own process group (its PID), nothing else.
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of an `mlflow server` process (SQLite backend, proxied artifacts), stopped by PID at teardown."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    cmd = [
        str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"), "--workers", "1",
    ]
    log_path = root / "server.log"
    # No job runner: it starts ~8 extra consumer processes for GenAI jobs these tests never use.
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited early:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after 90 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        _stop(proc)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test works in its own folder: no stray mlflow.db / mlruns, no user MLflow settings, own model cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("LLMOPS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def make_cfg(request: pytest.FixtureRequest) -> Callable[..., RunConfig]:
    """RunConfig factory with a per-test experiment and registered model name."""
    name = request.node.name.replace("[", "-").replace("]", "").lower()

    def make(uri: str | None, **tracking: object) -> RunConfig:
        section = {"experiment_name": f"exp-{name}", "registered_model": f"model-{name}", "system_metrics": False}
        if uri:
            section["tracking_uri"] = uri
        section.update(tracking)
        return build_config(base={"tracking": section})

    return make


@pytest.fixture
def fake_model(tmp_path: Path) -> Callable[[str], Path]:
    """A model-shaped folder (config.json + a weights file) whose content identifies it."""

    def make(label: str) -> Path:
        d = tmp_path / "models" / label
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"label": label}))
        (d / "model.safetensors").write_bytes(label.encode() * 10)
        return d

    return make
