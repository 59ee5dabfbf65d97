"""Supervised fine-tuning: TRL's SFTTrainer on conversational prompt-completion examples, loss on the completion."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, TrainerCallback

from llmops.config import RunConfig
from llmops.errors import ModelError
from llmops.methods import distributed
from llmops.methods.chat_data import tokenized_dataset
from llmops.methods.progress import RichProgressCallback
from llmops.models.device import has_cuda, use_bf16, use_gradient_checkpointing

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run produced."""

    loss_history: list[tuple[int, float]] = field(default_factory=list)
    final_loss: float = float("nan")
    steps: int = 0
    tokens_per_second: float = 0.0
    train_seconds: float = 0.0
    gathered_dir: str | None = None  # FSDP / DeepSpeed: the whole model, gathered from the shards by the Trainer


def trainer_args(cfg: RunConfig, output_dir: Path) -> dict[str, Any]:
    """Trainer arguments every method shares: our settings plus CPU-safe and low-overhead defaults."""
    t = cfg.training
    cuda = has_cuda()
    distributed.check_sharding(t, cuda)
    return dict(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
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
        # so a step's gradient is the one a single process with the whole global batch gets. Logit KD normalises its
        # own loss per rank (its compute_loss does not rescale by the process count), so it keeps the local count.
        average_tokens_across_devices=distributed.is_distributed() and not _logit_kd(cfg),
        ddp_backend=distributed.ddp_backend(cuda),
        fsdp=t.fsdp or None,
        deepspeed=t.deepspeed or None,
        dataset_num_proc=None,
    )


def _logit_kd(cfg: RunConfig) -> bool:
    return cfg.train_type == "KD" and bool(cfg.use_logit_kd and cfg.teacher)


def sft_config(cfg: RunConfig, output_dir: Path) -> Any:
    """The TRL SFTConfig for a run: the shared trainer arguments plus completion-only loss and packing."""
    from trl import SFTConfig

    t = cfg.training
    return SFTConfig(
        **trainer_args(cfg, output_dir),
        packing=t.packing,
        packing_strategy="bfd",
        completion_only_loss=True,
        train_sampling_strategy="group_by_length" if t.group_by_length and not t.packing else "random",
    )


class _Relay(TrainerCallback):
    """Forwards each training log (with its step) to the caller, and makes the last step log its loss."""

    def __init__(self, on_log: Callable[[dict], None] | None) -> None:
        self.on_log_fn = on_log

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step >= state.max_steps and state.global_step % args.logging_steps:
            control.should_log = True

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if self.on_log_fn is not None and logs and "loss" in logs:
            self.on_log_fn({"step": state.global_step, **logs})


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No per-map progress bars from `datasets` while TRL tokenizes (our own bar covers training)."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _resume_arg(resume_from: str | bool | None, output_dir: Path) -> str | bool | None:
    if resume_from in (None, False):
        return None
    if resume_from is True:
        if not any(output_dir.glob("checkpoint-*")):
            raise ModelError(f"{output_dir}: no checkpoint-* folder to resume from; start a new run instead")
        return True
    if not Path(resume_from).is_dir():
        raise ModelError(f"resume_from {resume_from}: no such checkpoint folder")
    return str(resume_from)


def _keep_adapter_precision(trainer: Any, bf16: bool) -> None:
    # TRL casts QLoRA adapters to bf16 (the paper's recipe for GPUs); without bf16 compute (CPU) that only loses
    # precision and speed, so they go back to fp32 before the optimizer is built.
    import torch

    if bf16:
        return
    for param in trainer.model.parameters():
        if param.requires_grad and param.dtype == torch.bfloat16:
            param.data = param.data.float()


