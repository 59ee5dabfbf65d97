"""Deterministic, class-stratified selection: `val_per_class` and train/eval splits."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Any, TypeVar

from llmops.data.formats import record_class

T = TypeVar("T")


def _payload(example: Any) -> Any:
    """The record itself: read_records' (line, record) pairs are accepted as well as plain records."""
    if isinstance(example, tuple) and len(example) == 2 and isinstance(example[1], dict):
        return example[1]
    return example


def _rank(example: Any, seed: int) -> str:
    """A seeded pseudo-random rank from the example's content, so adding examples never reshuffles the others."""
    content = json.dumps(_payload(example), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(f"{seed}\0{content}".encode()).hexdigest()


def _by_class(examples: list[Any]) -> dict[str, list[int]]:
    """Example indices grouped by class, in first-seen class order."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, example in enumerate(examples):
        record = _payload(example)
        groups[record_class(record) if isinstance(record, dict) else "all"].append(index)
    return groups


def _ranked(examples: list[Any], indices: list[int], seed: int) -> list[int]:
    return sorted(indices, key=lambda index: (_rank(examples[index], seed), index))


def select_per_class(examples: list[T], n: int, seed: int) -> list[T]:
    """At most `n` examples (or (line, record) pairs) per class, chosen by a seeded hash, in input order; 0 = all."""
    if n < 0:
        raise ValueError(f"val_per_class must be 0 (all) or a positive number, got {n}")
    examples = list(examples)
    if n == 0:
        return examples
    keep: set[int] = set()
    for indices in _by_class(examples).values():
        keep.update(_ranked(examples, indices, seed)[:n])
    return [example for index, example in enumerate(examples) if index in keep]


def train_eval_split(examples: list[T], fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """(train, eval): about `fraction` of each class held out, picked by a seeded hash; original order kept."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the evaluation fraction must be between 0 and 1, got {fraction}")
    examples = list(examples)
    held: set[int] = set()
    for indices in _by_class(examples).values():
        if len(indices) < 2:
            continue  # a lone example is more useful for training than as a one-item evaluation
        count = min(len(indices) - 1, max(1, round(len(indices) * fraction)))
        held.update(_ranked(examples, indices, seed)[:count])
    train = [example for index, example in enumerate(examples) if index not in held]
    evaluation = [example for index, example in enumerate(examples) if index in held]
    return train, evaluation
