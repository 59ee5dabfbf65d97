"""The trainer layer every method shares: Trainer arguments, the log relay, resuming, and the fit loop.

Methods build their TRL trainer (SFTTrainer, DPOTrainer, a subclass) from `trainer_args`, add `Relay` (training
logs to the caller) and train through `fit`; the way TRL keeps its base trainer apart from each method's trainer.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from llmops.config import RunConfig
from llmops.errors import ModelError
from llmops.methods import checkpoints, distributed, preempt
from llmops.methods.base import TrainResult
from llmops.models.device import has_cuda, use_bf16, use_gradient_checkpointing


def trainer_args(cfg: RunConfig, output_dir: Path, *, average_tokens: bool = True) -> dict[str, Any]:
    """Trainer arguments every method shares: our settings plus CPU-safe and low-overhead defaults.

    `average_tokens`: under several processes, normalise the loss by the answer tokens of all ranks (a method whose
    loss normalises itself per rank, as logit KD's does, passes False)."""
    t = cfg.training
    cuda = has_cuda()
    distributed.check_sharding(t, cuda)
    return dict(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=learning_rate(cfg),
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        adam_beta2=t.adam_beta2,
        max_grad_norm=t.max_grad_norm,
        seed=t.seed,
        data_seed=t.seed,
        # Seeded runs repeat exactly on CPU without it; torch's deterministic mode made CPU steps ~45% slower.
        full_determinism=False,
        max_length=t.max_len,
        bf16=use_bf16(t),
        fp16=False,
        activation_checkpointing=use_gradient_checkpointing(t),
        use_cpu=not cuda,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        report_to="none",
        disable_tqdm=True,
        # No pinned host memory on CPU (no accelerator to copy to).
        dataloader_pin_memory=cuda,
        # Several processes (accelerate launch / torchrun): the loss is normalised by the answer tokens of all ranks,
        # so a step's gradient is the one a single process with the whole global batch gets.
        average_tokens_across_devices=distributed.is_distributed() and average_tokens,
        ddp_backend=distributed.ddp_backend(cuda),
        fsdp=t.fsdp or None,
        deepspeed=t.deepspeed or None,
        dataset_num_proc=None,
    )


def learning_rate(cfg: RunConfig) -> float:
    """training.learning_rate, else the method's default for LoRA/QLoRA adapters, else (full fine-tuning) 2e-4."""
    if cfg.training.learning_rate is not None:
        return cfg.training.learning_rate
    from llmops.methods.registry import get

    rate = get(cfg.train_type).adapter_learning_rate
    return rate if cfg.peft.method in ("lora", "qlora") else 2e-4


class Relay(TrainerCallback):
    """Forwards each training log (with its step) to the caller, and makes the last step log its loss."""

    def __init__(self, on_log: Callable[[dict], None] | None) -> None:
        self.on_log_fn = on_log

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step >= state.max_steps and state.global_step % args.logging_steps:
            control.should_log = True

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if self.on_log_fn is not None and logs and "loss" in logs:
            self.on_log_fn({"step": state.global_step, **logs})


class TimeLimit(TrainerCallback):
    """Ends training at the first step boundary after `seconds` of training (`training.max_train_seconds`): two
    methods compared at equal wall-clock time. The last step is saved and logged like a planned last step."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if time.perf_counter() - self.start >= self.seconds:
            control.should_training_stop = True
            control.should_save = True
            control.should_log = True


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """No per-map progress bars from `datasets` while TRL tokenizes (our own bar covers training)."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def resume_arg(resume_from: str | bool | None, output_dir: Path) -> str | bool | None:
    if resume_from in (None, False):
        return None
    if resume_from is True:
        complete = checkpoints.complete_checkpoints(output_dir)  # a half-written one (kill, full disk) is skipped
        if not complete:
            raise ModelError(
                f"{output_dir}: no checkpoint to resume from (no complete checkpoint-* folder); start a new run instead"
            )
        return str(complete[-1])
    if not isinstance(resume_from, str) or not Path(resume_from).is_dir():
        raise ModelError(f"resume_from {resume_from}: no such checkpoint folder")
    return str(resume_from)


def keep_adapter_precision(trainer: Any, bf16: bool) -> None:
    """Adapters in fp32 unless computing in bf16 on a GPU."""
    # TRL casts QLoRA adapters to bf16 (the paper's recipe for GPUs); without bf16 compute (CPU) that only loses
    # precision and speed, so they go back to fp32 before the optimizer is built.
    import torch

    if bf16:
        return
    for param in trainer.model.parameters():
        if param.requires_grad and param.dtype == torch.bfloat16:
            param.data = param.data.float()


def fit(
    build: Callable[[Path], Any],
    cfg: RunConfig,
    output_dir: Path,
    resume_from: str | bool | None,
    wrap: Callable[[Any], Any] | None = None,
) -> tuple[Any, TrainResult]:
    """Build a trainer with `build(output_dir)` and train it (threads, resume, timing): the loop every method shares."""
    import torch

    if cfg.training.num_threads:
        torch.set_num_threads(cfg.training.num_threads)
    output_dir = Path(output_dir)
    resume = resume_arg(resume_from, output_dir)  # checked before the trainer is built
    trainer = build(output_dir)
    if cfg.training.max_train_seconds:
        trainer.add_callback(TimeLimit(cfg.training.max_train_seconds))
    preemption = preempt.Preemption(cfg.training.preempt_grace_s)
    trainer.add_callback(preemption)
    start = time.perf_counter()
    with (
        preempt.signals_to(preemption),
        checkpoints.checkpoint_saves_are_clear(output_dir),
        wrap(trainer) if wrap is not None else contextlib.nullcontext(),
    ):
        output = trainer.train(resume_from_checkpoint=resume)
    if preemption.signum is not None:
        raise preempt.interrupted(preemption, trainer, output_dir)
    result = train_result(trainer, output, time.perf_counter() - start)
    if cfg.training.fsdp or cfg.training.deepspeed:
        # Each process holds a shard: the Trainer gathers them (FSDP FULL_STATE_DICT, ZeRO-3 16-bit consolidation)
        # and the main process writes the whole model. Every process must take part.
        result.gathered_dir = str(output_dir / "gathered")
        trainer.save_model(result.gathered_dir)
    return trainer, result


def train_result(trainer: Any, output: Any, seconds: float) -> TrainResult:
    history = [(int(h["step"]), float(h["loss"])) for h in trainer.state.log_history if "loss" in h]
    tokens = getattr(trainer, "_total_train_tokens", 0)
    final = history[-1][1] if history else float(output.training_loss)
    return TrainResult(
        loss_history=history,
        final_loss=final,
        steps=int(trainer.state.global_step),
        tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
        train_seconds=seconds,
    )
