"""The seed project's flags, one table bound to RunConfig keys: `run`, `train` and `kfp ...` take them all.

Each flag is written once here: its name (underscored, as the seed had it; a dashed alias is added), the config
key it sets and its type. Its help is the config field's own description unless the table gives one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from llmops.methods.registry import names as method_names


@dataclass(frozen=True)
class SeedFlag:
    name: str  # the flag as the seed project spelt it, without "--"
    key: str  # the RunConfig key it sets (dotted for a section)
    type: Any
    help: str | None = None  # default: the config field's description
    negation: str | None = None  # a boolean flag's off switch, e.g. "no_logit_kd"


SEED_FLAGS: tuple[SeedFlag, ...] = (
    SeedFlag("student", "student", str),
    SeedFlag("teacher", "teacher", str),
    SeedFlag("data", "data", str),
    SeedFlag("save_dir", "save_dir", str),
    SeedFlag("epochs", "epochs", float, "training epochs"),
    SeedFlag("flow_type", "flow_type", str, "IDP or CodeGen"),
    SeedFlag("train_type", "train_type", str, "training method: " + ", ".join(method_names())),
    SeedFlag("schema", "schema", str),
    SeedFlag("document", "document", str),
    SeedFlag("prompt", "prompt", str),
    SeedFlag("eval_data", "eval_data", str),
    SeedFlag("val_per_class", "val_per_class", int),
    SeedFlag("use_logit_kd", "use_logit_kd", bool, negation="no_logit_kd"),
    SeedFlag("host", "host", str),
    SeedFlag("offload_folder", "offload_folder", str),
    SeedFlag("learning_rate", "training.learning_rate", float),
    SeedFlag("max_steps", "training.max_steps", int),
    SeedFlag("max_len", "training.max_len", int),
    SeedFlag("per_device_train_batch_size", "training.per_device_train_batch_size", int),
    SeedFlag("gradient_accumulation_steps", "training.gradient_accumulation_steps", int),
    SeedFlag("mlflow_experiment_name", "tracking.experiment_name", str),
    SeedFlag("beta", "dpo.beta", float),
    SeedFlag("kd_temperature", "kd.temperature", float),
)

SetOpt = typer.Option(None, "--set", help="override any key: --set training.max_steps=100 (repeatable)")


def _field_help(key: str) -> str:
    from llmops.config import RunConfig

    model: Any = RunConfig
    *sections, last = key.split(".")
    for section in sections:
        model = model.model_fields[section].annotation
    fields = model.model_fields
    info = fields.get(last) or next(f for f in fields.values() if f.alias == last)
    text = info.description or last.replace("_", " ")
    return text if not sections else f"{text} (= {key})"


def _option(flag: SeedFlag) -> Any:
    help_text = flag.help or _field_help(flag.key)
    if flag.negation:
        return typer.Option(None, f"--{flag.name}/--{flag.negation}", help=help_text)
    names = [f"--{flag.name}"]
    if "_" in flag.name:
        names.append(f"--{flag.name.replace('_', '-')}")
    return typer.Option(None, *names, help=help_text)


def seed_parameters() -> list[inspect.Parameter]:
    """The CONFIG argument, every seed flag and --set, as parameters of a Typer command."""
    params = [
        inspect.Parameter(
            "config",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Optional[Path],
            default=typer.Argument(None, help="YAML config (keys as in configs/*.yaml)"),
        )
    ]
    params += [
        inspect.Parameter(
            flag.name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[flag.type], default=_option(flag)
        )
        for flag in SEED_FLAGS
    ]
    params.append(
        inspect.Parameter("set_", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[list[str]], default=SetOpt)
    )
    return params


def build_run_config(config: Path | None, overrides: list[str] | None, values: dict[str, Any]) -> Any:
    """The RunConfig of a seed-style command line: YAML, then the flags given, then --set."""
    from llmops.config import build_config

    by_name = {flag.name: flag for flag in SEED_FLAGS}
    flags = {by_name[name].key: value for name, value in values.items() if value is not None}
    sources = {by_name[name].key: f"--{name}" for name in values}
    return build_config(config, flags, overrides or [], sources=sources)


def seed_command(
    typer_app: typer.Typer, name: str, extra: dict[str, tuple[Any, Any]], help_text: str, pass_overrides: bool = False
) -> Callable:
    """Register command NAME taking the seed flags plus `extra` {name: (type, typer.Option)}; the decorated
    function gets the built RunConfig and the extra values (and `overrides`, the --set items, when asked),
    inside the error guard."""
    from llmops.cli.common import guard

    params = seed_parameters()
    params += [
        inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=tp)
        for k, (tp, opt) in extra.items()
    ]

    def decorate(body: Callable[..., None]) -> Callable:
        def command(**kwargs: Any) -> None:
            config, overrides = kwargs.pop("config"), kwargs.pop("set_")
            own = {k: kwargs.pop(k) for k in extra}
            if pass_overrides:
                own["overrides"] = overrides or []
            guard(lambda: body(build_run_config(config, overrides, kwargs), **own))

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__doc__ = help_text
        typer_app.command(name)(command)
        return body

    return decorate
