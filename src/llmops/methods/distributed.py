"""Training with several processes: which process this is, the launch command line, and the `llmops train` step.

`accelerate launch` and `torchrun` start one process per device and describe it in the environment (RANK,
LOCAL_RANK, WORLD_SIZE). The transformers Trainer (through accelerate) then does the distributed work: it joins the
process group (gloo on CPU, NCCL on GPUs), shards the data so each rank sees its own batches, wraps the model in DDP
(or FSDP / DeepSpeed, from `training.fsdp` / `training.deepspeed`) and averages the gradients. The global batch is
per_device_train_batch_size x world size x gradient_accumulation_steps. This module only reads that environment,
joins the group early (before models load, so each rank uses its own GPU) and keeps side effects on the main process.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmops.config import RunConfig, TrainingSettings
from llmops.errors import ConfigError

RESULT_FILE = "train_result.json"


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def world_size() -> int:
    """Processes in the job (WORLD_SIZE, set by accelerate launch / torchrun); 1 for a plain process."""
    return max(_env_int("WORLD_SIZE", 1), 1)


def rank() -> int:
    """This process's global rank (RANK); 0 for a plain process."""
    return _env_int("RANK", 0)


def local_rank() -> int:
    """This process's rank on its node (LOCAL_RANK): the GPU it uses."""
    return _env_int("LOCAL_RANK", 0)


def is_distributed() -> bool:
    """Whether this process is one of several (started by a launcher)."""
    return world_size() > 1


def is_main_process() -> bool:
    """Whether this process writes the job's outputs (global rank 0)."""
    return rank() == 0


def ddp_backend(cuda: bool) -> str | None:
    """The Trainer's ddp_backend: gloo for several CPU processes (never MPI), else accelerate's choice (NCCL)."""
    return "gloo" if is_distributed() and not cuda else None


def check_sharding(training: TrainingSettings, cuda: bool) -> None:
    """FSDP and DeepSpeed shard across GPUs: a clear error on CPU, with both, or without their config file/package."""
    if not training.fsdp and not training.deepspeed:
        return
    keys = " and ".join(k for k, v in (("training.fsdp", training.fsdp), ("training.deepspeed", training.deepspeed))
                        if v)
    if not cuda:
        raise ConfigError(f"{keys} set, but no GPU is available: FSDP and DeepSpeed shard the model across GPUs; "
                          f"unset {keys} to train on CPU (several CPU processes train with DDP)")
    if training.fsdp and training.deepspeed:
        raise ConfigError("training.fsdp and training.deepspeed are both set; use one of them")
    if training.deepspeed:
        if not Path(training.deepspeed).is_file():
            raise ConfigError(f"training.deepspeed: {training.deepspeed}: no such DeepSpeed JSON config file")
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError("training.deepspeed needs the deepspeed package: pip install deepspeed")


def init_process_group(cuda: bool) -> None:
    """Join the launcher's process group now (accelerate's PartialState; a no-op for a plain process).

    On GPUs this also makes `cuda` mean this rank's GPU before any model (student, teacher, reference) loads. The
    Trainer later builds its own state on the same process group.
    """
    if not is_distributed():
        return
    from accelerate import PartialState

    backend = ddp_backend(cuda)
    PartialState(cpu=not cuda, **({"backend": backend} if backend else {}))


def broadcast_from_main(value: Any) -> Any:
    """The main process's `value` on every process (e.g. an output folder named after the clock)."""
    if not is_distributed():
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]


def finish() -> None:
    """Wait for every process, then leave the process group (no-op for a plain process)."""
    if not is_distributed():
        return
    from accelerate import PartialState

    state = PartialState()
    state.wait_for_everyone()
    state.destroy_process_group()


def launch_command(config_path: str | Path, num_processes: int, extra_args: Sequence[str] = ()) -> list[str]:
    """`accelerate launch ... -m llmops.cli train CONFIG ...`: `llmops train` on `num_processes` devices of one node.

    `--multi_gpu` is accelerate's multi-process launcher (torchrun underneath); it is needed for more than one
    process (accelerate enables it by itself only when it sees several GPUs) and also works on a CPU-only host,
    where the processes train with gloo. Mixed precision is left to the Trainer (training.bf16).
    """
    if not isinstance(num_processes, int) or num_processes < 1:
        raise ConfigError(f"num_processes must be a whole number >= 1 (got {num_processes!r})")
    cmd = ["accelerate", "launch", "--num_processes", str(num_processes), "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no"]
    if num_processes > 1:
        cmd.append("--multi_gpu")
    return [*cmd, "-m", "llmops.cli", "train", str(config_path), *map(str, extra_args)]


def default_output(cfg: RunConfig) -> Path:
    """<save_dir>/train-<timestamp>, never an existing folder."""
    base = Path(cfg.save_dir)
    stem = f"train-{time.strftime('%Y%m%d-%H%M%S')}"
    path = base / stem
    while path.exists():
        path = base / f"{stem}-{secrets.token_hex(2)}"
    return path


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def train(cfg: RunConfig, output: str | Path | None = None) -> dict[str, Any]:
    """Validate, load, train with the run's method (SFT, KD, DPO) and save: the `llmops train` command.

    Every process trains; only the main process writes the model (output/model/), config.yaml and train_result.json.
    Trainer checkpoints go to output/checkpoints/, and training continues from the last one when there is one.
    Returns the result (the same on every process, except model_dir, which only the main process knows).
    """
    from llmops import pipeline
    from llmops.methods import runner
    from llmops.models.device import has_cuda
    from llmops.models.export import save_outputs
    from llmops.models.loader import load_student

    cuda = has_cuda()
    check_sharding(cfg.training, cuda)
    prepared = pipeline.prepare(cfg)
    pipeline.quiet_libraries()
    init_process_group(cuda)
    out = Path(broadcast_from_main(str(output) if output is not None else str(default_output(cfg))))
    checkpoints = out / "checkpoints"
    resume_from = True if any(checkpoints.glob("checkpoint-*")) else None
    if resume_from and is_main_process():
        print(f"resuming from the last checkpoint in {checkpoints}", file=sys.stderr)

    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    # No eval set: this step reports no held-out metrics, so KD's teacher answers to eval prompts are not generated.
    ctx = runner.prepare(cfg, replace(prepared, eval=[]), model, tokenizer)
    result = runner.train(cfg, prepared, ctx, model, tokenizer, checkpoints, resume_from, lambda logs: None)
    summary: dict[str, Any] = {"final_loss": result.final_loss, "steps": result.steps, "world_size": world_size(),
                               "tokens_per_second": result.tokens_per_second, "train_seconds": result.train_seconds}
    if is_main_process():
        if result.gathered_dir:  # sharded: the Trainer's gathered copy, not this process's shard
            kind = "merged" if cfg.peft.method == "full" else "adapter"
            target = out / "model" / kind
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(result.gathered_dir, target)
            summary["model_dir"] = str(target)
        else:
            outputs = save_outputs(model, tokenizer, out / "model", merge=cfg.peft.merge or cfg.peft.method == "full")
            summary["model_dir"] = str(outputs.get("merged") or outputs.get("adapter"))
        cfg.save(out / pipeline.CONFIG_FILE)
        _write_json(out / RESULT_FILE, summary)
    finish()
    return {**summary, "output": str(out)}
