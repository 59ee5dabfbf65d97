"""The seed flags come from one table bound to RunConfig keys, and each command's --help lists its own options."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from llmops.cli import app
from llmops.cli.seed_flags import SEED_FLAGS, build_run_config

SAMPLE = {str: "x.jsonl", int: 77, float: 0.25, bool: True}
SEED_COMMANDS = [("run",), ("train",), ("kfp", "compile"), ("kfp", "submit"), ("kfp", "run-local")]


def _get(cfg: object, key: str) -> object:
    for part in key.split("."):
        cfg = getattr(cfg, part.rstrip("_"))
    return cfg


@pytest.mark.parametrize("flag", SEED_FLAGS, ids=lambda f: f.name)
def test_every_seed_flag_sets_its_config_key(flag) -> None:
    value = {"flow_type": "CodeGen", "train_type": "DPO"}.get(flag.name, SAMPLE[flag.type])
    cfg = build_run_config(None, [], {flag.name: value})
    assert _get(cfg, flag.key) == value
    others = build_run_config(None, [], {})
    assert _get(others, flag.key) != value  # the flag, not a default, made it so


def test_flag_names_and_keys_are_unique() -> None:
    assert len({f.name for f in SEED_FLAGS}) == len(SEED_FLAGS) == len({f.key for f in SEED_FLAGS})


def _command(path: tuple[str, ...]) -> object:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


def _leaf_commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if hasattr(command, "commands"):  # a group (typer's own click)
        return [p for name, sub in command.commands.items() for p in _leaf_commands(sub, path + (name,))]
    return [path]


@pytest.mark.parametrize("path", _leaf_commands(typer.main.get_command(app)), ids=" ".join)
def test_help_of_each_command_lists_its_own_options(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
    assert result.exit_code == 0, result.output
    options = [
        opt
        for param in _command(path).params
        if param.param_type_name == "option"
        for opt in [*param.opts, *param.secondary_opts]
    ]
    assert options
    missing = [opt for opt in options if opt not in result.output]
    assert missing == []
    if path in SEED_COMMANDS:
        assert {f"--{flag.name}" for flag in SEED_FLAGS} <= set(options)


def test_serve_has_an_unambiguous_bind_flag() -> None:
    opts = {opt for param in _command(("serve",)).params for opt in getattr(param, "opts", [])}
    assert {"--bind", "--host", "--port"} <= opts
