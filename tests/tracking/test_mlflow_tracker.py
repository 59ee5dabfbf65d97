"""MlflowTracker against a real `mlflow server` process: runs, params, metrics, artifacts, plots, registry gate."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from llmops.errors import TrackingError
from llmops.tracking import CHALLENGER, CHAMPION, make_tracker, resolve_model
from llmops.tracking.mlflow_tracker import MlflowTracker

pytestmark = pytest.mark.integration


def _aliases(client: MlflowClient, name: str) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}


def _run_and_register(cfg, model_dir: Path, eval_value: float, baseline_value: float | None = None):
    tracker = make_tracker(cfg)
    with tracker.start("run", {"llmops.flow_type": "IDP"}):
        if baseline_value is not None:
            tracker.log_metrics({"baseline/field_f1": baseline_value})
        tracker.log_metrics({"eval/field_f1": eval_value})
        result = tracker.register(model_dir, cfg, {"field_f1": eval_value})
    return tracker, result


def test_run_records_params_metrics_artifacts_and_plots(mlflow_server, make_cfg, tmp_path):
    cfg = make_cfg(mlflow_server)
    tracker = make_tracker(cfg)
    assert isinstance(tracker, MlflowTracker) and tracker.tracking_uri == mlflow_server
    tracker.check()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "predictions.jsonl").write_text('{"id": "1"}\n')
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    params = {
        "student": "tiny",
        "hub": {"token": "hf_SECRET"},
        "data": "s3://alice:pw@minio:9000/bucket/train.jsonl",
        "long": "x" * 7000,
    }
    with tracker.start("params-run", {"llmops.flow_type": "IDP"}):
        tracker.log_params(params)
        tracker.log_metrics({"baseline/field_f1": 0.1, "eval/invoice/field_f1": 0.6, "eval/my class(x)/f1": 0.5})
        for step, loss in [(1, 2.0), (2, 1.5), (3, 1.1)]:
            tracker.log_metrics({"train/loss": loss}, step=step)
        tracker.log_artifact(tmp_path / "out" / "predictions.jsonl", "eval")
        tracker.log_artifacts(tmp_path / "adapter", "adapter")
        curve = tracker.log_loss_curve([(1, 2.0), (2, 1.5), (3, 1.1)], tmp_path / "plots" / "loss_curve.png")
        bars = tracker.log_field_plot({"total": 0.9, "date": 0.4}, tmp_path / "plots" / "field_f1.png")
        run_id = tracker.run_id
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and bars.exists()

    client = MlflowClient(mlflow_server)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "params-run"
    assert run.data.tags["llmops.flow_type"] == "IDP"
    p = run.data.params
    assert p["student"] == "tiny" and p["hub.token"] == "***"
    assert p["data"] == "s3://***@minio:9000/bucket/train.jsonl"
    assert len(p["long"]) == 6000 and p["long"].endswith("...")
    m = run.data.metrics
    assert m["baseline/field_f1"] == 0.1 and m["eval/invoice/field_f1"] == 0.6 and m["eval/my class_x_/f1"] == 0.5
    history = client.get_metric_history(run_id, "train/loss")
    assert [(h.step, h.value) for h in sorted(history, key=lambda h: h.step)] == [(1, 2.0), (2, 1.5), (3, 1.1)]
    files = {f.path for d in ("eval", "adapter", "plots") for f in client.list_artifacts(run_id, d)}
    assert files == {
        "eval/predictions.jsonl",
        "adapter/adapter_config.json",
        "plots/loss_curve.png",
        "plots/field_f1.png",
    }


def test_gate_champion_moves_only_on_a_better_model(mlflow_server, make_cfg, fake_model):
    cfg = make_cfg(mlflow_server)
    name = cfg.registered_model_name()
    client = MlflowClient(mlflow_server)

    _, first = _run_and_register(cfg, fake_model("v1"), eval_value=0.5, baseline_value=0.2)
    assert (first.promoted, first.version, first.champion_version, first.reference_value) == (True, "1", None, 0.2)
    assert "baseline" in first.reason
    assert _aliases(client, name) == {CHAMPION: "1", CHALLENGER: "1"}

    _, second = _run_and_register(cfg, fake_model("v2"), eval_value=0.4, baseline_value=0.1)
    assert (second.promoted, second.version, second.champion_version, second.reference_value) == (False, "2", "1", 0.5)
    assert _aliases(client, name) == {CHAMPION: "1", CHALLENGER: "2"}
    tags = client.get_model_version(name, "2").tags
    assert tags["llmops.gate.promoted"] == "false" and tags["llmops.gate.reference"] == "0.5"
    assert tags["llmops.gate.metric"] == "field_f1" and "champion v1" in tags["llmops.gate.reason"]

    tracker, third = _run_and_register(cfg, fake_model("v3"), eval_value=0.7)
    assert (third.promoted, third.version, third.new_value) == (True, "3", 0.7)
    assert _aliases(client, name) == {CHAMPION: "3", CHALLENGER: "3"}
    mv = client.get_model_version(name, "3")
    assert mv.run_id == tracker.run_id and mv.tags["llmops.gate.promoted"] == "true"

    local = Path(resolve_model(f"models:/{name}@{CHAMPION}", tracking_uri=mlflow_server))
    assert json.loads((local / "config.json").read_text()) == {"label": "v3"}
    assert (local / "model.safetensors").read_bytes() == b"v3" * 10
    assert resolve_model(f"models:/{name}/2", tracking_uri=mlflow_server).endswith("/2")
    assert resolve_model("some/local/path") == "some/local/path"


def test_failed_runs_never_move_champion(mlflow_server, make_cfg, fake_model):
    cfg = make_cfg(mlflow_server)
    name = cfg.registered_model_name()
    client = MlflowClient(mlflow_server)
    _run_and_register(cfg, fake_model("good"), eval_value=0.5, baseline_value=0.2)

    tracker = make_tracker(cfg)
    with pytest.raises(ZeroDivisionError):
        with tracker.start("crash-before-register", {}):
            tracker.log_metrics({"eval/field_f1": 0.99})
            _ = 1 / 0
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    assert [v.version for v in client.search_model_versions(f"name='{name}'")] == ["1"]

    tracker = make_tracker(cfg)
    with pytest.raises(RuntimeError, match="after registering"):
        with tracker.start("crash-after-register", {}):
            result = tracker.register(fake_model("better-but-crashed"), cfg, {"field_f1": 0.9})
            assert result.promoted
            raise RuntimeError("after registering")
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    assert _aliases(client, name) == {CHAMPION: "1", CHALLENGER: "2"}
    tags = client.get_model_version(name, "2").tags
    assert tags["llmops.gate.promoted"] == "false" and "failed" in tags["llmops.gate.reason"]


def test_a_lost_registration_answer_does_not_register_twice(mlflow_server, make_cfg, fake_model):
    """The server creates the version but its answer is lost: the retry finds the run's version, not a second one."""
    import requests

    cfg = make_cfg(mlflow_server)
    tracker = make_tracker(cfg)
    real_create = tracker._client.create_model_version
    answers_lost = []

    def create_then_lose_the_answer(*args, **kwargs):
        version = real_create(*args, **kwargs)
        if not answers_lost:
            answers_lost.append(version.version)
            raise requests.ConnectionError("Connection aborted: RemoteDisconnected")
        return version

    tracker._client.create_model_version = create_then_lose_the_answer
    with tracker.start("lost answer", {}):
        tracker.log_metrics({"eval/field_f1": 0.5})
        result = tracker.register(fake_model("lost"), cfg, {"field_f1": 0.5})
    name = cfg.registered_model_name()
    versions = MlflowClient(mlflow_server).search_model_versions(f"name='{name}'")
    assert answers_lost == ["1"] and [v.version for v in versions] == ["1"] and result.version == "1"
    assert _aliases(MlflowClient(mlflow_server), name) == {CHAMPION: "1", CHALLENGER: "1"}


