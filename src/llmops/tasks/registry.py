"""The task families a run can use (`flow_type`): one line per family, its module and its Task class.

Adding a family is a module with a class that follows `llmops.tasks.base.Task` and a line here.
"""

from __future__ import annotations

import importlib
from typing import Any

from llmops.errors import ConfigError

TASKS: dict[str, str] = {
    "IDP": "llmops.tasks.idp:IDPTask",
    "CodeGen": "llmops.tasks.codegen:CodeGenTask",
}


def task_class(flow_type: str) -> Any:
    """The Task class of `flow_type`; ConfigError naming the choices when there is none."""
    if flow_type not in TASKS:
        raise ConfigError(f"flow_type must be one of {', '.join(TASKS)}, got {flow_type!r}")
    module, _, attr = TASKS[flow_type].partition(":")
    return getattr(importlib.import_module(module), attr)


def make_task(cfg: Any) -> Any:
    """The task object of a run (its schema, its sandbox settings)."""
    return task_class(cfg.flow_type).from_config(cfg)
