"""Synthetic CodeGen tasks of the quickstart: canonical solutions pass, held-out names and constants are unseen."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmops.quickstart.codegen_data import CLASSES, CodegenDataset, generate_codegen_dataset, tokenizer_corpus
from llmops.sandbox import build_program, check_programs
from llmops.tasks.codegen import CodeGenTask


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> CodegenDataset:
    return generate_codegen_dataset(tmp_path_factory.mktemp("codegen"), n_train=2000, n_eval_per_class=12, seed=3)


def test_records_and_classes(dataset: CodegenDataset) -> None:
    train, evals = _read(dataset.train), _read(dataset.eval)
    assert len(train) == 2000 and len(evals) == 12 * len(CLASSES)
    assert all(set(r) == {"input", "output", "class"} for r in train)
    assert all({"task_id", "prompt", "test", "entry_point", "canonical_solution", "class"} <= set(r) for r in evals)
    assert {r["class"] for r in evals} == set(CLASSES) == {"arithmetic", "conditionals", "lists", "strings"}


def test_canonical_solutions_pass_and_wrong_ones_fail(dataset: CodegenDataset) -> None:
    evals = _read(dataset.eval)
    good = check_programs([build_program(p, p["canonical_solution"]) for p in evals], timeout=3, workers=2, desc=None)
    assert all(r.passed for r in good), [r.result for r in good if not r.passed]
    bad = check_programs([build_program(p, "    return None\n") for p in evals], timeout=3, workers=2, desc=None)
    assert not any(r.passed for r in bad)


def _names_and_constants(prompt: str) -> set[str]:
    name = re.match(r"def (\w+)_\w+\(", prompt).group(1)
    doc = prompt.split('"""')[1]
    return {name, *re.findall(r"'(\w+)'", doc)} | {f"#{n}" for n in re.findall(r"\d+", doc)}


def test_held_out_names_words_and_numbers_are_unseen(dataset: CodegenDataset) -> None:
    seen = set().union(*(_names_and_constants(r["input"]) for r in _read(dataset.train)))
    held = [_names_and_constants(r["prompt"]) for r in _read(dataset.eval)]
    assert all(not (values & seen) for values in held), [values & seen for values in held if values & seen][:3]
    # Same distribution: held-out numbers span the training range.
    numbers = sorted(int(v[1:]) for values in held for v in values if v.startswith("#"))
    assert numbers[0] < 30 and numbers[-1] > 70


def test_deterministic_and_corpus_has_no_held_out_text(dataset: CodegenDataset, tmp_path: Path) -> None:
    again = generate_codegen_dataset(tmp_path, n_train=2000, n_eval_per_class=12, seed=3)
    assert again.train.read_bytes() == dataset.train.read_bytes()
    assert again.eval.read_bytes() == dataset.eval.read_bytes()
    corpus = "\n".join(tokenizer_corpus(dataset, CodeGenTask().build_prompt))
    words = set(re.findall(r"\w+", corpus))
    assert all(r["entry_point"] not in words for r in _read(dataset.eval))
