"""`llmops train CONFIG`: one training job without evaluation, tracking or registration, on every process of a
launcher (`accelerate launch`, `torchrun`, a Kubeflow TrainJob); see llmops.methods.distributed for the ranks."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmops.config import RunConfig
from llmops.environment import quiet_libraries
from llmops.methods.distributed import (
    broadcast_from_main,
    check_sharding,
    finish,
    init_process_group,
    is_main_process,
    world_size,
)

RESULT_FILE = "train_result.json"


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
    """Validate, load, train with the run's method and save: the `llmops train` command.

    Every process trains; only the main process writes the model (output/model/), config.yaml and train_result.json.
    Trainer checkpoints go to output/checkpoints/, and training continues from the last one when there is one.
    Returns the result (the same on every process, except model_dir, which only the main process knows).
    """
    from llmops import pipeline
    from llmops.methods import registry
    from llmops.methods.checkpoints import is_complete
    from llmops.models.device import has_cuda
    from llmops.models.export import save_outputs
    from llmops.models.loader import load_student

    cuda = has_cuda()
    check_sharding(cfg.training, cuda)
    prepared = pipeline.prepare(cfg)
    quiet_libraries()
    init_process_group(cuda)
    out = Path(broadcast_from_main(str(output) if output is not None else str(default_output(cfg))))
    checkpoints = out / "checkpoints"
    resume_from = True if any(is_complete(p) for p in checkpoints.glob("checkpoint-*")) else None
    if resume_from and is_main_process():
        print(f"resuming from the last checkpoint in {checkpoints}", file=sys.stderr)

    method = registry.get(cfg.train_type)
    # A student the method makes (KD's pruned teacher) is made by the main process; the others load its folder.
    source = broadcast_from_main(method.student_source(cfg, prepared, out) if is_main_process() else None)
    model, tokenizer = load_student(source, cfg.peft, cfg.training)
    # No eval set: this step reports no held-out metrics, so KD's teacher answers to eval prompts are not generated.
    ctx = method.prepare(cfg, replace(prepared, eval=[]), model, tokenizer)
    result = method.train(cfg, prepared, ctx, model, tokenizer, checkpoints, resume_from, lambda logs: None)
    summary: dict[str, Any] = {
        "final_loss": result.final_loss,
        "steps": result.steps,
        "world_size": world_size(),
        "tokens_per_second": result.tokens_per_second,
        "train_seconds": result.train_seconds,
    }
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
