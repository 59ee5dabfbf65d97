"""Supervised fine-tuning: TRL's SFTTrainer on conversational prompt-completion examples, loss on the completion."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmops.config import RunConfig
from llmops.methods.base import Method, MethodContext, OnLog, Prepared, TrainResult
from llmops.models.device import has_cuda


class SFT(Method):
    """Supervised fine-tuning on the data's answers."""

    name = "SFT"
    summary = "supervised fine-tuning on the data's answers"
    adapter_learning_rate = 5e-4

    def train(
        self,
        cfg: RunConfig,
        prepared: Prepared,
        ctx: MethodContext,
        model: Any,
        tokenizer: Any,
        output_dir: Path,
        resume_from: str | bool | None,
        on_log: OnLog,
    ) -> TrainResult:
        return train_sft(model, tokenizer, prepared.train, cfg, output_dir, resume_from=resume_from, on_log=on_log)


def sft_config(cfg: RunConfig, output_dir: Path, average_tokens: bool = True) -> Any:
    """The TRL SFTConfig for a run: the shared trainer arguments plus completion-only loss and packing."""
    from trl import SFTConfig

    from llmops.methods.trainer import trainer_args

    t = cfg.training
    return SFTConfig(
        **trainer_args(cfg, output_dir, average_tokens=average_tokens),
        packing=t.packing,
        packing_strategy="bfd",
        completion_only_loss=True,
        train_sampling_strategy="group_by_length" if t.group_by_length and not t.packing else "random",
    )


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
        def compute_loss(
            self, model: Any, inputs: dict, return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
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
            loss = torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.size(-1)), kept.reshape(-1), ignore_index=-100, reduction="sum"
            )
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


def make_trainer(
    model: Any,
    tokenizer: Any,
    examples: list[dict],
    cfg: RunConfig,
    output_dir: Path,
    on_log: Callable[[dict], None] | None = None,
    *,
    trainer_cls: type | None = None,
    desc: str = "sft",
    average_tokens: bool = True,
) -> Any:
    """The configured SFTTrainer (or subclass `trainer_cls`; data tokenized, prompt masked out of the labels)."""
    from transformers import PrinterCallback

    from llmops.methods.chat_data import tokenized_dataset
    from llmops.methods.train_progress import RichProgressCallback
    from llmops.methods.trainer import Relay, keep_adapter_precision, quiet_datasets

    args = sft_config(cfg, Path(output_dir), average_tokens=average_tokens)
    with quiet_datasets():
        dataset = tokenized_dataset(examples, tokenizer, cfg.training.max_len)
        trainer = (trainer_cls or _completion_head_trainer())(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[RichProgressCallback(desc), Relay(on_log)],
        )
    trainer.remove_callback(PrinterCallback)  # our progress callback prints instead
    keep_adapter_precision(trainer, args.bf16 and has_cuda())
    return trainer


def _packing(trainer: Any) -> Any:
    from llmops.models.packed_attention import packed_attention

    return packed_attention(trainer.model)


def train_sft(
    model: Any,
    tokenizer: Any,
    examples: list[dict],
    cfg: RunConfig,
    output_dir: Path,
    resume_from: str | bool | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Fine-tune `model` in place on prompt-completion examples; checkpoints go to `output_dir`."""

    def build(out: Path) -> Any:
        return make_trainer(model, tokenizer, examples, cfg, out, on_log)

    from llmops.methods.trainer import fit

    return fit(build, cfg, output_dir, resume_from, _packing if cfg.training.packing else None)[1]
