"""Every shipped YAML recipe loads against the RunConfig schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.config import build_config

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "configs").glob("*.yaml")) + sorted(
    (ROOT / "src" / "llmops" / "quickstart" / "recipes").glob("**/*.yaml")
)


def test_there_are_recipes() -> None:
    assert len(RECIPES) >= 3


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_loads(path: Path) -> None:
    cfg = build_config(path)
    assert cfg.flow_type in ("IDP", "CodeGen")
    assert cfg.training.per_device_train_batch_size >= 1
