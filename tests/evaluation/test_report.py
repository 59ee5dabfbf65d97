"""eval_idp_files (`llmops eval-idp`) on good and malformed files, and the atomic JSONL writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops.errors import DataError
from llmops.evaluation.report import eval_idp_files, write_jsonl


def _jsonl(path: Path, lines: list[object]) -> str:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return str(path)


def test_good_files_with_missing_prediction(tmp_path: Path) -> None:
    preds = _jsonl(
        tmp_path / "pred.jsonl",
        [
            {"id": "1", "output": 'Answer: ```json\n{"total": "10", "vendor": "Acme"}\n```'},
            {"id": 2, "output": {"total": 5}},
            {"id": "extra", "output": "{}"},
        ],
    )
    gold = _jsonl(
        tmp_path / "gold.jsonl",
        [
            {"id": "1", "fields": {"total": 10, "vendor": "Acme"}, "class": "invoice"},
            {"id": "2", "output": '{"total": 6}', "class": "receipt"},
            "",
            {"id": "3", "fields": {"total": 1, "vendor": "B"}, "class": "invoice"},
        ],
    )
    schema = json.dumps({"type": "object", "properties": {"total": {"type": "number"}}})
    result = eval_idp_files(preds, gold, schema)
    # TP 2 (doc 1), doc 2: FP 1 + FN 1, doc 3 (missing): FN 2.
    assert result["field_f1"] == pytest.approx(2 / (2 + 4 / 2))
    assert result["invoice/field_f1"] == pytest.approx(2 / (2 + 1))
    assert result["receipt/field_f1"] == 0.0
    assert result["json_valid_rate"] == pytest.approx(2 / 3)
    assert result["schema_valid_rate"] == pytest.approx(1 / 3)  # "10" is a string
    assert result["exact_match"] == pytest.approx(1 / 3)
    assert result["missing_predictions"] == 1 and result["missing_ids"] == ["3"]
    assert result["unmatched_predictions"] == 1 and result["num_examples"] == 3
    assert result["per_field"] == pytest.approx({"total": 1 / (1 + 3 / 2), "vendor": 2 / 3})
    json.dumps(result)


def test_malformed_lines_listed_with_file_and_line(tmp_path: Path) -> None:
    preds = _jsonl(
        tmp_path / "pred.jsonl",
        [
            {"id": "1", "output": "{}"},
            '{"id": "2", "output": ',
            {"id": "1", "output": "{}"},
            {"output": "{}"},
            {"id": "4", "text": "{}"},
            [1, 2],
        ],
    )
    gold = _jsonl(
        tmp_path / "gold.jsonl",
        [
            {"id": "1", "fields": {"a": 1}},
            {"id": "2", "document": "D"},
            {"id": "3", "output": "not json"},
            {"id": "4", "fields": 7},
            {"id": "5", "fields": {"a": 1}, "class": 3},
        ],
    )
    with pytest.raises(DataError) as info:
        eval_idp_files(preds, gold)
    problems = info.value.problems
    assert problems == [
        f"{preds}:2: not valid JSON: Expecting value at column 23",
        f"{preds}:3: duplicate id '1' (first on line 1)",
        f'{preds}:4: missing "id" (a string or integer)',
        f'{preds}:5: missing "output" (the raw model text or a JSON object)',
        f"{preds}:6: a record must be a JSON object, got an array",
        f'{gold}:2: missing "fields" (or "output"): the gold JSON',
        f'{gold}:3: "output" is text but not JSON (Expecting value)',
        f'{gold}:4: "fields" must be a JSON object, got int',
        f'{gold}:5: "class" must be a string, got int',
    ]
    assert str(info.value).startswith("9 problem(s) in the IDP eval files:\n")
    assert problems[0] in str(info.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    gold = _jsonl(tmp_path / "gold.jsonl", [{"id": "1", "fields": {"a": 1}}])
    with pytest.raises(DataError, match=r"nope\.jsonl: not found$"):
        eval_idp_files(str(tmp_path / "nope.jsonl"), gold)
    preds = _jsonl(tmp_path / "pred.jsonl", [{"id": "1", "output": "{}"}])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match=r"empty\.jsonl: no gold records"):
        eval_idp_files(preds, str(empty))
    assert eval_idp_files(str(empty), gold)["missing_predictions"] == 1  # no predictions: every one missing
    with pytest.raises(DataError, match="invalid JSON Schema"):
        eval_idp_files(preds, gold, '{"type": 5}')


def test_write_jsonl_atomic(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "preds.jsonl"
    write_jsonl(target, [{"a": "é"}, {"b": Path("x")}])
    assert [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()] == [{"a": "é"}, {"b": "x"}]
    assert [p.name for p in target.parent.iterdir()] == ["preds.jsonl"]
