"""On-policy batches of knowledge distillation (`kd.on_policy`, GKD's lambda): which training micro-batches are
on-policy (a seeded draw per step and micro-batch, so a resumed run makes the same choices), and the batch's prompts
answered by the student itself, labelled on the sampled answer for the teacher to score (`methods/kd.py`)."""

from __future__ import annotations

from typing import Any


def on_policy_now(trainer: Any) -> bool:
    """Whether this training micro-batch is on-policy: a seeded draw per (step, micro-batch), so a resumed run
    makes the same choices as an uninterrupted one."""
    import random

    share = trainer.kd.on_policy
    if share <= 0:
        return False
    step = trainer.state.global_step
    last_step, micro = getattr(trainer, "_kd_micro", (-1, 0))
    micro = micro + 1 if last_step == step else 0
    trainer._kd_micro = (step, micro)
    trainer._kd_draw = (trainer.args.seed, step, micro)
    return share >= 1 or random.Random(f"{trainer.args.seed}:{step}:{micro}").random() < share


def sample_on_policy(trainer: Any, model: Any, inputs: dict) -> dict:
    """The batch's prompts answered by the student itself (sampled at `kd.on_policy_temperature`, seeded by step):
    right-padded ids, attention mask and labels on the sampled answer (up to and including its EOS)."""
    import torch

    from llmops.evaluation.generate import eos_ids

    kd = trainer.kd
    tokenizer = trainer.processing_class
    student = trainer.accelerator.unwrap_model(model)
    eos = eos_ids(student, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    ids, attention, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
    prompts = []
    for row in range(ids.shape[0]):
        answer = (labels[row] != -100).nonzero().flatten()
        end = int(answer[0]) if answer.numel() else int(attention[row].sum())
        prompts.append(ids[row, :end].tolist())
    width = max(len(p) for p in prompts)
    left = torch.full((len(prompts), width), pad, dtype=torch.long)
    left_mask = torch.zeros_like(left)
    for row, prompt in enumerate(prompts):
        left[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        left_mask[row, width - len(prompt) :] = 1
    seed, step, micro = getattr(trainer, "_kd_draw", (trainer.args.seed, trainer.state.global_step, 0))
    was_training = student.training
    student.eval()
    devices = [ids.device] if ids.device.type == "cuda" else []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed * 1_000_003 + step * 101 + micro)
            generated = student.generate(
                input_ids=left.to(ids.device),
                attention_mask=left_mask.to(ids.device),
                do_sample=True,
                temperature=kd.on_policy_temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=kd.on_policy_max_new_tokens,
                eos_token_id=eos,
                pad_token_id=pad,
            )
    finally:
        student.train(was_training)
    rows = []
    for row, prompt in enumerate(prompts):
        answer = generated[row, width:].tolist()
        for i, token in enumerate(answer):
            if token in eos:
                answer = answer[: i + 1]
                break
        rows.append((prompt, answer))
    length = max(len(p) + len(a) for p, a in rows)
    out_ids = torch.full((len(rows), length), pad, dtype=torch.long)
    out_mask = torch.zeros_like(out_ids)
    out_labels = torch.full_like(out_ids, -100)
    for row, (prompt, answer) in enumerate(rows):
        full = torch.tensor(prompt + answer, dtype=torch.long)
        out_ids[row, : len(full)] = full
        out_mask[row, : len(full)] = 1
        out_labels[row, len(prompt) : len(full)] = full[len(prompt) :]
    return {
        "input_ids": out_ids.to(ids.device),
        "attention_mask": out_mask.to(ids.device),
        "labels": out_labels.to(ids.device),
    }