def test_a_champion_lock_released_while_asked_for_is_taken_on_the_next_try(mlflow_server):
    """The store answers a create that collided with a lock released meanwhile with RESOURCE_DOES_NOT_EXIST (it
    reads the holder's row for its message and finds it gone): the next try takes the lock. That interleaving is
    inside the server and cannot be timed from a test, so the holder's release and the store's answer are played
    here by a wrapper around the real client, on a real server."""
    from mlflow.exceptions import RestException

    from llmops.tracking.registry import champion_lock, lock_name

    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    holder = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    lock = lock_name("released-meanwhile")
    holder.create_registered_model(lock)
    real_create = client.create_registered_model
    tries = []

    def create_as_the_holder_releases(name, *args, **kwargs):
        tries.append(name)
        if len(tries) == 1:
            holder.delete_registered_model(lock)  # released between the store's insert and its read
            raise RestException(
                {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Registered Model with name={name} not found"}
            )
        return real_create(name, *args, **kwargs)

    client.create_registered_model = create_as_the_holder_releases
    with champion_lock(client, "released-meanwhile", timeout_s=10):
        assert holder.get_registered_model(lock).name == lock  # held by us now
    assert tries == [lock, lock]
    assert not holder.search_registered_models(f"name='{lock}'")  # and released


def test_two_runs_setting_challenger_at_once_both_register(mlflow_server, make_cfg, fake_model):
    """Two first registrations set `challenger` together; the store's read-then-insert lets both insert and the
    loser gets the unique key's integrity error. The collision is inside the server and cannot be timed from a
    test, so the other run's write and the store's answer are played by a wrapper around the real client."""
    from mlflow.exceptions import RestException

    cfg = make_cfg(mlflow_server)
    tracker = make_tracker(cfg)
    real_alias = tracker._client.set_registered_model_alias
    collided = []

    def alias_after_a_collision(name, alias, version):
        if alias == CHALLENGER and not collided:
            collided.append(version)
            raise RestException(
                {
                    "error_code": "BAD_REQUEST",
                    "message": "(sqlite3.IntegrityError) UNIQUE "
                    "constraint failed: registered_model_aliases.name, registered_model_aliases.alias",
                }
            )
        return real_alias(name, alias, version)

    tracker._client.set_registered_model_alias = alias_after_a_collision
    with tracker.start("collided", {}):
        tracker.log_metrics({"eval/field_f1": 0.5})
        tracker.register(fake_model("collided"), cfg, {"field_f1": 0.5})
    assert collided and _aliases(MlflowClient(mlflow_server), cfg.registered_model_name())[CHALLENGER] == "1"


def test_a_busy_store_at_release_does_not_leave_the_champion_lock_behind(mlflow_server):
    """A store busy at the moment of release (SQLite's "database is locked") must not leave the lock held: every
    other run's gate would wait for it to go stale. The busy answer is played by a wrapper around the real client."""
    from mlflow.exceptions import RestException

    from llmops.tracking.registry import champion_lock, lock_name

    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    lock = lock_name("busy-at-release")
    real_delete = client.delete_registered_model
    busy = []

    def delete_when_the_store_is_free(name):
        if not busy:
            busy.append(name)
            raise RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "database is locked"})
        return real_delete(name)

    client.delete_registered_model = delete_when_the_store_is_free
    with champion_lock(client, "busy-at-release", timeout_s=10):
        pass
    assert busy == [lock] and not client.search_registered_models(f"name='{lock}'")


