"""Preference pairs for the DPO quickstart: `chosen` is the gold answer, `rejected` a plausible wrong one.

IDP: one field with a wrong but well-formed value, a missing field, or broken JSON. CodeGen: the canonical body with
a changed constant or operator (it fails the task's tests), or a body that does not parse.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from llmops.quickstart.idp_data import _write_jsonl

_SWAPS = {
    " + ": " - ",
    " - ": " + ",
    " * ": " + ",
    " % ": " // ",
    " > ": " < ",
    "max(": "min(",
    "min(": "max(",
    "[:": "[1:",
    ".count(": ".index(",
    " in s": " not in s",
    ".replace(": ".split(",
    "sum(": "len(",
}


def _compact(fields: dict[str, Any]) -> str:
    return json.dumps(fields, ensure_ascii=False)  # as IDPTask.format_answer writes the SFT answers


def _wrong_value(value: str, rng: random.Random) -> str:
    """A plausible wrong value of the same shape: a digit changed, else letters shuffled."""
    digits = [i for i, ch in enumerate(value) if ch.isdigit()]
    if digits:
        i = rng.choice(digits)
        return value[:i] + str((int(value[i]) + rng.randint(1, 9)) % 10) + value[i + 1 :]
    letters = list(value)
    rng.shuffle(letters)
    wrong = "".join(letters)
    return wrong if wrong != value else value + "s"


def idp_rejected(fields: dict[str, Any], rng: random.Random) -> str:
    """A wrong answer for IDP gold `fields`: a wrong value, a missing field or broken JSON."""
    kind = rng.random()
    keys = [k for k in fields if k != "document_type"]
    if kind < 0.6:
        key = rng.choice(keys)
        return _compact({**fields, key: _wrong_value(str(fields[key]), rng)})
    if kind < 0.8:
        drop = rng.choice(keys)
        return _compact({k: v for k, v in fields.items() if k != drop})
    text = _compact(fields)
    return text[: rng.randint(len(text) // 3, len(text) - 2)]


def codegen_rejected(solution: str, rng: random.Random) -> str:
    """A failing body for a canonical `solution`: an operator swapped, a constant changed, or a syntax error."""
    swaps = [(a, b) for a, b in _SWAPS.items() if a in solution]
    numbers = list(re.finditer(r"\d+", solution))
    kind = rng.random()
    if swaps and (kind < 0.45 or not numbers):
        a, b = rng.choice(swaps)
        return solution.replace(a, b, 1)
    if numbers and kind < 0.9:
        m = rng.choice(numbers)
        return solution[: m.start()] + str(int(m.group()) + rng.randint(1, 9)) + solution[m.end() :]
    return solution.replace("return ", "return (", 1)


def write_idp_pairs(train: Path, out: Path, seed: int) -> Path:
    """Pairs for every IDP training record ({"document","fields"}) into `out`."""
    rng = random.Random(seed)
    pairs = []
    for line in train.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        pairs.append(
            {
                "prompt": record["document"],
                "chosen": _compact(record["fields"]),
                "rejected": idp_rejected(record["fields"], rng),
                "class": record["class"],
            }
        )
    _write_jsonl(out, pairs)
    return out


def write_codegen_pairs(train: Path, out: Path, seed: int) -> Path:
    """Pairs for every CodeGen training record ({"input","output"}) into `out`."""
    rng = random.Random(seed)
    pairs = []
    for line in train.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        rejected = codegen_rejected(record["output"], rng)
        if rejected != record["output"]:
            pairs.append(
                {"prompt": record["input"], "chosen": record["output"], "rejected": rejected, "class": record["class"]}
            )
    _write_jsonl(out, pairs)
    return out
