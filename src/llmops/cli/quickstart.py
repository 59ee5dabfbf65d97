"""`llmops quickstart`: the embedded default, offline, end to end."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from llmops.cli.common import guard
from llmops.cli.seed_flags import SetOpt


class Flow(str, Enum):
    idp = "idp"
    codegen = "codegen"


class Train(str, Enum):
    sft = "sft"
    kd = "kd"
    dpo = "dpo"
    grpo = "grpo"


class Pairs(str, Enum):
    gold = "gold"
    self = "self"


def quickstart(
    flow: Flow = typer.Option(Flow.idp, "--flow", help="task family"),
    train: Train = typer.Option(Train.sft, "--train", help="training method"),
    workdir: Path = typer.Option(Path("llmops-quickstart"), "--workdir", help="where data, models and runs go"),
    n_train: int | None = typer.Option(None, "--n-train", min=1, help="training documents (smaller = faster demo)"),
    n_eval_per_class: int | None = typer.Option(None, "--n-eval-per-class", min=1, help="held-out docs per class"),
    model: str = typer.Option(
        "smollm2-135m-instruct",
        "--model",
        help="student: smollm2-135m-instruct (built in), tiny (from scratch, for smoke "
        "runs), or a model folder / .gguf file / hub id",
    ),
    pairs: Pairs = typer.Option(
        Pairs.gold,
        "--pairs",
        help="--train dpo: pairs written from the gold data, or mined from the model's own "
        "samples judged by the task (self)",
    ),
    set_: list[str] | None = SetOpt,
) -> None:
    """The embedded default, offline: SmolLM2-135M-Instruct + synthetic data through the whole pipeline."""

    def body() -> None:
        from llmops.quickstart.flows import run_quickstart

        sizes = {k: v for k, v in {"n_train": n_train, "n_eval_per_class": n_eval_per_class}.items() if v}
        run_quickstart(flow.value, train.value, workdir, set_ or [], sizes, model=model, pairs=pairs.value)

    guard(body)


def register(app: typer.Typer) -> None:
    app.command()(quickstart)
