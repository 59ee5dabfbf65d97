"""The step graph shared by `llmops run`, the single-step commands and the Kubeflow components.

validate (`llmops.run_inputs`, re-exported here) -> baseline eval -> train -> eval -> gate -> register. The steps
are plain functions of a Run (`llmops.run_steps`, re-exported here), so a local run and a cluster run execute the
same code; this module makes and reopens runs and chains the steps.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmops.config import RunConfig, build_config, read_yaml
from llmops.environment import quiet_libraries
from llmops.errors import ConfigError, LlmopsError
from llmops.run_inputs import Prepared, eval_examples, load_checked, make_task, validate
from llmops.run_steps import (  # noqa: F401 - the steps, re-exported for the Kubeflow components
    STATE_FILE,
    Run,
    evaluate_model,
    record_training,
    run_summary,
    save_state,
    step_baseline,
    step_evaluate,
    step_gate,
    step_register,
    step_train,
)
from llmops.summary import RunSummary, write_summary

CONFIG_FILE = "config.yaml"


# ---------------------------------------------------------------- inputs


def prepare(cfg: RunConfig) -> Prepared:
    """The validate step, then `student: tiny` / `teacher: tiny` made a folder (built from the training data)."""
    from llmops.models.builtin import build_tiny_roles
    from llmops.models.policy import set_policy

    set_policy(cfg.models)
    prepared = validate(cfg)
    build_tiny_roles(cfg, prepared.train)
    return prepared


# ---------------------------------------------------------------- run folder and state


def new_run_dir(cfg: RunConfig) -> Path:
    """A fresh folder under save_dir; never reuses another run's folder."""
    base = Path(cfg.save_dir)
    stem = cfg.tracking.run_name or f"{cfg.flow_type}-{cfg.train_type}-{time.strftime('%Y%m%d-%H%M%S')}".lower()
    for _ in range(100):
        name = stem if not (base / stem).exists() else f"{stem}-{secrets.token_hex(2)}"
        path = base / name
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise LlmopsError(f"{base}: could not create a new run folder")


def _load_state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _execute(run: Run) -> RunSummary:
    if run.cfg.eval.baseline:
        step_baseline(run)
    step_train(run)
    step_evaluate(run)
    step_register(run)
    return run_summary(run)


def _tracker(cfg: RunConfig) -> Any:
    """The run's tracker, checked to be reachable before anything is written."""
    from llmops.tracking import make_tracker

    tracker = make_tracker(cfg)
    tracker.check()
    return tracker


def _tags(cfg: RunConfig, run_dir: Path) -> dict[str, str]:
    return {"llmops.flow_type": cfg.flow_type, "llmops.train_type": cfg.train_type, "llmops.run_dir": str(run_dir)}


