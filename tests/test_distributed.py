"""`llmops train` with several processes: 2 CPU processes (accelerate launch, DDP over gloo) train like 1 process with
the same global batch; FSDP/DeepSpeed settings; the launch command line; the rank helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.conftest import free_port

from llmops.config import RunConfig, build_config
from llmops.errors import ConfigError
from llmops.methods import distributed
from llmops.methods.trainer import trainer_args
from llmops.training_job import RESULT_FILE

LAUNCH_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV}
    # HF_HOME in tmp: no accelerate default_config.yaml of this machine's user changes the launch.
    return {**env, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf"), "MLFLOW_DISABLE_TELEMETRY": "true", **extra}


def _write_config(tiny: dict[str, Path], path: Path, save_dir: Path, batch: int) -> Path:
    config = {
        "student": str(tiny["model"]),
        "data": str(tiny["train"]),
        "eval_data": str(tiny["eval"]),
        "schema": str(tiny["schema"]),
        "save_dir": str(save_dir),
        "flow_type": "IDP",
        "train_type": "SFT",
        "peft": {"method": "full"},
        "training": {
            "max_steps": 30,
            "per_device_train_batch_size": batch,
            "learning_rate": 0.002,
            "max_len": 512,
            "logging_steps": 10,
            "save_steps": 1000,
            "seed": 0,
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _check(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def _only_result(save_dir: Path) -> dict:
    """The one train_result.json under save_dir, after checking exactly one output folder and model were written."""
    assert len(list(save_dir.iterdir())) == 1, sorted(p.name for p in save_dir.iterdir())
    results = list(save_dir.rglob(RESULT_FILE))
    models = list(save_dir.rglob("model/merged/model.safetensors"))
    assert len(results) == 1 and len(models) == 1, (results, models)
    result = json.loads(results[0].read_text())
    assert Path(result["model_dir"]) == models[0].parent
    return result


@pytest.mark.integration
def test_two_processes_train_like_one_with_the_same_global_batch(tiny_idp: dict[str, Path], tmp_path: Path) -> None:
    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    # One plain process, 8 examples a step.
    cfg_one = _write_config(tiny_idp, tmp_path / "one.yaml", one_dir, batch=8)
    proc = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "train", str(cfg_one), "--set", "training.num_threads=1"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    _check(proc)
    assert "on 1 process(es)" in proc.stdout
    # Two processes (accelerate launch, gloo on CPU), 4 examples each a step: the same global batch of 8.
    cfg_two = _write_config(tiny_idp, tmp_path / "two.yaml", two_dir, batch=4)
    cmd = distributed.launch_command(cfg_two, 2, [])
    assert cmd[:2] == ["accelerate", "launch"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--main_process_port", str(free_port()), *cmd[2:]]
    proc = subprocess.run(
        cmd, env=_env(tmp_path, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300, check=False
    )
    _check(proc)
    assert proc.stdout.count("trained:") == 1  # the summary comes from the main process only

    one, two = _only_result(one_dir), _only_result(two_dir)  # one folder: every rank used rank 0's output name
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert one["steps"] == two["steps"] == 30
    assert two["tokens_per_second"] > 0 and two["train_seconds"] > 0
    print(f"final loss after 30 steps: 1 process {one['final_loss']:.6f}, 2 processes {two['final_loss']:.6f}")
    # Measured: equal to 6 decimals. 0.2% is far above float noise and below the 0.5% that a wrong global batch (4
    # instead of 8, e.g. every rank training on the same examples) makes here.
    assert abs(two["final_loss"] - one["final_loss"]) <= 0.002 * one["final_loss"], (one, two)


def _cfg(**training: object) -> RunConfig:
    return RunConfig.model_validate({"student": "unused", "training": training})


@pytest.mark.parametrize("setting", [{"fsdp": "full_shard auto_wrap"}, {"deepspeed": "ds_zero3.json"}])
def test_fsdp_or_deepspeed_on_cpu_is_a_config_error(
    setting: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("llmops.methods.trainer.has_cuda", lambda: False)
    with pytest.raises(ConfigError, match=r"training\.(fsdp|deepspeed) set, but no GPU is available"):
        trainer_args(_cfg(**setting), tmp_path)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU-only message")
def test_train_command_with_fsdp_on_cpu_fails_before_loading_anything(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmops.cli",
            "train",
            "--student",
            str(tmp_path / "no-such-model"),
            "--data",
            str(tmp_path / "no-such-data.jsonl"),
            "--save_dir",
            str(tmp_path / "runs"),
            "--set",
            "training.fsdp=full_shard auto_wrap",
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "error: training.fsdp set, but no GPU is available" in proc.stderr
    assert "no-such" not in proc.stderr and not (tmp_path / "runs").exists()


def test_fsdp_and_deepspeed_pass_through_on_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("llmops.methods.trainer.has_cuda", lambda: True)
    args = trainer_args(_cfg(fsdp="full_shard  auto_wrap"), tmp_path)
    assert args["fsdp"] == "full_shard auto_wrap" and args["deepspeed"] is None
    assert trainer_args(_cfg(), tmp_path)["fsdp"] is None
    ds = tmp_path / "ds.json"
    ds.write_text('{"zero_optimization": {"stage": 3}}')
    with pytest.raises(ConfigError, match="both set"):
        trainer_args(_cfg(fsdp="full_shard", deepspeed=str(ds)), tmp_path)
    with pytest.raises(ConfigError, match="no such DeepSpeed JSON config file"):
        trainer_args(_cfg(deepspeed=str(tmp_path / "missing.json")), tmp_path)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())  # as if deepspeed were installed
    assert trainer_args(_cfg(deepspeed=str(ds)), tmp_path)["deepspeed"] == str(ds)


def test_unknown_fsdp_option_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"training\.fsdp.*unknown FSDP option\(s\) full_shrad"):
        build_config(overrides=["training.fsdp=full_shrad auto_wrap"])


def test_trainer_args_for_several_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("llmops.methods.trainer.has_cuda", lambda: False)
    for name in LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    args = trainer_args(_cfg(), tmp_path)
    assert (args["average_tokens_across_devices"], args["ddp_backend"], args["use_cpu"]) == (False, None, True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = trainer_args(_cfg(), tmp_path)
    assert (args["average_tokens_across_devices"], args["ddp_backend"]) == (True, "gloo")
    # logit KD's loss normalises itself per rank: its trainer asks for the local token count
    assert trainer_args(_cfg(), tmp_path, average_tokens=False)["average_tokens_across_devices"] is False


def test_rank_helpers_read_the_launcher_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    assert (distributed.world_size(), distributed.rank(), distributed.is_main_process()) == (1, 0, True)
    assert distributed.broadcast_from_main("x") == "x"
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert (distributed.world_size(), distributed.rank(), distributed.local_rank()) == (4, 3, 1)
    assert distributed.is_distributed() and not distributed.is_main_process()


def test_launch_command_is_a_valid_accelerate_launch_of_llmops_train() -> None:
    from accelerate.commands.launch import launch_command_parser

    cmd = distributed.launch_command(Path("cfg.yaml"), 4, ["--set", "training.max_steps=10"])
    assert cmd == [
        "accelerate",
        "launch",
        "--num_processes",
        "4",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--multi_gpu",
        "-m",
        "llmops.cli",
        "train",
        "cfg.yaml",
        "--set",
        "training.max_steps=10",
    ]
    args = launch_command_parser().parse_args(cmd[2:])
    assert (args.num_processes, args.num_machines, args.multi_gpu, args.module) == (4, 1, True, True)
    assert args.training_script == "llmops.cli"
    assert args.training_script_args == ["train", "cfg.yaml", "--set", "training.max_steps=10"]
    single = distributed.launch_command("cfg.yaml", 1, ())
    assert "--multi_gpu" not in single and single[-3:] == ["llmops.cli", "train", "cfg.yaml"]
    with pytest.raises(ConfigError, match="num_processes"):
        distributed.launch_command("cfg.yaml", 0, ())
