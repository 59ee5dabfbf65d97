"""`llmops run` end to end on a tiny model, tracked by a real MLflow server process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import llmops_cli

pytestmark = pytest.mark.integration


def test_run_end_to_end(tmp_path: Path, mlflow_server: str, tiny_run_args: Callable[..., list[str]]) -> None:
    from mlflow.tracking import MlflowClient

    name = "e2e-idp"
    args = tiny_run_args(
        tmp_path / "runs",
        "--max_steps",
        "12",
        "--set",
        f"tracking.registered_model={name}",
        "--set",
        "training.save_steps=6",
        "--mlflow_experiment_name",
        "e2e",
    )
    proc = llmops_cli(args, tmp_path, tracking_uri=mlflow_server)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = list((tmp_path / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    for rel in (
        "config.yaml",
        "state.json",
        "eval/predictions.jsonl",
        "eval/baseline_predictions.jsonl",
        "plots/loss_curve.png",
        "plots/field_f1.png",
        "model/merged/config.json",
    ):
        assert (run_dir / rel).exists(), rel
    assert summary["train"]["steps"] == 12
    assert "baseline vs fine-tuned" in proc.stdout

    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["training.max_steps"] == "12"
    assert run.data.params["student"] == args[args.index("--student") + 1]
    for key in ("baseline/field_f1", "eval/field_f1", "eval/json_valid_rate", "train/loss"):
        assert key in run.data.metrics, key
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) >= 2
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "eval", "plots", "model"} <= artifacts
    version = client.get_model_version_by_alias(name, "challenger")
    assert version.run_id == run.info.run_id
    champion_expected = summary["metrics"]["field_f1"] > summary["baseline"]["field_f1"]
    assert summary["promoted"] == champion_expected
    if champion_expected:
        assert client.get_model_version_by_alias(name, "champion").version == version.version

    # The registered model answers through `predict` and `evaluate` by its registry URI.
    tiny_eval = args[args.index("--eval_data") + 1]
    pred = llmops_cli(
        [
            "predict",
            "--model",
            f"models:/{name}@challenger",
            "--document",
            "Invoice INV-77 total 5.00",
            "--max-new-tokens",
            "8",
        ],
        tmp_path,
        tracking_uri=mlflow_server,
    )
    assert pred.returncode == 0, pred.stderr[-3000:]
    ev = llmops_cli(
        [
            "evaluate",
            "--model",
            f"models:/{name}@challenger",
            "--eval_data",
            tiny_eval,
            "--set",
            "eval.max_new_tokens=40",
            "--schema",
            args[args.index("--schema") + 1],
        ],
        tmp_path,
        tracking_uri=mlflow_server,
    )
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert json.loads(ev.stdout.strip().splitlines()[-1])["field_f1"] == pytest.approx(summary["metrics"]["field_f1"])

    # Another run never reuses this run's folder.
    proc2 = llmops_cli(args, tmp_path, tracking_uri=mlflow_server)
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    assert len(list((tmp_path / "runs").iterdir())) == 2
