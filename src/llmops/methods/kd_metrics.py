"""What distillation is measured by: the teacher's greedy answers to held-out prompts (computed once per teacher,
prompts and length, kept beside the logit cache) and `teacher_kl`, the student's divergence from the teacher on
them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from llmops.errors import ModelError


def answer_columns(mask: Any) -> Any:
    """Positions from the batch's first answer token to its last ([batch, seq-1] next-token mask): the only logits
    the losses need (a 49k-vocabulary head over prompt and padding is most of a step's memory and time)."""
    import torch

    columns = mask.any(dim=0).nonzero().flatten()
    if columns.numel() == 0:
        return torch.arange(0, 1, device=mask.device)
    return torch.arange(int(columns[0]), int(columns[-1]) + 1, device=mask.device)


def _answer_batch(tokenizer: Any, prompts: list[list[dict]], answers: list[str]) -> tuple[Any, Any, Any]:
    """Right-padded ids, attention mask and a [batch, seq-1] mask of next-token positions inside the answer."""
    import torch

    rows, starts = [], []
    for prompt, answer in zip(prompts, answers, strict=True):
        prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)[
            "input_ids"
        ]
        full = tokenizer.apply_chat_template(
            [*prompt, {"role": "assistant", "content": answer}], tokenize=True, return_dict=True
        )["input_ids"]
        rows.append(full)
        starts.append(len(prompt_ids))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    in_answer = torch.zeros((len(rows), width - 1), dtype=torch.bool)
    for i, (row, start) in enumerate(zip(rows, starts, strict=True)):
        ids[i, : len(row)] = torch.tensor(row)
        attention[i, : len(row)] = 1
        in_answer[i, max(start - 1, 0) : len(row) - 1] = True  # logits at t predict token t + 1
    return ids, attention, in_answer


def teacher_kl(
    student: Any,
    teacher: Any,
    tokenizer: Any,
    prompts: list[list[dict]],
    answers: list[str],
    batch_size: int = 8,
    temperature: float = 1.0,
) -> float:
    """Mean KL(teacher || student) per answer token, both teacher-forced on prompt + answer (chat template)."""
    import torch

    from llmops.methods.losses import kd_loss

    if not prompts:
        raise ModelError("teacher_kl: no examples to measure on")
    modes = (student.training, teacher.training)
    student.eval()
    teacher.eval()
    total, tokens = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(prompts), batch_size):
                ids, attention, mask = _answer_batch(
                    tokenizer, prompts[start : start + batch_size], answers[start : start + batch_size]
                )
                keep = answer_columns(mask)  # the heads only over the answers: no [batch, seq, vocab] logits
                logits = [
                    m(
                        input_ids=ids.to(d), attention_mask=attention.to(d), use_cache=False, logits_to_keep=keep.to(d)
                    ).logits
                    for m, d in ((student, _device(student)), (teacher, _device(teacher)))
                ]
                vocab = min(x.shape[-1] for x in logits)
                s, t = (x[..., :vocab].float().cpu() for x in logits)
                kept = mask[:, keep]
                count = int(kept.sum())
                total += float(kd_loss(s, t, kept, temperature=temperature)) / temperature**2 * count
                tokens += count
    finally:
        student.train(modes[0])
        teacher.train(modes[1])
    return total / max(tokens, 1)


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def teacher_answers(
    teacher: Any,
    tokenizer: Any,
    prompts: list[list[dict]],
    batch_size: int,
    max_new_tokens: int,
    cache_dir: str | Path | None = None,
) -> list[str]:
    """Greedy teacher generations (the targets of sequence-level KD, what teacher_kl is measured on). With
    `cache_dir`, kept there as JSON under a key of the teacher's weights, the prompts and the settings, so later runs
    with the same teacher and prompts (the quickstart's KD stages, a resumed run) read them instead of generating."""
    from llmops.evaluation.generate import generate

    path = None
    if cache_dir is not None:
        from llmops.methods.kd_cache import teacher_fingerprint

        key = hashlib.blake2b(
            json.dumps(
                [teacher_fingerprint(teacher), prompts, batch_size, max_new_tokens], sort_keys=True, default=str
            ).encode(),
            digest_size=12,
        ).hexdigest()
        path = Path(cache_dir) / f"answers-{key}.json"
        if path.is_file():
            answers = json.loads(path.read_text())
            if isinstance(answers, list) and len(answers) == len(prompts):
                return [str(a) for a in answers]
    answers = generate(teacher, tokenizer, prompts, batch_size=batch_size, max_new_tokens=max_new_tokens)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(answers))
        os.replace(tmp, path)
    return answers