def _completion_head_trainer() -> type:
    """TRL's SFTTrainer with the LM head computed only over the answer positions, on CPU.

    TRL projects through its fused LM head in tiles; on devices without Triton (CPU) it scores every position, prompt
    and padding included, and adds entropy and top-1 statistics: with a 49k vocabulary that is a large share of a
    step. Here the model is asked for the logits of the positions from the batch's first answer token to its last
    (`logits_to_keep` with indices) and the loss is the cross-entropy there, normalised as TRL does (answer tokens
    of the batch, or `num_items_in_batch` under gradient accumulation / several processes).
    """
    import torch
    from trl import SFTTrainer

    class CompletionHeadSFTTrainer(SFTTrainer):
        def compute_loss(self, model: Any, inputs: dict, return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            labels = inputs.get("labels")
            if labels is None or has_cuda() or return_outputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            targets = labels[:, 1:]
            valid = targets != -100
            columns = valid.any(dim=0).nonzero().flatten()
            if columns.numel() == 0:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            keep = torch.arange(int(columns[0]), int(columns[-1]) + 1, device=labels.device)
            forward = {k: v for k, v in inputs.items() if k not in ("labels", "completion_mask")}
            logits = model(**forward, use_cache=False, logits_to_keep=keep).logits
            kept = targets[:, keep]
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), kept.reshape(-1),
                                                     ignore_index=-100, reduction="sum")
            count = valid.sum() if num_items_in_batch is None else num_items_in_batch
            loss = loss / torch.as_tensor(count).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            with torch.no_grad():
                mask = kept != -100
                correct = ((logits.argmax(-1) == kept) & mask).sum()
                mode = "train" if model.training else "eval"
                self._metrics[mode]["mean_token_accuracy"].append((correct / mask.sum().clamp(min=1)).item())
                if mode == "train":  # as TRL counts them: what tokens/s is measured in
                    if "attention_mask" in inputs:
                        local = inputs["attention_mask"].sum()
                    else:  # padding-free packing: one row of real tokens
                        local = torch.tensor(inputs["input_ids"].size(1), device=labels.device)
                    self._total_train_tokens += int(self.accelerator.gather_for_metrics(local).sum().item())
                self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return loss

    return CompletionHeadSFTTrainer


def make_trainer(model: Any, tokenizer: Any, examples: list[dict], cfg: RunConfig, output_dir: Path,
                 on_log: Callable[[dict], None] | None = None, *, trainer_cls: type | None = None,
                 desc: str = "sft") -> Any:
    """The configured SFTTrainer (or subclass `trainer_cls`; data tokenized, prompt masked out of the labels)."""
    args = sft_config(cfg, Path(output_dir))
    with _quiet_datasets():
        trainer = (trainer_cls or _completion_head_trainer())(
            model=model, args=args, train_dataset=tokenized_dataset(examples, tokenizer), processing_class=tokenizer,
            callbacks=[RichProgressCallback(desc), _Relay(on_log)])
    trainer.remove_callback(PrinterCallback)  # our progress callback prints instead
    _keep_adapter_precision(trainer, args.bf16 and has_cuda())
    return trainer


def fit(build: Callable[[Path], Any], cfg: RunConfig, output_dir: Path, resume_from: str | bool | None,
        wrap: Callable[[Any], Any] | None = None) -> tuple[Any, TrainResult]:
    """Build a trainer with `build(output_dir)` and train it (threads, resume, timing): the loop every method shares."""
    import torch

    if cfg.training.num_threads:
        torch.set_num_threads(cfg.training.num_threads)
    output_dir = Path(output_dir)
    resume = _resume_arg(resume_from, output_dir)  # checked before the trainer is built
    trainer = build(output_dir)
    start = time.perf_counter()
    with wrap(trainer) if wrap is not None else contextlib.nullcontext():
        output = trainer.train(resume_from_checkpoint=resume)
    result = _result(trainer, output, time.perf_counter() - start)
    if cfg.training.fsdp or cfg.training.deepspeed:
        # Each process holds a shard: the Trainer gathers them (FSDP FULL_STATE_DICT, ZeRO-3 16-bit consolidation)
        # and the main process writes the whole model. Every process must take part.
        result.gathered_dir = str(output_dir / "gathered")
        trainer.save_model(result.gathered_dir)
    return trainer, result


def _packing(trainer: Any) -> Any:
    from llmops.models.packed_attention import packed_attention

    return packed_attention(trainer.model)


def train_sft(model: Any, tokenizer: Any, examples: list[dict], cfg: RunConfig, output_dir: Path,
              resume_from: str | bool | None = None,
              on_log: Callable[[dict], None] | None = None) -> TrainResult:
    """Fine-tune `model` in place on prompt-completion examples; checkpoints go to `output_dir`."""
    def build(out: Path) -> Any:
        return make_trainer(model, tokenizer, examples, cfg, out, on_log)

    return fit(build, cfg, output_dir, resume_from, _packing if cfg.training.packing else None)[1]


def _result(trainer: Any, output: Any, seconds: float) -> TrainResult:
    history = [(int(h["step"]), float(h["loss"])) for h in trainer.state.log_history if "loss" in h]
    tokens = getattr(trainer, "_total_train_tokens", 0)
    final = history[-1][1] if history else float(output.training_loss)
    return TrainResult(loss_history=history, final_loss=final, steps=int(trainer.state.global_step),
                       tokens_per_second=tokens / seconds if seconds > 0 else 0.0, train_seconds=seconds)