def test_resume_continues_the_same_run(mlflow_server, make_cfg):
    cfg = make_cfg(mlflow_server)
    first = make_tracker(cfg)
    with pytest.raises(KeyboardInterrupt):
        with first.start("interrupted", {}):
            first.log_metrics({"train/loss": 2.0}, step=1)
            raise KeyboardInterrupt
    client = MlflowClient(mlflow_server)
    assert client.get_run(first.run_id).info.status == "KILLED"
    again = make_tracker(cfg)
    with again.start("ignored", {}, run_id=first.run_id):
        again.log_metrics({"train/loss": 1.0}, step=2)
    assert again.run_id == first.run_id
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(first.run_id, "train/loss")) == 2
    with pytest.raises(TrackingError, match="cannot be resumed"):
        with again.start("x", {}, run_id="0" * 32):
            pass


def test_experiment_created_by_another_process_meanwhile_is_used(mlflow_server, make_cfg):
    """Two runs starting together both find no experiment; the one that loses the create uses the winner's."""
    cfg = make_cfg(mlflow_server)
    tracker = MlflowTracker(cfg)
    other = MlflowClient(mlflow_server)
    real_lookup = tracker._client.get_experiment_by_name

    def lookup_then_lose_the_race(name):
        found = real_lookup(name)
        if found is None:
            other.create_experiment(name)  # the other process wins between our lookup and our create
        return found

    tracker._client.get_experiment_by_name = lookup_then_lose_the_race
    with tracker.start("second", {}):
        pass
    experiment = other.get_experiment_by_name(cfg.tracking.experiment_name)
    assert other.get_run(tracker.run_id).info.experiment_id == experiment.experiment_id


def test_system_metrics_are_logged(mlflow_server, make_cfg, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")
    cfg = make_cfg(mlflow_server, system_metrics=True)
    tracker = make_tracker(cfg)
    with tracker.start("system", {}):
        time.sleep(1.5)
    metrics = MlflowClient(mlflow_server).get_run(tracker.run_id).data.metrics
    assert "system/cpu_utilization_percentage" in metrics
    assert "system/system_memory_usage_megabytes" in metrics


def test_unreachable_server_fails_fast(make_cfg):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tracker = make_tracker(make_cfg(f"http://alice:s3cret@127.0.0.1:{port}"))
    t0 = time.monotonic()
    with pytest.raises(TrackingError) as info:
        tracker.check()
    assert time.monotonic() - t0 < 15
    message = str(info.value)
    assert f"http://***@127.0.0.1:{port}" in message and "s3cret" not in message
    assert "mlflow server" in message and "tracking.enabled=false" in message


def test_registry_uri_not_found_is_a_clear_error(mlflow_server):
    with pytest.raises(TrackingError, match="not found in the registry"):
        resolve_model("models:/no-such-model@champion", tracking_uri=mlflow_server)
    with pytest.raises(TrackingError, match="expected models:/NAME@ALIAS"):
        resolve_model("models:/", tracking_uri=mlflow_server)
