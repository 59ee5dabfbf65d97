"""Tracking without a server (SQLite file, MLflow's default) and with tracking switched off (NullTracker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from llmops.tracking import CHALLENGER, CHAMPION, NullTracker, Tracker, make_tracker, resolve_model
from llmops.tracking.uri import resolve_tracking_uri, sqlite_uri


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert resolve_tracking_uri("sqlite:///sub/x.db") == f"sqlite:///{tmp_path / 'sub' / 'x.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_tracking_uri() == "http://env:5000"
    assert resolve_tracking_uri("http://cfg:5000") == "http://cfg:5000"
    assert resolve_tracking_uri(default="sqlite:///d.db") == "http://env:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_tracking_uri(default="sqlite:///d.db") == f"sqlite:///{tmp_path / 'd.db'}"
    assert resolve_tracking_uri("sqlite:///:memory:") == "sqlite:///:memory:"
    assert sqlite_uri("sub/y.db") == f"sqlite:///{tmp_path / 'sub' / 'y.db'}"


def _aliases(client: MlflowClient, name: str) -> dict[str, str]:
    # The SQLite store reports alias versions as int, the REST store as str.
    return {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}


def test_default_sqlite_run_register_gate_and_resolve(make_cfg, fake_model, tmp_path):
    cfg = make_cfg(None, log_model=False)
    tracker = make_tracker(cfg)
    assert tracker.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker.check()
    model_dir = fake_model("local")
    with tracker.start("local-run", {"llmops.flow_type": "IDP"}):
        tracker.log_params({"training": {"learning_rate": 0.001}})
        tracker.log_metrics({"train/loss": 1.5}, step=3)
        result = tracker.register(model_dir, cfg, {"field_f1": 0.3}, {"field_f1": 0.3})
    assert (result.promoted, result.version, result.reference_value) == (False, "1", 0.3)
    assert "<= baseline" in result.reason

    client = MlflowClient(tracker.tracking_uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.params["training.learning_rate"] == "0.001"
    assert (tmp_path / "mlflow.db").is_file()
    name = cfg.registered_model_name()
    assert _aliases(client, name) == {CHALLENGER: "1"}
    # log_model=false: the version holds a reference to the folder, and resolving it gives the folder back.
    assert resolve_model(f"models:/{name}@{CHALLENGER}", tracking_uri=tracker.tracking_uri) == str(model_dir)
    assert [f.path for f in client.list_artifacts(tracker.run_id, "model")] == ["model/llmops_model_ref.json"]

    # Another model in the same store, no baseline and no champion: the first version becomes champion.
    other = make_cfg(None, registered_model="other")
    tracker = make_tracker(other)
    with tracker.start("first", {}):
        result = tracker.register(fake_model("first"), other, {"eval/field_f1": 0.1})
    assert result.promoted and "first version" in result.reason
    assert _aliases(client, "other") == {CHAMPION: "1", CHALLENGER: "1"}
    local = Path(resolve_model(f"models:/other@{CHAMPION}", tracking_uri=tracker.tracking_uri))
    assert json.loads((local / "config.json").read_text()) == {"label": "first"}


def test_null_tracker_has_the_same_methods_and_records_nothing(make_cfg, tmp_path):
    tracker = make_tracker(make_cfg(None, enabled=False))
    assert isinstance(tracker, NullTracker) and isinstance(tracker, Tracker)
    tracker.check()
    with tracker.start("off", {"a": "b"}) as t:
        t.log_params({"token": "x"})
        t.log_metrics({"eval/field_f1": 1.0}, step=1)
        t.log_artifact(tmp_path / "missing.txt")
        t.log_artifacts(tmp_path, "x")
        curve = t.log_loss_curve([(1, 1.0), (2, 0.5)], tmp_path / "plots" / "loss.png")
        assert t.log_field_plot({}, tmp_path / "plots" / "fields.png") is None
        result = t.register(tmp_path, None, {"field_f1": 1.0})
    assert curve.read_bytes()[:4] == b"\x89PNG"
    assert not result.promoted and result.version is None and tracker.run_id is None
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


def test_logging_outside_a_run_is_a_programming_error(make_cfg):
    tracker = make_tracker(make_cfg("http://127.0.0.1:1"))
    with pytest.raises(RuntimeError, match="inside `with tracker.start"):
        tracker.log_metrics({"eval/field_f1": 1.0})
