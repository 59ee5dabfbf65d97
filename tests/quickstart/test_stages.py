"""Quickstart stages: recipes are the SFT recipe plus an overlay; a finished stage is reused, not retrained."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from llmops.quickstart import stages
from llmops.quickstart.flows import RECIPES, TINY_RECIPES


@pytest.mark.parametrize("recipes", [RECIPES, TINY_RECIPES], ids=["pretrained", "tiny"])
def test_overlay_recipes_keep_the_sft_recipe_and_validate(recipes: Path) -> None:
    from llmops.config import build_config

    for flow in ("idp", "codegen"):
        sft = stages.recipe(recipes, flow, "sft")
        for train in ("kd", "dpo"):
            merged = stages.recipe(recipes, flow, train)
            assert merged["train_type"] == train.upper()
            assert merged["training"]["per_device_train_batch_size"] == sft["training"]["per_device_train_batch_size"]
            if train == "dpo":  # a short DPO phase on top of the SFT model
                assert merged["training"]["max_steps"] < sft["training"]["max_steps"]
            else:  # logit KD, trained no longer than the SFT recipe
                assert merged["use_logit_kd"] is True
                assert merged["training"]["max_steps"] <= sft["training"]["max_steps"]
            build_config(base={**merged, "student": "s", "data": "d"})


def test_a_stage_is_trained_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")

    def fake_run(base: dict, entries: dict, overrides: list[str]) -> SimpleNamespace:
        calls.append((entries["tracking"]["registered_model"], overrides))
        return SimpleNamespace(model_dir=str(model))

    monkeypatch.setattr(stages, "run_stage", fake_run)
    console = Console(file=open(tmp_path / "out.txt", "w"))
    entries = {"tracking": {"tracking_uri": "sqlite:///x.db"}}
    assert stages.trained_once(tmp_path, "flow-teacher-n5", {}, entries, ["a=1"], console) == str(model)
    assert stages.trained_once(tmp_path, "flow-teacher-n5", {}, entries, [], console) == str(model)
    assert stages.trained_once(tmp_path, "flow-teacher-n5", {}, entries, [], console) == str(model)
    assert calls == [("quickstart-flow-teacher-n5", ["a=1"]), ("quickstart-flow-teacher-n5", [])]
    assert entries == {"tracking": {"tracking_uri": "sqlite:///x.db"}}  # not mutated
