"""The KD trainer's loss: cross-entropy on the answers mixed with the divergence from the teacher (online logits,
the offline cache, or on-policy samples), the hidden-state term of a pruned student, and the metrics it logs."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

from llmops.config import KDSettings

log = logging.getLogger(__name__)


def kd_trainer_class() -> type:
    from trl import SFTTrainer

    class KDTrainer(SFTTrainer):
        """SFTTrainer whose loss mixes answer-token CE with distillation from `self.teacher` or `self.cache`."""

        teacher: Any = None
        cache: Any = None  # a kd_cache.TeacherCache
        kd: KDSettings = KDSettings()
        vocab_size: int = 0
        layer_map: list[int] = []  # per student layer, the teacher layer it matches (kd.hidden_weight)

        def compute_loss(
            self, model: Any, inputs: dict, return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            return _kd_compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

    return KDTrainer


def _kd_compute_loss(trainer: Any, model: Any, inputs: dict, return_outputs: bool, num_items_in_batch: Any) -> Any:
    """Student forward on the answer positions, then the loss of the batch: off-policy, alpha * CE + (1 - alpha) *
    KD on the data's answers; on-policy (a `kd.on_policy` share of training batches), the divergence alone on the
    student's own sampled answers, scored by the teacher; plus `kd.hidden_weight` x the intermediate-state loss
    (`methods/kd_hidden.py`). CE, KD, the hidden-state loss, accuracy and the on-policy share are logged."""
    import torch

    from llmops.methods.kd_hidden import layer_outputs
    from llmops.methods.kd_metrics import answer_columns
    from llmops.methods.kd_on_policy import on_policy_now, sample_on_policy
    from llmops.methods.losses import completion_ce, distillation_total, kd_loss

    mode = "train" if trainer.model.training else "eval"
    on_policy = mode == "train" and on_policy_now(trainer)
    if on_policy:
        inputs = sample_on_policy(trainer, model, inputs)
        trainer.last_on_policy_batch = inputs
    targets = inputs["labels"][:, 1:]
    mask = targets != -100
    settings = trainer.kd
    # With kd.distil_prompt the KD term also covers the prompt's tokens (every real next-token position).
    distil = inputs["attention_mask"][:, 1:].bool() if settings.distil_prompt and not on_policy else mask
    keep = answer_columns(distil)
    hidden = settings.hidden_weight > 0 and mode == "train"
    with layer_outputs(model) if hidden else nullcontext() as student_states:
        outputs = model(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False, logits_to_keep=keep
        )
    logits, kept, distilled = outputs.logits, mask[:, keep], distil[:, keep]
    student = logits[..., : trainer.vocab_size][kept]  # [answer tokens, vocab]: no copies of prompt positions
    count = kept.sum()
    teacher_states: dict = {}
    if not bool(count):
        loss = ce = kd = logits.sum() * 0.0
    elif on_policy:
        teacher = _online_teacher_logits(trainer, inputs, keep, kept, student.device, teacher_states)
        kd = kd_loss(
            student,
            teacher,
            torch.ones_like(kept[kept]),
            loss=settings.on_policy_loss,
            temperature=settings.temperature,
            beta=settings.beta,
        )
        ce, loss = None, kd
    else:
        ce = completion_ce(logits, targets[:, keep])
        on = student if distil is mask else logits[..., : trainer.vocab_size][distilled]
        kd = _kd_term(trainer, inputs, on, mask, keep, distilled, teacher_states)
        loss = distillation_total(ce, kd, settings.alpha)
    if hidden and bool(count):
        loss = loss + settings.hidden_weight * _hidden_term(trainer, inputs, student_states or {}, teacher_states)
    if num_items_in_batch is not None:  # token-weighted across gradient accumulation, like SFT's loss
        loss = loss * count / torch.as_tensor(num_items_in_batch, device=loss.device).clamp(min=1)
    _log_kd_metrics(trainer, mode, inputs, student, targets[:, keep][kept], count, ce, kd, on_policy)
    return (loss, outputs) if return_outputs else loss


def _hidden_term(trainer: Any, inputs: dict, student_states: dict, teacher_states: dict) -> Any:
    """The intermediate-state loss of the batch (the teacher's layer outputs come from its forward of this batch)."""
    from llmops.methods.kd_hidden import hidden_loss

    value = hidden_loss(student_states, teacher_states, trainer.layer_map, inputs["attention_mask"].bool())
    trainer._metrics["train"]["hidden_loss"].append(value.item())
    return value


def _log_kd_metrics(
    trainer: Any, mode: str, inputs: dict, student: Any, targets: Any, count: Any, ce: Any, kd: Any, on_policy: bool
) -> None:
    import torch

    with torch.no_grad():
        correct = (student.argmax(-1) == targets).sum()
    metrics = trainer._metrics[mode]
    if ce is not None:
        metrics["ce_loss"].append(ce.item())
    metrics["kd_loss"].append(kd.item())
    metrics["mean_token_accuracy"].append((correct / count.clamp(min=1)).item())
    if mode == "train":
        metrics["on_policy"].append(float(on_policy))
        trainer._total_train_tokens += int(inputs["attention_mask"].sum())
    metrics["num_tokens"] = [trainer._total_train_tokens]


def _online_teacher_logits(
    trainer: Any, inputs: dict, keep: Any, kept: Any, device: Any, states: dict | None = None
) -> Any:
    """The teacher's logits at the answer positions of the batch, [answer tokens, vocab], under no_grad; with
    intermediate-state distillation on, its layer outputs are collected into `states` on the way."""
    import torch

    from llmops.methods.kd_hidden import layer_outputs

    teacher = trainer.teacher
    teacher_device = next(teacher.parameters()).device
    wanted = sorted(set(trainer.layer_map)) if trainer.kd.hidden_weight > 0 and states is not None else []
    with torch.no_grad(), layer_outputs(teacher, wanted) as collected:
        logits = teacher(
            input_ids=inputs["input_ids"].to(teacher_device),
            attention_mask=inputs["attention_mask"].to(teacher_device),
            use_cache=False,
            logits_to_keep=keep.to(teacher_device),
        ).logits
    if states is not None:
        states.update(collected)
    return logits[..., : trainer.vocab_size][kept.to(teacher_device)].to(device)


def _kd_term(
    trainer: Any, inputs: dict, student: Any, mask: Any, keep: Any, kept: Any, teacher_states: dict | None = None
) -> Any:
    """The off-policy distillation loss of a batch (student logits [distilled tokens, vocab]: the answers, or every
    real token with kd.distil_prompt), from the cache (answers only) or from an online teacher forward."""
    import torch

    from llmops.methods.losses import kd_loss, topk_kd_loss, topk_logprobs

    kd = trainer.kd
    options = {"loss": kd.loss, "temperature": kd.temperature, "beta": kd.beta}
    every = torch.ones(student.shape[0], dtype=torch.bool, device=student.device)
    if trainer.cache is not None:
        values, ids = trainer.cache.lookup(inputs["input_ids"], inputs.get("attention_mask"), mask)
        return topk_kd_loss(student, values[:, keep][kept], ids[:, keep][kept], every, **options)
    teacher = _online_teacher_logits(trainer, inputs, keep, kept, student.device, teacher_states)
    if kd.top_k:
        values, ids = topk_logprobs(teacher, min(kd.top_k, trainer.vocab_size), kd.temperature)
        return topk_kd_loss(student, values, ids, every, **options)
    return kd_loss(student, teacher, every, **options)
