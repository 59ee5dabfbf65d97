"""One pipeline run and its steps: baseline eval, train, eval, gate, register (the graph is `llmops.pipeline`).

Every step is a plain function of a `Run` (config, inputs, run folder, tracker, state.json), so a local run and a
Kubeflow component execute the same code. What a step did is kept in state.json before it is reported to the
tracker, and each report is sent once: a resumed run neither repeats finished work nor logs it twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.config import RunConfig
from llmops.errors import LlmopsError
from llmops.run_inputs import Prepared
from llmops.summary import RunSummary

STATE_FILE = "state.json"


def save_state(run_dir: Path, state: dict[str, Any]) -> None:
    tmp = run_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, run_dir / STATE_FILE)


def evaluate_model(model: Any, tokenizer: Any, prepared: Prepared, cfg: RunConfig, out: Path) -> Any:
    """Greedy generation over the eval set, scored by the task; writes the predictions table."""
    from llmops.evaluation.eval_set import evaluate

    return evaluate(model, tokenizer, prepared.task, prepared.eval, cfg.eval, out)


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}/{k}": float(v) for k, v in metrics.items()}


def train_step(
    model: Any, tokenizer: Any, prepared: Prepared, cfg: RunConfig, run_dir: Path, tracker: Any, resume: bool, ctx: Any
) -> Any:
    """Fine-tune with the configured method; logs the loss as it goes."""
    from llmops.methods import registry

    def on_log(logs: dict) -> None:
        step = int(logs.get("step", 0))
        numeric = {f"train/{k}": float(v) for k, v in logs.items() if k != "step" and isinstance(v, (int, float))}
        if numeric:
            tracker.log_metrics(numeric, step=step)

    from llmops.methods.checkpoints import complete_checkpoints

    ckpts = run_dir / "checkpoints"
    resume_from = True if resume and complete_checkpoints(ckpts) else None  # torn ones set aside
    return registry.get(cfg.train_type).train(cfg, prepared, ctx, model, tokenizer, ckpts, resume_from, on_log)


def _evaluate_all(model: Any, tokenizer: Any, prepared: Prepared, cfg: RunConfig, ctx: Any, out: Path) -> Any:
    """Task metrics plus the method's own held-out metrics (teacher_kl, preference_accuracy, reward_margin)."""
    from llmops.methods import registry

    report = evaluate_model(model, tokenizer, prepared, cfg, out)
    report.metrics.update(registry.get(cfg.train_type).metrics(cfg, prepared, ctx, model, tokenizer))
    return report


@dataclass
class Run:
    """One run in progress: config, inputs, folder, tracker and saved state, plus the model once a step loads it.

    `llmops run` takes every step on one Run in one process; a Kubeflow component opens the Run again from its folder
    (`open_run`) and takes one step, so steps keep what later steps need in `state` (state.json).
    """

    cfg: RunConfig
    prepared: Prepared
    run_dir: Path
    tracker: Any
    state: dict[str, Any]
    resume: bool = False
    model: Any = None
    tokenizer: Any = None
    ctx: Any = None
    trained: bool = False

    def save(self) -> None:
        save_state(self.run_dir, self.state)


def _student_source(run: Run) -> str:
    """The folder or name the student loads from; a student the method made (a pruned teacher) is logged once."""
    from llmops.methods import registry
    from llmops.models.prune import PRUNE_FILE, read_report

    source = registry.get(run.cfg.train_type).student_source(run.cfg, run.prepared, run.run_dir)
    if source != run.cfg.student and run.state.get("student") != source:
        run.state["student"] = source
        run.save()
        report = read_report(source)
        if report is not None:
            run.tracker.log_params(
                {
                    "student_made_from": report["source"],
                    "student_layers": len(report["kept"]),
                    "student_kept_layers": ",".join(map(str, report["kept"])),
                    "student_prune_importance": report["method"],
                }
            )
            run.tracker.log_artifact(Path(source) / PRUNE_FILE, "student")
    return source


def _load_student(run: Run) -> None:
    """The student as training starts from it, and the method's teacher or reference."""
    from llmops.methods import registry
    from llmops.models.loader import load_student

    if run.model is None:
        run.model, run.tokenizer = load_student(_student_source(run), run.cfg.peft, run.cfg.training)
        run.ctx = registry.get(run.cfg.train_type).prepare(run.cfg, run.prepared, run.model, run.tokenizer)


