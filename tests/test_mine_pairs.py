"""Pairs mined from a tiny model's own answers (`llmops mine-pairs`, evaluation/pairs.py) and DPO on them
(`dpo.pairs_from: self`): best vs worst by the task's reward, deterministic, valid DPO data, clear errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from tests.conftest import make_sft_examples
from typer.testing import CliRunner

from llmops.config import build_config
from llmops.errors import DataError, ModelError
from llmops.tasks.idp import IDPTask

SAMPLES = 8
MINE = {"samples": SAMPLES, "temperature": 1.0, "max_new_tokens": 32, "batch_size": 16}


def _gold_records(n: int, seed: int = 5) -> list[dict]:
    """IDP gold records as {"messages"}: the invoice prompt and its gold JSON."""
    return [{"messages": ex["prompt"] + ex["completion"], "class": "invoice"} for ex in make_sft_examples(n, seed)]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _examples(n: int) -> list[dict]:
    from llmops.data.formats import to_idp_eval_examples

    return to_idp_eval_examples(_gold_records(n), IDPTask(None).build_prompt)


def test_each_pair_is_the_best_and_worst_answer_of_a_prompt_whose_rewards_differ(json_model: Path) -> None:
    from llmops.evaluation.generate import sample
    from llmops.evaluation.pairs import mine_pairs
    from llmops.models.loader import load_for_inference

    model, tokenizer = load_for_inference(json_model)
    task, examples = IDPTask(None), _examples(6)
    # The raw model (eval.constrained false): some answers parse, some do not.
    pairs, summary = mine_pairs(
        model, tokenizer, task, examples, seed=0, reward_kwargs={"schema_weight": 0.1}, constrained=False, **MINE
    )
    # The same draw by hand (same seed: the same answers), judged answer by answer.
    answers = sample(model, tokenizer, [ex["prompt"] for ex in examples], SAMPLES, 16, 32, 1.0, seed=0)
    rewards = [
        task.rewards(group, [ex["reference"]] * SAMPLES, schema_weight=0.1) for group, ex in zip(answers, examples)
    ]
    expected = []
    for ex, group, scores in zip(examples, answers, rewards):
        if max(scores) != min(scores):
            expected.append(
                {
                    "prompt": ex["prompt"],
                    "chosen": group[scores.index(max(scores))],
                    "rejected": group[scores.index(min(scores))],
                    "class": "invoice",
                    "chosen_reward": max(scores),
                    "rejected_reward": min(scores),
                }
            )
    assert pairs == expected and 0 < len(pairs) <= len(examples)
    assert all(p["chosen_reward"] > p["rejected_reward"] and p["chosen"] != p["rejected"] for p in pairs)
    flat = [r for scores in rewards for r in scores]
    assert summary["prompts"] == 6 and summary["samples_per_prompt"] == SAMPLES and summary["pairs"] == len(pairs)
    assert summary["mean_reward"] == pytest.approx(sum(flat) / len(flat))
    assert summary["full_reward_share"] == pytest.approx(sum(r == 1.0 for r in flat) / len(flat))
    assert summary["seconds"] > 0
    again, _ = mine_pairs(
        model, tokenizer, task, examples, seed=0, reward_kwargs={"schema_weight": 0.1}, constrained=False, **MINE
    )
    assert again == pairs


def test_cli_writes_pairs_that_validate_as_dpo_data(json_model: Path, tmp_path: Path) -> None:
    from llmops.cli.app import app
    from llmops.data.formats import to_preference_examples
    from llmops.data.io import read_records
    from llmops.run_inputs import validate_file

    data, out = _write(tmp_path / "gold.jsonl", _gold_records(8)), tmp_path / "pairs.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "mine-pairs",
            "--model",
            str(json_model),
            "--data",
            str(data),
            "--samples",
            str(SAMPLES),
            "--temperature",
            "1.0",
            "--max-new-tokens",
            "32",
            "--limit",
            "6",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["prompts"] == 6 and 0 < summary["written"] <= summary["pairs"] <= 6
    assert validate_file(str(out), "IDP", "DPO") == []
    records = read_records(str(out))
    assert len(records) == summary["written"]
    examples = to_preference_examples(records, IDPTask(None).build_prompt)
    assert all(ex["prompt"][0]["role"] == "user" and ex["chosen"][0]["role"] == "assistant" for ex in examples)


def test_cli_reports_bad_data_by_line_and_refuses_one_sample(tmp_path: Path) -> None:
    from llmops.cli.app import app

    bad = _write(tmp_path / "gold.jsonl", _gold_records(1) + [{"document": "Invoice 7"}])
    base = ["mine-pairs", "--model", str(tmp_path / "no-model"), "--output", str(tmp_path / "pairs.jsonl")]
    result = CliRunner().invoke(app, [*base, "--data", str(bad)])
    assert result.exit_code == 2 and f"{bad}:2:" in result.stderr  # before any model is loaded
    one = CliRunner().invoke(app, [*base, "--data", str(bad), "--samples", "1"])
    assert one.exit_code == 2 and "--samples 1" in one.stderr and "at least 2" in one.stderr
    assert not (tmp_path / "pairs.jsonl").exists()


def _dpo_cfg(model: Path, data: Path, pairs_from: str = "self", steps: int = 2, constrained: bool = True):
    return build_config(
        flags={"student": str(model), "data": str(data), "flow_type": "IDP", "train_type": "DPO"},
        overrides=[
            f"dpo.pairs_from={pairs_from}",
            f"dpo.mine_samples={SAMPLES}",
            f"eval.constrained={str(constrained).lower()}",
            "dpo.mine_max_new_tokens=32",
            f"training.max_steps={steps}",
            "training.per_device_train_batch_size=2",
            "training.logging_steps=1",
            "training.save_steps=100",
            "training.max_len=128",
            "peft.r=4",
            "peft.alpha=8",
            "eval.eval_fraction=0.25",
            "tracking.system_metrics=false",
        ],
    )


def test_dpo_pairs_from_self_mines_once_then_trains(json_model: Path, tmp_path: Path) -> None:
    from llmops.methods.base import MethodContext
    from llmops.methods.dpo import DPO
    from llmops.models.loader import load_student
    from llmops.run_inputs import validate

    cfg = _dpo_cfg(json_model, _write(tmp_path / "gold.jsonl", _gold_records(8)))
    prepared = validate(cfg)
    assert prepared.pairs == [] and len(prepared.train) == 6 and len(prepared.eval) == 2  # gold split, no pairs
    assert all("reference" in ex for ex in prepared.train)
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    logs: list[dict] = []
    result = DPO().train(
        cfg, prepared, MethodContext(), model, tokenizer, tmp_path / "run" / "checkpoints", None, logs.append
    )
    mined = tmp_path / "run" / "mined_pairs.jsonl"
    lines = mined.read_text().splitlines()
    assert result.steps == 2 and math.isfinite(result.final_loss)
    assert logs[0]["step"] == 0 and logs[0]["mined_pairs"] == len(lines) > 0 and "mined_mean_reward" in logs[0]
    assert any("loss" in entry for entry in logs[1:])
    # A second attempt of the run (--resume) reads the pairs back instead of mining again.
    again: list[dict] = []
    cfg1 = _dpo_cfg(json_model, tmp_path / "gold.jsonl", steps=1)
    DPO().train(
        cfg1, prepared, MethodContext(), model, tokenizer, tmp_path / "run" / "checkpoints-2", None, again.append
    )
    assert again[0] == {"step": 0, "mined_pairs": len(lines)}
    assert DPO().metrics(cfg, prepared, MethodContext(), model, tokenizer) == {}
    assert DPO().prepare_trained(cfg, prepared, model, tokenizer).reference is None


def test_mining_a_subset_of_prompts_says_what_it_mined(json_model: Path, tmp_path: Path, capsys) -> None:
    from llmops.methods.dpo_mined import mined_examples
    from llmops.models.loader import load_for_inference
    from llmops.run_inputs import validate

    cfg = _dpo_cfg(json_model, _write(tmp_path / "gold.jsonl", _gold_records(8)))
    cfg.dpo.mine_max_prompts = 2
    prepared = validate(cfg)
    model, tokenizer = load_for_inference(json_model)
    pairs = mined_examples(cfg, prepared.task, prepared.train, model, tokenizer, tmp_path / "run" / "checkpoints")
    err = capsys.readouterr().err
    assert f"pairs from 2 prompts x {SAMPLES} answers" in err and 0 < len(pairs) <= 2


def test_mined_answers_are_decoded_under_the_schema(json_model: Path) -> None:
    """By default (eval.constrained) every sampled IDP answer parses and validates, so pairs differ by content."""
    from llmops.evaluation.pairs import mine_pairs
    from llmops.models.loader import load_for_inference

    model, tokenizer = load_for_inference(json_model)
    schema = {
        "type": "object",
        "properties": {"id": {"type": "string"}, "total": {"type": "string"}},
        "required": ["id", "total"],
        "additionalProperties": False,
    }
    task = IDPTask(schema)
    pairs, summary = mine_pairs(
        model,
        tokenizer,
        task,
        _examples(6),
        seed=0,
        reward_kwargs={"schema_weight": 0.1},
        **{**MINE, "max_new_tokens": 64},
    )
    assert pairs and all(
        task.example_scores(text, {})["schema_valid"] for p in pairs for text in (p["chosen"], p["rejected"])
    )
    assert min(p["rejected_reward"] for p in pairs) >= 0.1  # every answer is schema-valid JSON


def test_untrained_model_whose_answers_all_score_alike_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    from llmops.methods.dpo_mined import mined_examples
    from llmops.models.loader import load_for_inference

    cfg = _dpo_cfg(tiny_model_dir, tmp_path / "gold.jsonl", constrained=False)
    model, tokenizer = load_for_inference(tiny_model_dir)  # random weights: no answer parses, every reward is 0
    with pytest.raises(ModelError, match="scored alike; raise dpo.mine_temperature or dpo.mine_samples"):
        mined_examples(cfg, IDPTask(None), _examples(3), model, tokenizer, tmp_path / "run" / "checkpoints")
    assert not (tmp_path / "run" / "mined_pairs.jsonl").exists()


def test_data_that_do_not_match_pairs_from_name_the_setting(tmp_path: Path, tiny_model_dir: Path) -> None:
    from llmops.run_inputs import validate

    gold = _write(tmp_path / "gold.jsonl", _gold_records(4))
    with pytest.raises(DataError, match=r"gold.jsonl:\d+: .*set dpo.pairs_from: self"):
        validate(_dpo_cfg(tiny_model_dir, gold, pairs_from="data"))
    pairs = _write(
        tmp_path / "pairs.jsonl",
        [
            {"prompt": f"Invoice {i}", "chosen": json.dumps({"id": str(i)}), "rejected": json.dumps({"id": "0"})}
            for i in range(1, 5)
        ],
    )
    with pytest.raises(DataError, match=r"pairs.jsonl:\d+: .*set dpo.pairs_from: data"):
        validate(_dpo_cfg(tiny_model_dir, pairs, pairs_from="self"))
    assert len(validate(_dpo_cfg(tiny_model_dir, pairs, pairs_from="data")).pairs) == 1  # as before: pairs held out
