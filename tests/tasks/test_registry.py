"""The task families come from one registry, and the code outside `tasks/` asks the task instead of branching on the
flow type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmops.config import RunConfig
from llmops.errors import ConfigError
from llmops.tasks.base import Task
from llmops.tasks.registry import TASKS, make_task, task_class

SRC = Path(__file__).resolve().parents[2] / "src" / "llmops"


@pytest.mark.parametrize("flow_type", list(TASKS))
def test_every_family_builds_from_a_config_and_follows_the_protocol(flow_type: str) -> None:
    cfg = RunConfig(student="s", flow_type=flow_type)
    task = make_task(cfg)
    assert isinstance(task, Task) and type(task) is task_class(flow_type) and task.flow_type == flow_type
    assert task.input_key in ("document", "prompt") and hasattr(cfg, task.input_key)
    assert set(task.reward_kwargs(cfg.grpo)) <= {"schema_weight", "format_reward"}
    assert task_class(flow_type).reward_kwargs(cfg.grpo) == task.reward_kwargs(cfg.grpo)  # asked of the class too


def test_the_tasks_own_their_settings_from_the_config() -> None:
    codegen = make_task(RunConfig(student="s", flow_type="CodeGen", eval={"code_timeout": 7.0}))
    assert codegen.timeout == 7.0
    idp = make_task(RunConfig(student="s", schema='{"type": "object", "properties": {"a": {"type": "string"}}}'))
    assert idp.schema == {"type": "object", "properties": {"a": {"type": "string"}}}


def test_an_unknown_family_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="IDP, CodeGen"):
        task_class("SQL")


def test_no_flow_type_branch_outside_the_tasks_and_the_config() -> None:
    branch = re.compile(r"flow_type\s*[!=]=")
    found = [
        f"{path.relative_to(SRC)}:{n}"
        for path in SRC.rglob("*.py")
        if path.parent.name != "tasks" and path.name != "config.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if branch.search(line)
    ]
    assert not found, "ask the task (llmops.tasks.registry) instead of branching on flow_type: " + ", ".join(found)