@contextmanager
def recording_interruption(run: Run) -> Iterator[None]:
    """Training stopped on SIGTERM/SIGINT: state.json and the MLflow run say so (the run ends KILLED), then the
    error goes on to the CLI (exit 143). A resumed run clears the mark."""
    from llmops.errors import Interrupted

    if run.state.pop("interrupted", None) is not None:
        run.save()
    try:
        yield
    except Interrupted as e:
        run.state["interrupted"] = {
            "signal": e.signal_name,
            "step": e.step,
            "checkpoint": e.checkpoint,
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        run.save()
        try:
            run.tracker.set_tags({"llmops.interrupted": f"{e.signal_name} at step {e.step}"})
        except Exception as tag_error:  # the state file already says it; never hide the interruption
            import logging

            logging.getLogger(__name__).warning("could not tag the MLflow run interrupted: %s", tag_error)
        raise


def _run_in(cfg: RunConfig, prepared: Prepared, run_dir: Path, tracker: Any, resume: bool) -> RunSummary:
    run = Run(cfg, prepared, run_dir, tracker, _load_state(run_dir), resume=resume)
    with tracker.start(run_dir.name, _tags(cfg, run_dir), run_id=run.state.get("run_id")):
        tracker.keep_unsent_in(run_dir)
        if not run.state.get("run_id"):
            run.state["run_id"] = tracker.run_id
            run.save()
            tracker.log_params(cfg.to_dict())
            tracker.log_artifact(run_dir / CONFIG_FILE)
        with recording_interruption(run):
            summary = _execute(run)
    write_summary(run_dir, summary)
    return summary


def run(cfg: RunConfig) -> RunSummary:
    """The whole pipeline in a new run folder under cfg.save_dir."""
    prepared = prepare(cfg)
    quiet_libraries()
    tracker = _tracker(cfg)
    run_dir = new_run_dir(cfg)
    cfg.save(run_dir / CONFIG_FILE)
    return _run_in(cfg, prepared, run_dir, tracker, resume=False)


def start_run(cfg: RunConfig) -> Path:
    """The validate step on its own: checks, a new run folder with the config, and the MLflow run (left open to
    later steps, which `open_run` the folder)."""
    prepare(cfg)
    quiet_libraries()
    tracker = _tracker(cfg)
    run_dir = new_run_dir(cfg)
    cfg.save(run_dir / CONFIG_FILE)
    with tracker.start(run_dir.name, _tags(cfg, run_dir)):
        save_state(run_dir, {"run_id": tracker.run_id})
        tracker.log_params(cfg.to_dict())
        tracker.log_artifact(run_dir / CONFIG_FILE)
    return run_dir


@contextmanager
def open_run(run_dir: str | Path) -> Iterator[Run]:
    """A run started by `start_run`, its MLflow run reopened, for one more step (a Kubeflow component)."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file() or not _load_state(run_dir).get("run_id"):
        raise ConfigError(f"{run_dir}: not a started run folder (no {CONFIG_FILE} or run id); run the validate step")
    cfg = build_config(base=read_yaml(run_dir / CONFIG_FILE))
    from llmops.models.policy import set_policy

    set_policy(cfg.models)
    prepared = validate(cfg)
    quiet_libraries()
    tracker = _tracker(cfg)
    state = _load_state(run_dir)
    with tracker.start(run_dir.name, _tags(cfg, run_dir), run_id=state["run_id"]):
        tracker.keep_unsent_in(run_dir)
        run = Run(cfg, prepared, run_dir, tracker, state, resume=True)
        yield run
    if "gate" in run.state:
        write_summary(run_dir, run_summary(run))


def resume(run_dir: str | Path, overrides: list[str] | None = None) -> RunSummary:
    """Continue an interrupted run from its last checkpoint, with its saved config."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no {CONFIG_FILE}); pass the folder printed by `llmops run`")
    cfg = build_config(base=read_yaml(run_dir / CONFIG_FILE), overrides=overrides)
    prepared = prepare(cfg)
    quiet_libraries()
    return _run_in(cfg, prepared, run_dir, _tracker(cfg), resume=True)


# ---------------------------------------------------------------- single steps


def evaluate_saved(cfg: RunConfig, model: str, out: Path | None = None) -> dict[str, float]:
    """Evaluate a saved or registered model on cfg.eval_data (the pipeline's eval step on its own)."""
    from llmops.models.device import eval_load_dtype
    from llmops.models.loader import load_for_inference
    from llmops.models.policy import set_policy
    from llmops.tracking import resolve_model

    set_policy(cfg.models)
    if not cfg.eval_data:
        raise ConfigError("evaluate: pass --eval_data FILE")
    task = make_task(cfg)
    records = load_checked(cfg.eval_data, cfg, task, "eval")
    examples = eval_examples(cfg, task, records)
    quiet_libraries()
    mdl, tok = load_for_inference(resolve_model(model), eval_load_dtype(cfg.eval.bf16))
    return evaluate_model(mdl, tok, Prepared(task, [], examples), cfg, out).metrics
