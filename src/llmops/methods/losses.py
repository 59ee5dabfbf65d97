"""Distillation and preference losses as small pure functions over logits (tested against hand-computed values).

Shapes: logits `[batch, seq, vocab]`, a completion mask `[batch, seq]` (True where the token is part of the answer
the loss is taken on; prompt and padding positions are False). Token-level losses are averaged over masked tokens.

- Forward KL, KL(teacher || student): mode-covering, the classic soft-target KD of Hinton et al. 2015
  (https://arxiv.org/abs/1503.02531), scaled by T^2 so gradients keep their size across temperatures.
- Reverse KL, KL(student || teacher): mode-seeking (MiniLLM, https://arxiv.org/abs/2306.08543).
- Generalised JSD with mixture weight beta (GKD, https://arxiv.org/abs/2306.13649):
  beta * KL(teacher || m) + (1 - beta) * KL(student || m), m = beta * teacher + (1 - beta) * student, 0 < beta < 1;
  beta = 0.5 is the symmetric Jensen-Shannon divergence.
- Top-k: the teacher's k most likely tokens and one tail bucket holding the rest of its probability mass; the student
  is collapsed onto the same k + 1 outcomes, so an offline cache of k log-probs per token is enough.
- DPO (Rafailov et al. 2023, https://arxiv.org/abs/2305.18290): -log sigmoid(beta * (policy margin - reference
  margin)), from summed sequence log-probs.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

KDLoss = Literal["forward_kl", "reverse_kl", "jsd"]


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` [batch, seq] over positions where `mask` is True; 0 when nothing is masked in."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) over the last axis, from log-probabilities (0 * log 0 taken as 0)."""
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1)


def _divergence(student_logp: torch.Tensor, teacher_logp: torch.Tensor, loss: KDLoss, beta: float) -> torch.Tensor:
    """Per-position divergence between two log-distributions over the last axis."""
    if loss == "forward_kl":
        return _kl(teacher_logp, student_logp)
    if loss == "reverse_kl":
        return _kl(student_logp, teacher_logp)
    if loss != "jsd":
        raise ValueError(f"unknown KD loss {loss!r}; use forward_kl, reverse_kl or jsd")
    if not 0.0 < beta < 1.0:
        raise ValueError(f"jsd needs 0 < beta < 1, got {beta}")
    mixture = torch.logsumexp(
        torch.stack([teacher_logp + torch.log(torch.tensor(beta)), student_logp + torch.log(torch.tensor(1 - beta))]),
        dim=0,
    )
    return beta * _kl(teacher_logp, mixture) + (1 - beta) * _kl(student_logp, mixture)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor,
    *,
    loss: KDLoss = "forward_kl",
    temperature: float = 1.0,
    beta: float = 0.5,
) -> torch.Tensor:
    """Full-vocabulary distillation loss at temperature T (scaled by T^2), averaged over masked tokens."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ: the two models need the same vocabulary"
        )
    student_logp = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher_logp = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    per_token = _divergence(student_logp, teacher_logp, loss, beta)
    return masked_mean(per_token, mask) * temperature**2


def topk_logprobs(teacher_logits: torch.Tensor, k: int, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's top-k log-probs at temperature T and their token ids (what the offline cache stores)."""
    logp = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    values, ids = logp.topk(k, dim=-1)
    return values, ids


def _with_tail(top_logp: torch.Tensor) -> torch.Tensor:
    """k log-probs plus a last bucket holding log(1 - sum of their probabilities)."""
    tail = torch.log1p(-top_logp.exp().sum(-1, keepdim=True).clamp(max=1 - 1e-6))
    return torch.cat([top_logp, tail], dim=-1)


def topk_kd_loss(
    student_logits: torch.Tensor,
    teacher_top_logp: torch.Tensor,
    teacher_top_ids: torch.Tensor,
    mask: torch.Tensor,
    *,
    loss: KDLoss = "forward_kl",
    temperature: float = 1.0,
    beta: float = 0.5,
) -> torch.Tensor:
    """Distillation on the teacher's top-k tokens plus a tail bucket, at temperature T (scaled by T^2)."""
    student_logp = F.log_softmax(student_logits.float() / temperature, dim=-1)
    student_top = student_logp.gather(-1, teacher_top_ids.long())
    per_token = _divergence(_with_tail(student_top), _with_tail(teacher_top_logp.float()), loss, beta)
    return masked_mean(per_token, mask) * temperature**2


def completion_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy on completion tokens (labels -100 elsewhere), logits and labels already aligned."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def distillation_total(ce: torch.Tensor, kd: torch.Tensor, alpha: float) -> torch.Tensor:
    """alpha * CE + (1 - alpha) * KD."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return alpha * ce + (1 - alpha) * kd


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sigmoid DPO loss (mean) and the implicit rewards of chosen and rejected answers, from summed log-probs."""
    chosen_reward = beta * (policy_chosen - reference_chosen)
    rejected_reward = beta * (policy_rejected - reference_rejected)
    loss = -F.logsigmoid(chosen_reward - rejected_reward).mean()
    return loss, chosen_reward.detach(), rejected_reward.detach()
