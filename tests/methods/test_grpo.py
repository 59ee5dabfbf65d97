"""GRPO (methods/grpo.py) on the tiny JSON model: the task's reward drives TRL's GRPOTrainer, only training examples
are judged, a step changes every trainable parameter, resume continues a run, the batch must hold whole groups."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from tests.conftest import make_sft_examples

from llmops.config import RunConfig
from llmops.errors import ConfigError
from llmops.tasks.idp import IDPTask

GENERATIONS = 8


def _cfg(model: Path, tmp: Path, method: str = "lora", steps: int = 2, **grpo) -> RunConfig:
    return RunConfig.model_validate(
        {
            "student": str(model),
            "flow_type": "IDP",
            "train_type": "GRPO",
            "save_dir": str(tmp),
            "peft": {"method": method, "r": 4, "alpha": 8},
            "training": {
                "max_steps": steps,
                "per_device_train_batch_size": 2 * GENERATIONS,
                "learning_rate": 5e-3,
                "logging_steps": 1,
                "save_steps": 2,
                "seed": 0,
                "max_len": 256,
                "num_threads": 1,
                "warmup_steps": 0,
            },
            "grpo": {"num_generations": GENERATIONS, "max_completion_length": 24, "beta": 0.04, **grpo},
        }
    )


def _gold(n: int, seed: int = 5) -> list[dict]:
    return [{"messages": ex["prompt"] + ex["completion"], "class": "invoice"} for ex in make_sft_examples(n, seed)]


def _examples(records: list[dict]) -> list[dict]:
    from llmops.data.formats import to_idp_eval_examples

    return to_idp_eval_examples(records, IDPTask(None).build_prompt)


def _train(model_dir: Path, cfg: RunConfig, out: Path, examples: list[dict], resume: bool = False):
    from llmops.methods.grpo import TaskReward, train_grpo
    from llmops.models.loader import load_student

    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    reward = TaskReward(IDPTask(None), [ex["reference"] for ex in examples], cfg)
    logs: list[dict] = []
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train_grpo(
        model, tokenizer, examples, reward, cfg, out, resume_from=True if resume else None, on_log=logs.append
    )
    return model, before, reward, logs, result


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_grpo_step_changes_every_trainable_parameter(json_model: Path, tmp_path: Path, method: str) -> None:
    examples = _examples(_gold(8))
    cfg = _cfg(json_model, tmp_path, method)
    model, before, reward, logs, result = _train(json_model, cfg, tmp_path / "run", examples)
    params = dict(model.named_parameters())
    assert set(params) == set(before)  # TRL's reference adapter ("ref", under LoRA) is gone after training
    trainable = {n for n, p in params.items() if p.requires_grad}
    changed = {n for n, p in params.items() if not torch.equal(p.detach(), before[n])}
    assert trainable and changed == trainable
    assert result.steps == 2 and [e["step"] for e in logs] == [1, 2]
    # Each step judged one generation batch: 2 prompts x 8 answers, all of them training examples.
    assert sum(reward.judged.values()) == 2 * 2 * GENERATIONS
    assert set(reward.judged) <= set(range(len(examples))) and all(v % GENERATIONS == 0 for v in reward.judged.values())
    for entry in logs:
        assert 0.0 <= entry["reward"] <= 1.0 and math.isfinite(entry["loss"])
        assert "kl" in entry and entry["completions/mean_length"] > 0
        assert entry["rewards/task_reward/mean"] == pytest.approx(entry["reward"])
    assert any(entry["reward_std"] > 0 for entry in logs)  # answers to one prompt scored differently: a signal


def test_resume_continues_from_the_checkpoint(json_model: Path, tmp_path: Path) -> None:
    examples = _examples(_gold(8))
    cfg = _cfg(json_model, tmp_path, steps=4)
    _, _, _, full_logs, full = _train(json_model, cfg, tmp_path / "a", examples)
    shutil.copytree(tmp_path / "a" / "checkpoint-2", tmp_path / "b" / "checkpoint-2")
    _, _, reward, logs, resumed = _train(json_model, cfg, tmp_path / "b", examples, resume=True)
    assert resumed.steps == 4 and [e["step"] for e in logs] == [3, 4]
    assert sum(reward.judged.values()) == 2 * 2 * GENERATIONS  # only the two steps left were sampled and judged
    # Same seed, same restored RNG state: the resumed steps sample and score the answers the uninterrupted run did.
    for a, b in zip(full_logs[2:], logs, strict=True):
        assert b["reward"] == pytest.approx(a["reward"], abs=1e-6)
    assert resumed.final_loss == pytest.approx(full.final_loss, rel=1e-3, abs=1e-6)


def test_held_out_examples_are_never_judged_for_rewards(
    json_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmops import pipeline

    train, held_out = _gold(8, seed=5), _gold(4, seed=99)
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held_out))
    judged: list[dict] = []
    real = IDPTask.rewards

    def spy(self, answers, references, **kwargs):
        judged.extend(references)
        return real(self, answers, references, **kwargs)

    monkeypatch.setattr(IDPTask, "rewards", spy)
    cfg = _cfg(json_model, tmp_path / "runs").model_copy(
        update={"data": str(tmp_path / "train.jsonl"), "eval_data": str(tmp_path / "eval.jsonl")}
    )
    cfg = RunConfig.model_validate(
        {
            **cfg.model_dump(),
            "eval": {"max_new_tokens": 24, "baseline": True},
            "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "system_metrics": False},
        }
    )
    summary = pipeline.run(cfg)
    assert "field_f1" in summary.metrics and "field_f1" in summary.baseline
    gold_train = [json.loads(r["messages"][-1]["content"]) for r in train]
    gold_held_out = [json.loads(r["messages"][-1]["content"]) for r in held_out]
    assert len(judged) == 2 * 2 * GENERATIONS
    assert all(ref in gold_train for ref in judged) and not any(ref in gold_held_out for ref in judged)


def test_the_batch_must_hold_whole_groups(json_model: Path, tmp_path: Path) -> None:
    from llmops.methods.grpo import check_batch

    check_batch(_cfg(json_model, tmp_path))
    bad = RunConfig.model_validate(
        {
            **_cfg(json_model, tmp_path).model_dump(),
            "training": {"per_device_train_batch_size": 6},
            "grpo": {"num_generations": 4},
        }
    )
    with pytest.raises(ConfigError, match=r"grpo.num_generations 4: training.per_device_train_batch_size"):
        check_batch(bad)
