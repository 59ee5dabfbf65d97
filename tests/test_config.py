"""RunConfig: YAML, seed flags and --set overrides, in that order; unknown keys and bad values name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmops.cli.seed_flags import build_run_config  # seed flag names -> config keys
from llmops.config import RunConfig, build_config, flatten, redact
from llmops.errors import ConfigError


def test_defaults_and_registered_name() -> None:
    cfg = build_config()
    assert cfg.flow_type == "IDP" and cfg.train_type == "SFT"
    assert cfg.registered_model_name() == "llmops-idp-sft"
    assert cfg.gate_metric() == "field_f1"


def test_precedence_yaml_then_flags_then_set(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"epochs": 1, "student": "a", "training": {"learning_rate": 0.1, "seed": 3}}))
    cfg = build_run_config(path, ["training.learning_rate=0.3"], {"student": "b", "learning_rate": 0.2, "epochs": None})
    assert cfg.student == "b"  # flag beats YAML
    assert cfg.epochs == 1  # a flag left unset keeps the YAML value
    assert cfg.training.learning_rate == 0.3  # --set beats the flag
    assert cfg.training.seed == 3


def test_seed_flag_names_and_case() -> None:
    cfg = build_run_config(
        None,
        [],
        {
            "flow_type": "codegen",
            "train_type": "dpo",
            "use_logit_kd": True,
            "max_steps": 7,
            "mlflow_experiment_name": "exp",
            "schema": "s.json",
        },
    )
    assert cfg.flow_type == "CodeGen" and cfg.train_type == "DPO" and cfg.use_logit_kd
    assert cfg.training.max_steps == 7 and cfg.tracking.experiment_name == "exp"
    assert cfg.schema == "s.json" and cfg.to_dict()["schema"] == "s.json"


def test_unknown_key_names_it(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  learnin_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'training.learnin_rate'"):
        build_config(path)
    with pytest.raises(ConfigError, match=r"unknown config key 'peft.rank'"):
        build_config(overrides=["peft.rank=4"])


def test_bad_enum_value_names_key() -> None:
    from llmops.methods import registry

    # train_type names a registered method: checked by the registry (the validate step), not by the config schema
    with pytest.raises(ConfigError, match=r"train_type must be one of SFT, KD, DPO.*RLHF"):
        registry.get(build_config(flags={"train_type": "RLHF"}).train_type)
    with pytest.raises(ConfigError, match=r"'peft.method'"):
        build_config(overrides=["peft.method=int3"])


def test_bad_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 1\nstudent: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c.yaml:\d+: not valid YAML"):
        build_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        build_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="expected key=value"):
        build_config(overrides=["training.seed"])


def test_save_round_trip(tmp_path: Path) -> None:
    cfg = build_config(overrides=["peft.method=qlora", "schema=x.json"])
    path = cfg.save(tmp_path / "run" / "config.yaml")
    again = RunConfig.model_validate(yaml.safe_load(path.read_text()))
    assert again == cfg


def test_redact_secrets() -> None:
    flat = flatten({"tracking": {"tracking_uri": "http://user:pw@host:5000"}, "hf_token": "abc", "x": [1, 2]})
    red = redact(flat)
    assert red["hf_token"] == "***"
    assert red["tracking.tracking_uri"] == "http://***@host:5000"
    assert red["x"] == "[1, 2]"
