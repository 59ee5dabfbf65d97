"""The training step of a run, by train_type: SFT, KD (logit or sequence level) or DPO, and each one's metrics.

`prepare` loads what a method needs beside the student (the teacher for KD, the frozen reference for DPO under full
fine-tuning), `train` runs the method, and `method_metrics` gives the method's own held-out metrics (KD:
`teacher_kl`; DPO: `preference_accuracy`, `reward_margin`), measured before and after training like task metrics.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.config import RunConfig
from llmops.methods.sft import TrainResult


@dataclass
class MethodContext:
    """What a method needs beside the student: a teacher and its answers (KD), a reference model (DPO)."""

    teacher: Any = None
    reference: Any = None
    teacher_answers: list[str] = field(default_factory=list)


def prepare(cfg: RunConfig, prepared: Any, model: Any, tokenizer: Any) -> MethodContext:
    """Load the teacher (KD) or keep a frozen reference copy (DPO, full fine-tuning)."""
    ctx = MethodContext()
    if cfg.train_type == "KD" and cfg.teacher:
        from llmops.methods.kd import check_same_vocab, teacher_answers
        from llmops.models.loader import load_for_inference

        ctx.teacher, teacher_tokenizer = load_for_inference(cfg.teacher)
        check_same_vocab(tokenizer, teacher_tokenizer, cfg.student, cfg.teacher)
        prompts = [example["prompt"] for example in prepared.eval]
        ctx.teacher_answers = teacher_answers(ctx.teacher, tokenizer, prompts, cfg.eval.batch_size,
                                              cfg.eval.max_new_tokens)
    elif cfg.train_type == "DPO":
        from llmops.methods.dpo import reference_copy

        ctx.reference = reference_copy(model)
    return ctx


def _sequence_kd_examples(cfg: RunConfig, prepared: Any, ctx: MethodContext, tokenizer: Any) -> list[dict]:
    """SFT examples whose answers come from the teacher where the data has no teacher_output."""
    from llmops.methods.kd import teacher_answers

    todo = [i for i, has_target in enumerate(prepared.teacher_targets) if not has_target]
    if not todo:
        return prepared.train
    print(f"kd: generating teacher answers for {len(todo)} training examples without teacher_output",
          file=sys.stderr)
    answers = teacher_answers(ctx.teacher, tokenizer, [prepared.train[i]["prompt"] for i in todo],
                              cfg.eval.batch_size, cfg.eval.max_new_tokens)
    examples = list(prepared.train)
    for i, answer in zip(todo, answers):
        examples[i] = {**examples[i], "completion": [{"role": "assistant", "content": answer}]}
    return examples


def train(cfg: RunConfig, prepared: Any, ctx: MethodContext, model: Any, tokenizer: Any, output_dir: Path,
          resume_from: str | bool | None, on_log: Callable[[dict], None]) -> TrainResult:
    """Fine-tune `model` in place with the run's method."""
    if cfg.train_type == "DPO":
        from llmops.methods.dpo import train_dpo

        return train_dpo(model, tokenizer, prepared.train, cfg, output_dir, resume_from=resume_from, on_log=on_log)
    if cfg.train_type == "KD" and prepared.logit_kd:
        from llmops.methods.kd import train_kd

        return train_kd(model, tokenizer, ctx.teacher, prepared.train, cfg, output_dir, resume_from=resume_from,
                        on_log=on_log)
    from llmops.methods.sft import train_sft

    examples = _sequence_kd_examples(cfg, prepared, ctx, tokenizer) if cfg.train_type == "KD" else prepared.train
    return train_sft(model, tokenizer, examples, cfg, output_dir, resume_from=resume_from, on_log=on_log)


def method_metrics(cfg: RunConfig, prepared: Any, ctx: MethodContext, model: Any, tokenizer: Any) -> dict[str, float]:
    """The method's own held-out metrics: teacher_kl (KD with a teacher), preference metrics (DPO)."""
    if cfg.train_type == "KD" and ctx.teacher is not None and prepared.eval:
        from llmops.methods.kd import teacher_kl

        prompts = [example["prompt"] for example in prepared.eval]
        return {"teacher_kl": teacher_kl(model, ctx.teacher, tokenizer, prompts, ctx.teacher_answers,
                                         batch_size=cfg.eval.batch_size)}
    if cfg.train_type == "DPO" and prepared.pairs:
        from llmops.methods.dpo import preference_metrics

        return preference_metrics(model, tokenizer, prepared.pairs, cfg.dpo.beta, reference=ctx.reference,
                                  batch_size=cfg.eval.batch_size)
    return {}
