"""Training with several processes: which process this is, joining the group, and the launch command line.

`accelerate launch` and `torchrun` start one process per device and describe it in the environment (RANK,
LOCAL_RANK, WORLD_SIZE). The transformers Trainer (through accelerate) then does the distributed work: it joins the
process group (gloo on CPU, NCCL on GPUs), shards the data so each rank sees its own batches, wraps the model in DDP
(or FSDP / DeepSpeed, from `training.fsdp` / `training.deepspeed`) and averages the gradients. The global batch is
per_device_train_batch_size x world size x gradient_accumulation_steps. This module only reads that environment,
joins the group early (before models load, so each rank uses its own GPU) and keeps side effects on the main process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmops.config import TrainingSettings
from llmops.errors import ConfigError


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
    keys = " and ".join(
        k for k, v in (("training.fsdp", training.fsdp), ("training.deepspeed", training.deepspeed)) if v
    )
    if not cuda:
        raise ConfigError(
            f"{keys} set, but no GPU is available: FSDP and DeepSpeed shard the model across GPUs; "
            f"unset {keys} to train on CPU (several CPU processes train with DDP)"
        )
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
    cmd = [
        "accelerate",
        "launch",
        "--num_processes",
        str(num_processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    if num_processes > 1:
        cmd.append("--multi_gpu")
    return [*cmd, "-m", "llmops.cli", "train", str(config_path), *map(str, extra_args)]
