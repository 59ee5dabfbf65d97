"""The training methods a run can use (`train_type`): one line per method, its module and its Method class.

Adding a method is a module with a `Method` subclass (llmops.methods.base) and a line here.
"""

from __future__ import annotations

import importlib
from functools import cache

from llmops.errors import ConfigError
from llmops.methods.base import Method

METHODS: dict[str, str] = {
    "SFT": "llmops.methods.sft:SFT",
    "KD": "llmops.methods.kd:KD",
    "DPO": "llmops.methods.dpo:DPO",
    "GRPO": "llmops.methods.grpo:GRPO",
}


def names() -> list[str]:
    """Every train_type value, in registry order."""
    return list(METHODS)


@cache
def _load(name: str) -> Method:
    module, _, attr = METHODS[name].partition(":")
    method = getattr(importlib.import_module(module), attr)()
    if method.name != name:
        raise RuntimeError(f"{METHODS[name]} declares name {method.name!r}, registered as {name!r}")
    return method


def get(train_type: str) -> Method:
    """The method of `train_type` (any case); ConfigError naming the choices when there is none."""
    name = str(train_type).upper()
    if name not in METHODS:
        raise ConfigError(f"train_type must be one of {', '.join(METHODS)}, got {train_type!r}")
    return _load(name)


def all_methods() -> list[Method]:
    return [_load(name) for name in METHODS]
