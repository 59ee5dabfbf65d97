"""Runs that finish together and gate against the same champion: two processes x 5 runs on a real MLflow server.

Every version is registered, the champion ends on the best one, and each version's gate tags are the decision that
was applied: promoted versions form one chain (each promoted over the champion it really replaced), which two runs
both reading the same old champion and both "winning" would break.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKER = r"""
import json, sys, time
from pathlib import Path
from llmops.config import build_config
from llmops.tracking.mlflow_tracker import MlflowTracker

uri, name, start_at, model_dir = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
values = json.loads(sys.argv[5])
cfg = build_config(base={"tracking": {"tracking_uri": uri, "experiment_name": "race", "registered_model": name,
                                      "system_metrics": False, "log_model": False}})
tracker = MlflowTracker(cfg)
while time.time() < start_at:  # both processes begin together
    time.sleep(0.005)
for value in values:
    with tracker.start(f"race-{value}"):
        tracker.log_metrics({"eval/field_f1": value, "baseline/field_f1": 0.0})
        tracker.register(model_dir, cfg, {"field_f1": value}, {"field_f1": 0.0})
"""


@pytest.mark.integration
def test_two_processes_racing_five_runs_each_leave_the_best_as_champion(mlflow_server: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    name = "race-model"
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    # Interleaved values, rising in both processes so most runs should win when they finish: the hard case.
    a, b = [0.10, 0.30, 0.50, 0.70, 0.90], [0.20, 0.40, 0.60, 0.80, 0.85]
    start_at = time.time() + 8  # after both interpreters have imported mlflow
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, mlflow_server, name, str(start_at), str(model_dir), json.dumps(values)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for values in (a, b)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]

    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    versions = client.search_model_versions(f"name='{name}'")
    assert len(versions) == 10
    value = {v.version: float(v.tags["llmops.gate.value"]) for v in versions}
    assert sorted(value.values()) == sorted(a + b)
    champion = client.get_registered_model(name).aliases["champion"]
    assert value[str(champion)] == 0.90
    assert not client.search_registered_models(f"name='{name}.champion-lock'")  # released

    promoted = {v.version: v.tags for v in versions if v.tags["llmops.gate.promoted"] == "true"}
    befores = [tags["llmops.gate.champion_before"] or None for tags in promoted.values()]
    assert len(befores) == len(set(befores)), "two versions were promoted over the same champion"
    assert befores.count(None) == 1  # the first champion replaced none
    for version, tags in promoted.items():
        before = tags["llmops.gate.champion_before"]
        assert not before or (before in promoted and value[before] < value[version])
    for v in versions:  # a version that lost lost to a champion at least as good
        if v.tags["llmops.gate.promoted"] != "true" and v.tags["llmops.gate.champion_before"]:
            assert value[v.tags["llmops.gate.champion_before"]] >= value[v.version]
    # The chain of promotions ends at the champion.
    replaced = {tags["llmops.gate.champion_before"] for tags in promoted.values()}
    assert [v for v in promoted if v not in replaced] == [str(champion)]
