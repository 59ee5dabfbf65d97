"""val_per_class selection and stratified train/eval splits: per class, seeded, deterministic, not a head cut."""

from __future__ import annotations

from collections import Counter

import pytest

from llmops.data.splits import select_per_class, train_eval_split


def _examples() -> list[dict]:
    classes = ["invoice"] * 30 + ["receipt"] * 12 + ["po"] * 3
    return [{"id": str(i), "class": cls, "document": f"doc {i}"} for i, cls in enumerate(classes)]


def test_at_most_n_per_class_in_original_order() -> None:
    examples = _examples()
    chosen = select_per_class(examples, 5, seed=0)
    assert Counter(e["class"] for e in chosen) == {"invoice": 5, "receipt": 5, "po": 3}
    positions = [examples.index(e) for e in chosen]
    assert positions == sorted(positions)


def test_not_a_head_cut_and_depends_on_the_seed() -> None:
    examples = _examples()
    heads = {e["id"] for e in examples[:5]}
    picks = [{e["id"] for e in select_per_class(examples, 5, seed=s) if e["class"] == "invoice"} for s in range(4)]
    assert any(p != heads for p in picks)
    assert len({frozenset(p) for p in picks}) > 1


def test_same_seed_same_selection_regardless_of_input_order() -> None:
    examples = _examples()
    first = select_per_class(examples, 4, seed=7)
    assert select_per_class(examples, 4, seed=7) == first
    reversed_pick = select_per_class(list(reversed(examples)), 4, seed=7)
    assert sorted(e["id"] for e in reversed_pick) == sorted(e["id"] for e in first)


def test_adding_examples_keeps_earlier_picks_unless_outranked() -> None:
    examples = _examples()
    before = {e["id"] for e in select_per_class(examples, 4, seed=3)}
    extra = examples + [{"id": "new", "class": "other", "document": "x"}]
    assert {e["id"] for e in select_per_class(extra, 4, seed=3)} == before | {"new"}
    same_class = examples + [{"id": "new", "class": "invoice", "document": "y"}]
    after = {e["id"] for e in select_per_class(same_class, 4, seed=3)}
    assert len(after) == len(before) and len(after - before) <= 1 and after - before <= {"new"}


def test_zero_keeps_all_and_missing_class_is_one_class() -> None:
    examples = _examples()
    assert select_per_class(examples, 0, seed=1) == examples
    plain = [{"prompt": f"p{i}"} for i in range(10)]
    assert len(select_per_class(plain, 3, seed=1)) == 3
    with pytest.raises(ValueError, match="val_per_class"):
        select_per_class(examples, -1, seed=0)


def test_train_eval_split_is_stratified_disjoint_and_deterministic() -> None:
    examples = _examples() + [{"id": "lone", "class": "rare", "document": "x"}]
    train, evaluation = train_eval_split(examples, 0.2, seed=5)
    assert Counter(e["class"] for e in evaluation) == {"invoice": 6, "receipt": 2, "po": 1}
    assert "lone" in {e["id"] for e in train}
    assert sorted(e["id"] for e in train + evaluation) == sorted(e["id"] for e in examples)
    assert train_eval_split(examples, 0.2, seed=5) == (train, evaluation)
    assert train_eval_split(examples, 0.2, seed=6)[1] != evaluation
    with pytest.raises(ValueError, match="between 0 and 1"):
        train_eval_split(examples, 1.0, seed=0)


def test_line_record_pairs_are_stratified_by_their_record() -> None:
    pairs = list(enumerate(_examples(), start=1))
    train, evaluation = train_eval_split(pairs, 0.2, seed=5)
    assert Counter(record["class"] for _, record in evaluation) == {"invoice": 6, "receipt": 2, "po": 1}
    assert all(isinstance(line, int) for line, _ in train)
    assert [r for _, r in select_per_class(pairs, 2, seed=1)] == select_per_class(_examples(), 2, seed=1)
