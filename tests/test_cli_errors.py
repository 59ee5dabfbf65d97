"""Bad inputs end with one clear message and a non-zero exit, before any model loads, registering nothing."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

import pytest
from tests.conftest import free_port, llmops_cli

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"invoice_number": {"type": "string"}, "total_amount": {"type": "number"}},
    "required": ["invoice_number"],
}
GOOD = {"document": "Invoice INV-1 total 12.50", "fields": {"invoice_number": "INV-1", "total_amount": 12.5}}


# Every case here fails before any model loads: two minutes is plenty.
_llmops = functools.partial(llmops_cli, timeout=120)


def _write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    return tmp_path


def _run_args(work: Path, data: str, schema: str = "schema.json") -> list[str]:
    # The student path does not exist: if a model were loaded first, the error would name the model instead.
    return [
        "run",
        "--student",
        str(work / "no-such-model"),
        "--data",
        data,
        "--schema",
        schema,
        "--save_dir",
        str(work / "runs"),
        "--flow_type",
        "IDP",
        "--train_type",
        "SFT",
    ]


def _assert_clean_failure(proc: subprocess.CompletedProcess, work: Path, *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    assert "no-such-model" not in proc.stderr  # failed before loading the model
    assert not list((work / "runs").glob("*/model")) if (work / "runs").exists() else True
    assert not (work / "mlflow.db").exists() or _registered_models(work) == []


def _registered_models(work: Path) -> list[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    return [m.name for m in client.search_registered_models()]


BAD_LINES = {
    "malformed_json": ('{"document": "x", "fields": {', "data.jsonl:2"),
    "missing_field": ('{"document": "Invoice INV-2"}', "data.jsonl:2"),
    "wrong_type": ('{"document": "Invoice INV-2", "fields": "INV-2"}', "data.jsonl:2"),
    "violates_schema": (
        '{"document": "Invoice INV-2", "fields": {"invoice_number": "INV-2", "total_amount": "lots"}}',
        "data.jsonl:2",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_bad_data_line(work: Path, kind: str) -> None:
    line, where = BAD_LINES[kind]
    _write_jsonl(work / "data.jsonl", [json.dumps(GOOD), line, json.dumps(GOOD)])
    proc = _llmops(_run_args(work, "data.jsonl"), work)
    _assert_clean_failure(proc, work, where)
    assert proc.returncode == 2


def test_data_validate_reports_every_problem(work: Path) -> None:
    lines = [json.dumps(GOOD)] + [line for line, _ in BAD_LINES.values()]
    _write_jsonl(work / "data.jsonl", lines)
    proc = _llmops(
        ["data", "validate", "data.jsonl", "--flow-type", "IDP", "--train-type", "SFT", "--schema", "schema.json"], work
    )
    assert proc.returncode == 2
    for n in range(2, 2 + len(BAD_LINES)):
        assert f"data.jsonl:{n}:" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_invalid_json_schema(work: Path) -> None:
    (work / "bad_schema.json").write_text(json.dumps({"type": "objekt"}))
    _write_jsonl(work / "data.jsonl", [json.dumps(GOOD)])
    proc = _llmops(_run_args(work, "data.jsonl", "bad_schema.json"), work)
    _assert_clean_failure(proc, work, "bad_schema.json")


def test_missing_file(work: Path) -> None:
    proc = _llmops(_run_args(work, "nowhere.jsonl"), work)
    _assert_clean_failure(proc, work, "nowhere.jsonl")


def test_unreachable_s3_endpoint(work: Path) -> None:
    port = free_port()  # nobody listening
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    proc = _llmops(_run_args(work, "s3://bucket/data.jsonl"), work, env=env)
    _assert_clean_failure(proc, work, "s3://bucket/data.jsonl")


def test_unknown_config_key(work: Path) -> None:
    _write_jsonl(work / "data.jsonl", [json.dumps(GOOD)])
    proc = _llmops(_run_args(work, "data.jsonl") + ["--set", "training.learnin_rate=1"], work)
    _assert_clean_failure(proc, work, "training.learnin_rate")
    assert proc.returncode == 2


def test_bad_enum_value(work: Path) -> None:
    _write_jsonl(work / "data.jsonl", [json.dumps(GOOD)])
    args = _run_args(work, "data.jsonl")
    args[args.index("SFT")] = "PPO"
    proc = _llmops(args, work)
    _assert_clean_failure(proc, work, "train_type")
    assert proc.returncode == 2


def test_debug_shows_traceback(work: Path) -> None:
    proc = _llmops(["--debug"] + _run_args(work, "nowhere.jsonl"), work)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_unreachable_tracking_server(work: Path) -> None:
    port = free_port()
    _write_jsonl(work / "data.jsonl", [json.dumps(GOOD)] * 3)
    proc = _llmops(_run_args(work, "data.jsonl"), work, env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"})
    _assert_clean_failure(proc, work, f"127.0.0.1:{port}")
    assert not (work / "runs").exists() or not any((work / "runs").iterdir())  # no run folder half-made


def test_seed_flags_without_effect_are_named(work: Path) -> None:
    proc = _llmops(_run_args(work, "nowhere.jsonl") + ["--host", "http://kfp.example", "--offload_folder", "off"], work)
    assert "host is set but ignored" in proc.stderr and "offload_folder is set but ignored" in proc.stderr
