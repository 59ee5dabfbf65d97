"""What each Kubeflow component does: one `llmops.pipeline` step on the run folder, nothing else.

The components in `components.py` are thin: they import this module inside the step's container (or the
`kfp.local` subprocess) and call one function. Every function works on the run folder that `validate` created on the
run's volume, reopening the run's MLflow run, so a cluster run records exactly what `llmops run` records.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from llmops.config import build_config


def validate(config: str, workdir: str) -> str:
    """Check config and data (`config`: JSON or YAML text), create the run folder under `workdir`, open the MLflow
    run; returns the folder."""
    from llmops.pipeline import start_run

    base = yaml.safe_load(config) or {}
    base["save_dir"] = str(Path(workdir) / "runs")
    return str(start_run(build_config(base=base)))


def baseline(run_dir: str) -> dict[str, float]:
    """Held-out metrics before training."""
    from llmops.pipeline import open_run, step_baseline

    with open_run(run_dir) as run:
        return step_baseline(run) if run.cfg.eval.baseline else {}


def train(run_dir: str, model_out: str | None = None, volume: str = "", mount_path: str = "/workspace") -> dict:
    """Fine-tune (resuming from the run's checkpoints on a retry); copies the model folder to `model_out`.

    With `kfp.num_nodes` > 1 the training runs as a Kubeflow Trainer TrainJob (`llmops train` under torchrun on
    every node, the run's volume `volume` mounted at the same path) that this step starts or re-attaches to.
    """
    from llmops.pipeline import open_run, step_train

    with open_run(run_dir) as run:
        result = _train_on_nodes(run, volume, mount_path) if run.cfg.kfp.num_nodes > 1 else step_train(run)
        model_dir = run.state["model_dir"]
    if model_out:
        shutil.copytree(model_dir, model_out, dirs_exist_ok=True)
    return {**result, "model_dir": model_dir}


def _train_on_nodes(run: Any, volume: str, mount_path: str) -> dict[str, float]:
    from llmops.kfp.trainjob import job_name
    from llmops.kfp.trainjob_launch import launch
    from llmops.pipeline import CONFIG_FILE, record_training

    if not volume:
        raise RuntimeError("multi-node training needs the run's volume (kfp.num_nodes > 1 runs on a cluster only)")
    out = run.run_dir / "trainjob"
    launch(
        run.cfg,
        str(run.run_dir / CONFIG_FILE),
        str(out),
        job_name(f"{run.state['run_id']}-train"),
        namespace=run.cfg.kfp.namespace,
        pvc_name=volume,
        mount_path=mount_path,
    )
    result = json.loads((out / "train_result.json").read_text())
    model_dir = out / "merged" if (out / "merged").is_dir() else out / "adapter"
    run.tracker.log_metrics(
        {"train/final_loss": result["final_loss"], "train/tokens_per_second": result.get("tokens_per_second", 0.0)}
    )
    run.trained = False  # the model is on the volume; the eval step loads it from there
    return record_training(run, model_dir, result)


def evaluate(run_dir: str) -> dict[str, Any]:
    """Held-out metrics after training, with the baseline and a Markdown report."""
    from llmops.pipeline import open_run, step_evaluate

    with open_run(run_dir) as run:
        metrics = step_evaluate(run)
        return {"metrics": metrics, "baseline": run.state.get("baseline", {}), "report": report(run.state)}


def gate(run_dir: str) -> bool:
    """Whether the fine-tuned model beats the champion (or the baseline when there is none)."""
    from llmops.pipeline import open_run, step_gate

    with open_run(run_dir) as run:
        result = step_gate(run)
        run.state["gate_preview"] = {"promoted": result.promoted, "reason": result.reason}
        run.save()
    print(f"gate: {result.reason}")
    return bool(result.promoted)


def register(run_dir: str) -> dict[str, Any]:
    """A new registry version (alias challenger); champion moves to it when it wins."""
    from llmops.pipeline import open_run, step_register

    with open_run(run_dir) as run:
        step_register(run)
        gate_state = dict(run.state["gate"])
    print(f"register: {json.dumps(gate_state)}")
    return gate_state


def deploy(config: str, registration: str, manifest_path: str | None = None) -> dict[str, Any]:
    """Serve the version that won the gate: a KServe InferenceService (vLLM) for `models:/NAME/VERSION`, written to
    `manifest_path` and applied when `kfp.kserve_apply`. Needs no run volume.

    `registration` is the register step's output (JSON). The version must still be the champion.
    """
    from mlflow.tracking import MlflowClient

    from llmops.serving.kserve import deploy_kserve, kfp_options
    from llmops.tracking.gate import CHAMPION
    from llmops.tracking.uri import resolve_tracking_uri

    cfg = build_config(base=yaml.safe_load(config) or {})
    gate_state = json.loads(registration)
    name, version = gate_state.get("registered_model"), gate_state.get("version")
    if not gate_state.get("promoted") or not name or version is None:
        raise RuntimeError(f"nothing to deploy: the model did not win the gate ({gate_state.get('reason')})")
    tracking = resolve_tracking_uri()
    client = MlflowClient(tracking)
    champion = client.get_registered_model(name).aliases.get(CHAMPION)
    if str(champion) != str(version):
        raise RuntimeError(f"{name} v{version} is no longer the champion (v{champion} is); not deploying it")
    served = deploy_kserve(
        f"models:/{name}/{version}",
        output_path=manifest_path,
        apply_now=cfg.kfp.kserve_apply,
        namespace=cfg.kfp.namespace,
        tracking_uri=tracking,
        **kfp_options(cfg.kfp),
    )
    client.set_model_version_tag(name, str(version), "llmops.deployed", "true")
    client.set_model_version_tag(name, str(version), "llmops.kserve", served["name"])
    target = {
        "model_uri": f"models:/{name}@champion",
        "version": str(version),
        "service": served["name"],
        "applied": served["applied"],
    }
    print(
        f"deploy: {target['model_uri']} (v{version}) as InferenceService {served['name']} "
        f"({served['applied'] or 'written, not applied'})"
    )
    return target


def report(state: dict[str, Any]) -> str:
    """The run's metrics as a Markdown table (baseline vs fine-tuned), for the KFP UI."""
    metrics, base = state.get("metrics", {}), state.get("baseline", {})
    lines = ["| metric | baseline | fine-tuned |", "|---|---:|---:|"]
    for key, value in metrics.items():
        before = base.get(key)
        lines.append(f"| {key} | {'-' if before is None else f'{before:.4f}'} | {value:.4f} |")
    train = state.get("train", {})
    if train:
        loss, steps = train.get("final_loss", float("nan")), train.get("steps", 0)
        lines += ["", f"final training loss {loss:.4f} after {steps} steps"]
    if state.get("sample"):
        lines += ["", "sample prediction:", "", "```", str(state["sample"]), "```"]
    return "\n".join(lines) + "\n"
