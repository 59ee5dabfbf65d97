"""Distillation and DPO losses against values computed by hand (in the comments) or by an independent formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Categorical, kl_divergence

from llmops.methods.losses import (
    completion_ce,
    distillation_total,
    dpo_loss,
    kd_loss,
    masked_mean,
    topk_kd_loss,
    topk_logprobs,
)

ONE = torch.ones(1, 1, dtype=torch.bool)


def _logits(*probs: float) -> torch.Tensor:
    return torch.log(torch.tensor(probs, dtype=torch.float64)).reshape(1, 1, -1)


TEACHER_PROBS, STUDENT_PROBS = (0.5, 0.5), (0.25, 0.75)
TEACHER = _logits(*TEACHER_PROBS)
STUDENT = _logits(*STUDENT_PROBS)


def _kl(p: tuple[float, ...], q: tuple[float, ...]) -> float:
    """KL(p || q) by torch.distributions, an implementation independent of llmops.methods.losses."""
    return kl_divergence(Categorical(probs=torch.tensor(p)), Categorical(probs=torch.tensor(q))).item()


def test_forward_kl_by_hand() -> None:
    # KL(t || s) = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 ln 2 + 0.5 ln(2/3)
    expected = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    got = kd_loss(STUDENT, TEACHER, ONE, loss="forward_kl").item()
    assert got == pytest.approx(expected, abs=1e-6)
    assert got == pytest.approx(_kl(TEACHER_PROBS, STUDENT_PROBS), abs=1e-6)  # torch's own KL, from probabilities


def test_reverse_kl_by_hand() -> None:
    # KL(s || t) = 0.25 ln(0.25/0.5) + 0.75 ln(0.75/0.5)
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    got = kd_loss(STUDENT, TEACHER, ONE, loss="reverse_kl").item()
    assert got == pytest.approx(expected, abs=1e-6)
    assert got == pytest.approx(_kl(STUDENT_PROBS, TEACHER_PROBS), abs=1e-6)  # the arguments of forward KL swapped


def test_jsd_by_hand() -> None:
    # beta 0.5: m = (0.375, 0.625); 0.5 KL(t || m) + 0.5 KL(s || m)
    kl_t = 0.5 * math.log(0.5 / 0.375) + 0.5 * math.log(0.5 / 0.625)
    kl_s = 0.25 * math.log(0.25 / 0.375) + 0.75 * math.log(0.75 / 0.625)
    got = kd_loss(STUDENT, TEACHER, ONE, loss="jsd", beta=0.5).item()
    assert got == pytest.approx(0.5 * kl_t + 0.5 * kl_s, abs=1e-6)
    assert got == pytest.approx(0.033822, abs=1e-6)
    # beta 0.9: m = 0.9 t + 0.1 s = (0.475, 0.525)
    m = (0.475, 0.525)
    kl_t = 0.5 * math.log(0.5 / m[0]) + 0.5 * math.log(0.5 / m[1])
    kl_s = 0.25 * math.log(0.25 / m[0]) + 0.75 * math.log(0.75 / m[1])
    assert kd_loss(STUDENT, TEACHER, ONE, loss="jsd", beta=0.9).item() == pytest.approx(
        0.9 * kl_t + 0.1 * kl_s, abs=1e-6
    )


def test_temperature_softens_and_scales_by_t_squared() -> None:
    # T = 2: teacher logits (0, 2 ln 3) / 2 -> probs (0.25, 0.75); student (0, 0) -> (0.5, 0.5).
    teacher = torch.tensor([[[0.0, 2 * math.log(3)]]], dtype=torch.float64)
    student = torch.zeros(1, 1, 2, dtype=torch.float64)
    kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert kd_loss(student, teacher, ONE, temperature=2.0).item() == pytest.approx(4 * kl, abs=1e-6)


def test_mask_keeps_only_completion_tokens() -> None:
    teacher = torch.cat([TEACHER, _logits(0.999, 0.001)], dim=1)
    student = torch.cat([STUDENT, _logits(0.001, 0.999)], dim=1)
    only_first = torch.tensor([[True, False]])
    assert kd_loss(student, teacher, only_first).item() == pytest.approx(0.143841, abs=1e-6)
    both = kd_loss(student, teacher, torch.tensor([[True, True]])).item()
    assert both > 1.0  # the masked-out position is a large divergence
    assert masked_mean(torch.tensor([[3.0, 5.0]]), torch.tensor([[False, False]])).item() == 0.0


def test_forward_kl_matches_torch_kl_div_on_random_logits() -> None:
    gen = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 5, 11, generator=gen), torch.randn(2, 5, 11, generator=gen)
    mask = torch.rand(2, 5, generator=gen) > 0.3
    t = 1.7
    per_token = F.kl_div(
        F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1), reduction="none", log_target=True
    ).sum(-1)
    expected = per_token[mask].mean() * t * t
    assert kd_loss(student, teacher, mask, temperature=t).item() == pytest.approx(expected.item(), rel=1e-5)


def test_topk_with_tail_bucket_by_hand() -> None:
    teacher = _logits(0.6, 0.3, 0.1)
    student = _logits(0.2, 0.5, 0.3)
    top, ids = topk_logprobs(teacher, k=1)
    assert ids.tolist() == [[[0]]] and top.exp().item() == pytest.approx(0.6)
    # buckets: teacher (0.6, 0.4), student (0.2, 0.8): 0.6 ln(0.6/0.2) + 0.4 ln(0.4/0.8)
    expected = 0.6 * math.log(3) + 0.4 * math.log(0.5)
    assert topk_kd_loss(student, top, ids, ONE).item() == pytest.approx(expected, abs=1e-5)


def test_topk_of_all_but_one_token_equals_full_vocabulary() -> None:
    gen = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(1, 4, 6, generator=gen), torch.randn(1, 4, 6, generator=gen)
    mask = torch.ones(1, 4, dtype=torch.bool)
    top, ids = topk_logprobs(teacher, k=5, temperature=2.0)
    for loss in ("forward_kl", "reverse_kl", "jsd"):
        full = kd_loss(student, teacher, mask, loss=loss, temperature=2.0, beta=0.3).item()
        assert topk_kd_loss(student, top, ids, mask, loss=loss, temperature=2.0, beta=0.3).item() == pytest.approx(
            full, rel=1e-4
        ), loss


def test_ce_total_and_errors() -> None:
    logits = _logits(0.25, 0.75).float().repeat(1, 2, 1)
    labels = torch.tensor([[1, -100]])
    assert completion_ce(logits, labels).item() == pytest.approx(-math.log(0.75), abs=1e-6)
    assert distillation_total(torch.tensor(2.0), torch.tensor(4.0), 0.25).item() == pytest.approx(3.5)
    with pytest.raises(ValueError, match="alpha"):
        distillation_total(torch.tensor(1.0), torch.tensor(1.0), 1.5)
    with pytest.raises(ValueError, match="same vocabulary"):
        kd_loss(torch.zeros(1, 1, 3), torch.zeros(1, 1, 4), ONE)
    with pytest.raises(ValueError, match="beta"):
        kd_loss(STUDENT, TEACHER, ONE, loss="jsd", beta=1.0)


def test_dpo_loss_by_hand() -> None:
    # rewards: chosen 0.5 (-1 - -2), rejected -0.5 (-3 - -2), at beta 0.5; loss = -log sigmoid(1) = log(1 + e^-1)
    loss, chosen, rejected = dpo_loss(
        torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), beta=0.5
    )
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    assert chosen.item() == pytest.approx(0.5) and rejected.item() == pytest.approx(-0.5)
