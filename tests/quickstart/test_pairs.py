"""Preference pairs of the DPO quickstart: chosen is gold, rejected is wrong (scored wrong by the task itself)."""

from __future__ import annotations

import json
from pathlib import Path

from llmops.quickstart.codegen_data import generate_codegen_dataset
from llmops.quickstart.idp_data import generate_idp_dataset
from llmops.quickstart.pairs import write_codegen_pairs, write_idp_pairs
from llmops.sandbox import check_programs
from llmops.tasks.codegen import program_for
from llmops.tasks.idp import IDPTask


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_idp_pairs_chosen_is_gold_rejected_is_wrong(tmp_path: Path) -> None:
    data = generate_idp_dataset(tmp_path / "idp", n_train=120, n_eval_per_class=1, seed=0)
    pairs = _read(write_idp_pairs(data.train, tmp_path / "pairs.jsonl", seed=0))
    train = _read(data.train)
    task = IDPTask(None)
    assert len(pairs) == len(train)
    kinds = set()
    for pair, record in zip(pairs, train):
        assert pair["prompt"] == record["document"] and pair["chosen"] == task.format_answer(record["fields"])
        rejected = task.parse(pair["rejected"])
        assert rejected != record["fields"]
        kinds.add("broken" if rejected is None else "missing" if len(rejected) < len(record["fields"]) else "value")
    assert kinds == {"broken", "missing", "value"}


def test_codegen_pairs_rejected_fail_their_tests(tmp_path: Path) -> None:
    data = generate_codegen_dataset(tmp_path / "cg", n_train=10, n_eval_per_class=6, seed=1)
    problems = _read(data.eval)
    train = tmp_path / "train.jsonl"
    train.write_text(
        "".join(
            json.dumps({"input": p["prompt"], "output": p["canonical_solution"], "class": p["class"]}) + "\n"
            for p in problems
        )
    )
    pairs = _read(write_codegen_pairs(train, tmp_path / "pairs.jsonl", seed=0))
    assert len(pairs) >= len(problems) - 1
    by_prompt = {p["prompt"]: p for p in problems}
    programs = [program_for(by_prompt[pair["prompt"]], pair[side]) for pair in pairs for side in ("chosen", "rejected")]
    results = check_programs(programs, timeout=3, workers=2, desc=None)
    assert all(r.passed for r in results[0::2])
    assert not any(r.passed for r in results[1::2])