def _load_trained(run: Run) -> None:
    """The fine-tuned model saved by the train step (when this process did not train it)."""
    from llmops.methods import registry
    from llmops.models.device import eval_load_dtype
    from llmops.models.loader import load_for_inference

    if run.trained:
        return
    if "model_dir" not in run.state:
        raise LlmopsError(f"{run.run_dir}: no trained model yet; the train step has not finished")
    run.model, run.tokenizer = load_for_inference(run.state["model_dir"], eval_load_dtype(run.cfg.eval.bf16))
    method = registry.get(run.cfg.train_type)
    run.ctx = method.prepare_trained(run.cfg, run.prepared, run.model, run.tokenizer)
    run.trained = True


def step_baseline(run: Run) -> dict[str, float]:
    """Held-out metrics of the model before training (once per run: kept in state)."""
    if "baseline" not in run.state:
        _load_student(run)
        base = _evaluate_all(
            run.model,
            run.tokenizer,
            run.prepared,
            run.cfg,
            run.ctx,
            run.run_dir / "eval" / "baseline_predictions.jsonl",
        )
        run.state["baseline"] = base.metrics
        run.save()
        run.tracker.log_metrics(_prefixed("baseline", base.metrics))
    return run.state["baseline"]


def step_train(run: Run) -> dict[str, float]:
    """Fine-tune, save the model (adapter and/or merged) and log the loss curve.

    What is done is kept in state.json before it is reported to the tracker, and each report once: a run that
    stopped after training (a tracking outage, a kill) resumes without training again or logging twice."""
    from llmops.methods.checkpoints import model_save_is_clear
    from llmops.models.export import save_outputs
    from llmops.tracking.plots import write_loss_curve

    plot = run.run_dir / "plots" / "loss_curve.png"
    if not (run.resume and "train" in run.state and Path(run.state.get("model_dir", "")).is_dir()):
        _load_student(run)
        result = train_step(
            run.model, run.tokenizer, run.prepared, run.cfg, run.run_dir, run.tracker, run.resume, run.ctx
        )
        merge = run.cfg.peft.merge or run.cfg.peft.method == "full"
        needed = sum(p.numel() * p.element_size() for p in run.model.parameters()) * (2 if merge else 1)
        with model_save_is_clear(run.run_dir / "model", needed):  # temp folder then rename: nothing half-written
            outputs = save_outputs(
                run.model,
                run.tokenizer,
                run.run_dir / "model",
                merge=merge,
                schema=getattr(run.prepared.task, "schema", None),
            )
        write_loss_curve(result.loss_history, plot)
        run.trained = True
        record_training(
            run,
            outputs.get("merged") or outputs.get("adapter"),
            {
                "final_loss": result.final_loss,
                "steps": result.steps,
                "tokens_per_second": result.tokens_per_second,
                "train_seconds": result.train_seconds,
            },
        )
        if "adapter" in outputs:
            run.state["adapter_dir"] = str(outputs["adapter"])
            run.save()
    _report_once(
        run,
        "train",
        lambda: run.tracker.log_metrics(
            {
                "train/final_loss": run.state["train"]["final_loss"],
                "train/tokens_per_second": run.state["train"].get("tokens_per_second", 0.0),
            }
        ),
    )
    _report_once(run, "train_artifacts", lambda: _upload_training(run, plot))
    return run.state["train"]


def _upload_training(run: Run, plot: Path) -> None:
    if plot.is_file():
        run.tracker.log_artifact(plot, "plots")
    if run.state.get("adapter_dir") and Path(run.state["adapter_dir"]).is_dir():
        run.tracker.log_artifacts(run.state["adapter_dir"], "adapter")


def _report_once(run: Run, what: str, report: Any) -> None:
    """Send one report to the tracker unless state.json says it was sent (by this run before it stopped)."""
    done = run.state.setdefault("reported", [])
    if what in done:
        return
    report()
    done.append(what)
    run.save()


def record_training(run: Run, model_dir: str | Path, result: dict[str, float]) -> dict[str, float]:
    """Keep where the trained model is and how training went (also for a model trained elsewhere: a TrainJob)."""
    run.state["model_dir"] = str(model_dir)
    run.state["train"] = {
        k: result[k] for k in ("final_loss", "steps", "tokens_per_second", "train_seconds") if k in result
    }
    run.save()
    return run.state["train"]


