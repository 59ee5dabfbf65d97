"""Every shipped YAML recipe goes the way a run takes it: built into a RunConfig, then validated with small data of
its flow (`llmops.run_inputs.validate`: the data, the schema, the method's checks), so a wrong key fails here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmops.config import RunConfig, build_config
from llmops.errors import ConfigError
from llmops.quickstart import stages
from llmops.quickstart.codegen_data import generate_codegen_dataset
from llmops.quickstart.flows import RECIPES, TINY_RECIPES
from llmops.quickstart.idp_data import generate_idp_dataset
from llmops.quickstart.pairs import write_codegen_pairs, write_idp_pairs
from llmops.run_inputs import validate

ROOT = Path(__file__).resolve().parents[1]
# `llmops run CONFIG`: configs/, and any recipes/ or examples/ folder
CONFIGS = sorted(p for folder in ("configs", "recipes", "examples") for p in (ROOT / folder).glob("**/*.y*ml"))
# `llmops quickstart`: <flow>-sft.yaml, and the kd/dpo (and, for a pretrained model, grpo/dpo-self) overlays on it
QUICKSTART = sorted(RECIPES.glob("*.yaml")) + sorted(TINY_RECIPES.glob("*.yaml"))
FLOWS = {"idp": "IDP", "codegen": "CodeGen"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Small generated data for each flow, as the quickstart writes it: the config entries that point at it."""
    root = tmp_path_factory.mktemp("recipe-data")
    idp = generate_idp_dataset(root / "idp", 12, 1, seed=0)
    code = generate_codegen_dataset(root / "codegen", 12, 1, seed=0)
    return {
        "IDP": {
            "data": str(idp.train),
            "eval_data": str(idp.eval),
            "schema": str(idp.schema),
            "pairs": str(write_idp_pairs(idp.train, root / "idp" / "pairs.jsonl", 0)),
            "judged": str(idp.train),
        },
        "CodeGen": {
            "data": str(code.train),
            "eval_data": str(code.eval),
            "pairs": str(write_codegen_pairs(code.train, root / "codegen" / "pairs.jsonl", 0)),
            "judged": str(code.train_problems),
        },
    }


def _cli_config(path: Path, data: dict[str, dict[str, str]]) -> RunConfig:
    """As `llmops run CONFIG --data ... --eval_data ...`: generated data only where the recipe names none."""
    cfg = build_config(path)
    flags = {k: v for k, v in data[cfg.flow_type].items() if k not in ("pairs", "judged") and not getattr(cfg, k)}
    if cfg.train_type == "DPO" and not cfg.data:
        flags["data"] = data[cfg.flow_type]["pairs"]
    return build_config(path, flags=flags)


def _quickstart_config(path: Path, data: dict[str, dict[str, str]]) -> RunConfig:
    """As `llmops quickstart` builds the stage for `<flow>-<train>.yaml`: its recipe and the runner's entries."""
    flow, train = path.stem.split("-", 1)
    files = data[FLOWS[flow]]
    entries = {k: v for k, v in files.items() if k not in ("pairs", "judged")} | {"student": "a-student"}
    if train == "kd":
        entries["teacher"] = "a-teacher"
    if train == "dpo":
        entries["data"] = files["pairs"]
    if train in ("grpo", "dpo-self"):  # the records the task judges answers by (quickstart/rl.py)
        entries["data"] = files["judged"]
    cfg = stages.stage_config(stages.recipe(path.parent, flow, train), entries, [])
    assert (cfg.flow_type, cfg.train_type) == (FLOWS[flow], train.split("-")[0].upper()), path
    return cfg


def _config(path: Path, data: dict[str, dict[str, str]], quickstart: bool) -> RunConfig:
    return _quickstart_config(path, data) if quickstart else _cli_config(path, data)


def test_there_are_recipes() -> None:
    shipped = {p for folder in ("configs", "recipes", "examples") for p in (ROOT / folder).rglob("*.y*ml")}
    shipped |= set((ROOT / "src").rglob("*.y*ml"))
    assert shipped == set(CONFIGS + QUICKSTART)  # no shipped YAML escapes the test below
    assert len(CONFIGS) >= 3
    every = {f"{flow}-{train}.yaml" for flow in FLOWS for train in ("sft", "kd", "dpo")}
    # GRPO and mined pairs learn from the model's own samples: a pretrained model's recipes only
    pretrained = every | {f"{flow}-{train}.yaml" for flow in FLOWS for train in ("grpo", "dpo-self")}
    for folder, names in ((RECIPES, pretrained), (TINY_RECIPES, every)):  # what the runner reads from each folder
        assert {p.name for p in folder.glob("*.yaml")} == names, folder


@pytest.mark.parametrize(
    ("path", "quickstart"),
    [pytest.param(p, p in QUICKSTART, id=str(p.relative_to(ROOT))) for p in CONFIGS + QUICKSTART],
)
def test_recipe_loads(path: Path, quickstart: bool, data: dict[str, dict[str, str]]) -> None:
    cfg = _config(path, data, quickstart)
    prepared = validate(cfg)
    assert prepared.train and prepared.eval
    assert cfg.training.per_device_train_batch_size >= 1
    if cfg.train_type == "DPO" and cfg.dpo.pairs_from == "data":
        assert prepared.pairs and all("chosen" in e and "rejected" in e for e in prepared.train)
    if cfg.train_type == "GRPO" or cfg.dpo.pairs_from == "self":  # prompts with what judges their answers
        assert not prepared.pairs and all("reference" in e for e in prepared.train)
    if cfg.train_type == "KD":
        assert prepared.logit_kd == cfg.use_logit_kd


BAD_KEYS = {  # (text to find, its replacement): a misspelt key at the top level and inside a section
    "top-level": ("\ntraining:\n", "\nepoch: 2\ntraining:\n"),
    "nested": ("\ntraining:\n", "\ntraining:\n  learning_rat: 0.1\n"),
}


@pytest.mark.parametrize("where", BAD_KEYS)
@pytest.mark.parametrize(
    ("path", "quickstart"), [(CONFIGS[0], False), (RECIPES / "idp-kd.yaml", True)], ids=["config", "quickstart-overlay"]
)
def test_a_recipe_with_a_wrong_key_is_a_config_error(
    path: Path, quickstart: bool, where: str, data: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    folder = tmp_path / path.parent.name
    shutil.copytree(path.parent, folder)  # an overlay is read with its folder's SFT recipe
    copy = folder / path.name
    text = copy.read_text()
    find, replace = BAD_KEYS[where]
    assert find in text, copy
    copy.write_text(text.replace(find, replace, 1))
    with pytest.raises(ConfigError, match=r"epoch\b|learning_rat\b"):
        _config(copy, data, quickstart)
