"""train_dpo and preference_metrics on a tiny model: reference, first-step loss, learning, hand-checked log-probs."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from tests.conftest import make_sft_examples

from llmops.config import RunConfig
from llmops.errors import DataError, ModelError
from llmops.methods.dpo import (
    make_trainer,
    preference_logps,
    preference_metrics,
    reference_copy,
    train_dpo,
)
from llmops.methods.losses import dpo_loss
from llmops.models.loader import load_student

BETA = 0.5


def _cfg(model_dir: Path, method: str = "lora", dpo: dict | None = None, **training) -> RunConfig:
    settings = {
        "max_steps": 3,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "save_steps": 100,
        "max_len": 128,
        "seed": 0,
        "bf16": False,
        **training,
    }  # exact losses: fp32
    return RunConfig.model_validate(
        {
            "student": str(model_dir),
            "peft": {"method": method, "r": 4, "alpha": 8},
            "training": settings,
            "dpo": {"beta": BETA, **(dpo or {})},
        }
    )


def _pairs(n: int, seed: int = 0) -> list[dict]:
    """Chosen: the gold JSON; rejected: the JSON with its "id" field missing."""
    out = []
    for ex in make_sft_examples(n, seed):
        gold = json.loads(ex["completion"][0]["content"])
        out.append(
            {
                "prompt": ex["prompt"],
                "chosen": ex["completion"],
                "class": "invoice",
                "rejected": [{"role": "assistant", "content": json.dumps({"total": gold["total"]})}],
            }
        )
    return out


def _perturb(params, seed: int = 0, scale: float = 0.05) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn(p.shape, generator=gen) * scale)


def _hand_logp(model, tokenizer, prompt: list[dict], answer: list[dict]) -> float:
    full = tokenizer.apply_chat_template(prompt + answer, tokenize=True, return_dict=True)["input_ids"]
    start = len(
        tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    )
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([full])).logits[0].double(), -1)
    return sum(logp[t - 1, full[t]].item() for t in range(start, len(full)))


@pytest.mark.parametrize("method", ["lora", "full"])
def test_an_untrained_policy_has_zero_margin_and_accuracy(tiny_model_dir: Path, method: str) -> None:
    cfg = _cfg(tiny_model_dir, method)
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    model.train()
    metrics = preference_metrics(model, tokenizer, _pairs(6), BETA, reference=reference_copy(model), batch_size=4)
    assert metrics == {"preference_accuracy": 0.0, "reward_margin": 0.0}  # ties count as wrong
    assert model.training  # mode restored


def test_preference_log_probs_match_a_hand_computation(tiny_model_dir: Path) -> None:
    cfg = _cfg(tiny_model_dir, "full")
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    reference = reference_copy(model)
    _perturb(model.parameters())
    pairs = _pairs(5, seed=3)  # prompts of different lengths: padding must not leak into the sums
    logps = preference_logps(model, tokenizer, pairs, batch_size=4, reference=reference)
    for i in (0, 4):
        pair = pairs[i]
        expected = {
            "policy_chosen": _hand_logp(model, tokenizer, pair["prompt"], pair["chosen"]),
            "policy_rejected": _hand_logp(model, tokenizer, pair["prompt"], pair["rejected"]),
            "reference_chosen": _hand_logp(reference, tokenizer, pair["prompt"], pair["chosen"]),
            "reference_rejected": _hand_logp(reference, tokenizer, pair["prompt"], pair["rejected"]),
        }
        for key, value in expected.items():
            assert logps[key][i].item() == pytest.approx(value, abs=1e-3), (i, key)
    rewards = [
        BETA * (logps["policy_chosen"] - logps["reference_chosen"]),
        BETA * (logps["policy_rejected"] - logps["reference_rejected"]),
    ]
    metrics = preference_metrics(model, tokenizer, pairs, BETA, reference=reference, batch_size=2)
    assert metrics["reward_margin"] == pytest.approx((rewards[0] - rewards[1]).mean().item(), abs=1e-4)
    assert metrics["preference_accuracy"] == pytest.approx((rewards[0] > rewards[1]).float().mean().item())
    assert metrics["reward_margin"] != 0


def test_lora_dpo_uses_the_adapter_disabled_base_as_reference_and_learns(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_model_dir, "lora", max_steps=40)
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    logs: list[dict] = []
    trainer = make_trainer(model, tokenizer, _pairs(16), cfg, tmp_path, on_log=logs.append)
    assert trainer.ref_model is None and list(model.peft_config) == ["default"]  # no reference copy, no ref adapter
    trainer.train()
    assert logs[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)  # step 1: policy == reference
    assert "rewards/accuracies" in logs[-1] and "rewards/margins" in logs[-1]
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    metrics = preference_metrics(model, tokenizer, _pairs(16), BETA)
    assert metrics["preference_accuracy"] >= 0.9 and metrics["reward_margin"] > 0


def test_full_dpo_keeps_a_frozen_copy_as_reference_and_learns(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_model_dir, "full", max_steps=30, learning_rate=3e-3)
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    logs: list[dict] = []
    trainer = make_trainer(model, tokenizer, _pairs(16), cfg, tmp_path, on_log=logs.append)
    ref = trainer.ref_model
    assert ref is not None and ref is not model and not ref.training
    assert not any(p.requires_grad for p in ref.parameters())
    trainer.train()
    assert logs[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert all(torch.equal(p, initial[n]) for n, p in ref.named_parameters())
    assert all(not torch.equal(p.detach(), initial[n]) for n, p in model.named_parameters())
    metrics = preference_metrics(model, tokenizer, _pairs(16), BETA, reference=ref)
    assert metrics["preference_accuracy"] >= 0.9 and metrics["reward_margin"] > 0


def test_trl_first_step_loss_equals_our_dpo_loss_against_the_base(tiny_model_dir: Path, tmp_path: Path) -> None:
    # An adapter that is already non-zero: TRL would copy it as the reference (loss ln 2); ours is the base.
    cfg = _cfg(tiny_model_dir, "lora", max_steps=1)
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    _perturb([p for n, p in model.named_parameters() if "lora_B" in n], scale=0.5)
    pairs = _pairs(4, seed=7)
    ours = dpo_loss(*preference_logps(model, tokenizer, pairs).values(), beta=BETA)[0].item()
    logs: list[dict] = []
    train_dpo(model, tokenizer, pairs, cfg, tmp_path, on_log=logs.append)
    assert abs(ours - math.log(2)) > 1e-3
    assert logs[0]["step"] == 1 and logs[0]["loss"] == pytest.approx(ours, abs=1e-4)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_precomputed_reference_log_probs_come_from_the_reference(
    tiny_model_dir: Path, tmp_path: Path, method: str
) -> None:
    cfg = _cfg(tiny_model_dir, method, dpo={"precompute_ref_log_probs": True})
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    base = reference_copy(model)
    if method == "lora":
        _perturb([p for n, p in model.named_parameters() if "lora_B" in n], scale=0.5)
    pairs = _pairs(6, seed=2)
    expected = preference_logps(model, tokenizer, pairs, reference=base)
    trainer = make_trainer(model, tokenizer, pairs, cfg, tmp_path)
    assert trainer.ref_model is None  # no reference kept in memory
    data = trainer.train_dataset
    torch.testing.assert_close(torch.tensor(data["ref_chosen_logps"]), expected["reference_chosen"], atol=1e-4, rtol=0)
    torch.testing.assert_close(
        torch.tensor(data["ref_rejected_logps"]), expected["reference_rejected"], atol=1e-4, rtol=0
    )
    result = train_dpo(model, tokenizer, pairs, cfg, tmp_path)
    assert result.steps == 3


def test_qlora_trains_without_a_reference_copy(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_model_dir, "qlora", max_steps=2)
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    result = train_dpo(model, tokenizer, _pairs(8), cfg, tmp_path)
    assert result.steps == 2 and list(model.peft_config) == ["default"]
    params = dict(model.named_parameters())
    assert all(params[n].dtype == torch.float32 for n in trainable)
    assert any(not torch.equal(params[n].detach(), before) for n, before in trainable.items() if "lora_B" in n)


def test_answers_end_with_eos_and_the_prompt_is_split_off(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_model_dir)
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    pair = _pairs(1)[0]
    row = make_trainer(model, tokenizer, [pair], cfg, tmp_path).train_dataset[0]
    prompt = tokenizer.apply_chat_template(pair["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True)[
        "input_ids"
    ]
    assert row["prompt_ids"] == prompt
    for key in ("chosen_ids", "rejected_ids"):
        assert tokenizer.eos_token_id in row[key]
    assert tokenizer.decode(row["chosen_ids"], skip_special_tokens=True).strip().startswith('{"id"')


def test_eos_is_appended_when_the_template_does_not_end_the_turn(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_model_dir)
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    )
    row = make_trainer(model, tokenizer, _pairs(1), cfg, tmp_path).train_dataset[0]
    assert tokenizer.eos_token_id in row["chosen_ids"] and tokenizer.eos_token_id in row["rejected_ids"]


def test_resume_from_a_middle_checkpoint_matches_an_uninterrupted_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_model_dir, "lora", max_steps=6, save_steps=3, save_total_limit=5)
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    full = train_dpo(model, tokenizer, _pairs(12), cfg, tmp_path / "a")
    assert not (tmp_path / "a" / "checkpoint-3" / "ref").exists()  # only the trained adapter is saved
    shutil.copytree(tmp_path / "a" / "checkpoint-3", tmp_path / "b" / "checkpoint-3")
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    resumed = train_dpo(model, tokenizer, _pairs(12), cfg, tmp_path / "b", resume_from=True)
    assert resumed.steps == 6 and resumed.final_loss == pytest.approx(full.final_loss, rel=0.01)


def test_bad_input_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_model_dir, "full")
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    with pytest.raises(DataError, match="no preference pairs"):
        train_dpo(model, tokenizer, [], cfg, tmp_path)
    with pytest.raises(DataError, match="example 1: 'rejected'"):
        train_dpo(model, tokenizer, [_pairs(1)[0], {"prompt": [], "chosen": "x"}], cfg, tmp_path)
    with pytest.raises(ModelError, match="no checkpoint"):
        train_dpo(model, tokenizer, _pairs(2), cfg, tmp_path, resume_from=True)
    with pytest.raises(ModelError, match="needs its reference model"):
        preference_metrics(model, tokenizer, _pairs(2), BETA)