def step_evaluate(run: Run) -> dict[str, float]:
    """Held-out metrics of the fine-tuned model, its predictions table and per-field plot, and the sample answer
    (kept in state.json, then reported once, as in step_train)."""
    from llmops.tracking.plots import write_field_plot

    plot = run.run_dir / "plots" / "field_f1.png"
    if not (run.resume and "metrics" in run.state and "sample" in run.state):
        _load_trained(run)
        report = _evaluate_all(
            run.model, run.tokenizer, run.prepared, run.cfg, run.ctx, run.run_dir / "eval" / "predictions.jsonl"
        )
        write_field_plot(report.per_field, plot)
        run.state["metrics"] = report.metrics
        run.state["sample"] = _sample_prediction(run.model, run.tokenizer, run.prepared, run.cfg)
        run.state["reported"] = [r for r in run.state.get("reported", []) if not r.startswith("eval")]
        run.save()
    _report_once(run, "eval", lambda: run.tracker.log_metrics(_prefixed("eval", run.state["metrics"])))
    _report_once(run, "eval_artifacts", lambda: _upload_evaluation(run, plot))
    return run.state["metrics"]


def _upload_evaluation(run: Run, plot: Path) -> None:
    from llmops.evaluation.eval_set import errors_path

    predictions = run.run_dir / "eval" / "predictions.jsonl"
    run.tracker.log_artifact(predictions, "eval")
    if errors_path(predictions).is_file():  # the worst fields' wrong extractions
        run.tracker.log_artifact(errors_path(predictions), "eval")
    if plot.is_file():
        run.tracker.log_artifact(plot, "plots")


def step_gate(run: Run) -> Any:
    """Would the fine-tuned model become champion now? Read-only: the register step records the decision."""
    return run.tracker.preview_gate(run.cfg, run.state.get("metrics", {}), run.state.get("baseline", {}))


def step_register(run: Run) -> Any:
    """A new registry version (alias challenger); champion moves to it when it wins the gate."""
    if not run.cfg.tracking.register_model:
        run.state["gate"] = {"reason": "registration disabled"}
        run.save()
        return None
    result = run.tracker.register(
        Path(run.state["model_dir"]), run.cfg, run.state.get("metrics", {}), run.state.get("baseline", {})
    )
    run.state["gate"] = {
        "version": result.version,
        "promoted": result.promoted,
        "reason": result.reason,
        "registered_model": run.cfg.registered_model_name(),
    }
    run.save()
    return result


def run_summary(run: Run) -> RunSummary:
    """What the run produced, from its state."""
    gate = run.state.get("gate", {})
    return RunSummary(
        run_dir=str(run.run_dir),
        run_id=run.state.get("run_id"),
        tracking_uri=run.tracker.tracking_uri,
        registered_model=gate.get("registered_model"),
        version=None if gate.get("version") is None else str(gate["version"]),
        promoted=bool(gate.get("promoted")),
        gate_reason=gate.get("reason", "not registered"),
        baseline=run.state.get("baseline", {}),
        metrics=run.state.get("metrics", {}),
        train=run.state.get("train", {}),
        model_dir=run.state.get("model_dir"),
        sample=run.state.get("sample"),
    )


def _sample_prediction(model: Any, tokenizer: Any, prepared: Prepared, cfg: RunConfig) -> str | None:
    """The answer to the run's sample input (document, prompt, else the first eval example), as a user reads it."""
    from llmops.evaluation.eval_set import decoding
    from llmops.evaluation.generate import generate
    from llmops.tasks.documents import read_document

    sample = getattr(cfg, prepared.task.input_key)
    source = read_document(sample) if sample else None
    if source is not None:
        messages = [{"role": "user", "content": prepared.task.build_prompt(source)}]
    elif prepared.eval:
        messages = prepared.eval[0]["prompt"]
    else:
        return None
    grammar, max_new_tokens = decoding(model, tokenizer, prepared.task, cfg.eval)
    answer = generate(model, tokenizer, [messages], 1, max_new_tokens, desc="sample", grammar=grammar)[0]
    return prepared.task.sample_answer(source, answer) if source is not None else answer
