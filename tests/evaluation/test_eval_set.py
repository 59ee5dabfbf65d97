"""The evaluation step on a tiny model: limits, scoring by the task, and the predictions table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmops.config import EvalSettings
from llmops.errors import DataError
from llmops.evaluation.eval_set import evaluate
from llmops.evaluation.generate import generate
from llmops.tasks.idp import IDPTask

SCHEMA = {"type": "object", "properties": {"total": {"type": "string"}}}


def _examples(task: IDPTask) -> list[dict[str, Any]]:
    docs = ["Total: 1,234.50 EUR", "Invoice No: INV-20391\nVendor: Acme", "Date: 2024-03-15", "Total: 9"]
    classes = ["invoice", "receipt", "invoice", "receipt"]
    return [
        {
            "id": f"ex{i}",
            "prompt": [{"role": "user", "content": task.build_prompt(doc)}],
            "reference": {"total": str(i), "vendor": "Acme"},
            "class": cls,
        }
        for i, (doc, cls) in enumerate(zip(docs, classes))
    ]


def test_evaluate_scores_and_writes_predictions(tiny: tuple[Any, Any], tmp_path: Path) -> None:
    model, tokenizer = tiny
    task = IDPTask(SCHEMA)
    examples = _examples(task)
    settings = EvalSettings(batch_size=2, max_new_tokens=6, max_examples=3, constrained=False)  # the raw model
    out = tmp_path / "eval" / "predictions.jsonl"
    report = evaluate(model, tokenizer, task, examples, settings, out)

    expected = generate(model, tokenizer, [ex["prompt"] for ex in examples[:3]], 1, 6)
    references = [ex["reference"] for ex in examples[:3]]
    assert [row["output"] for row in report.rows] == expected
    overall = {k: v for k, v in report.metrics.items() if not k.startswith("field/")}
    assert overall == {
        **task.score(expected, references, ["invoice", "receipt", "invoice"]),
        "constrained_decoding": 0.0,
    }
    assert report.metrics["field/total/f1"] == task.field_report(expected, references)["total"]["f1"]
    assert {"field_f1", "invoice/field_f1", "receipt/schema_valid_rate"} <= set(report.metrics)
    assert set(report.per_field) == {"total", "vendor"}

    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == ["ex0", "ex1", "ex2"]
    assert rows[1]["class"] == "receipt" and rows[1]["gold"] == {"total": "1", "vendor": "Acme"}
    assert rows[0]["prompt"].endswith("Document:\nTotal: 1,234.50 EUR")
    assert set(rows[0]) == {
        "id",
        "class",
        "prompt",
        "output",
        "gold",
        "parsed",
        "field_f1",
        "exact_match",
        "json_valid",
        "schema_valid",
    }
    assert rows == json.loads(json.dumps(report.rows))


def test_scoring_path_with_a_model_that_answers(tiny: tuple[Any, Any], monkeypatch: Any) -> None:
    """With known outputs the report's metrics are the hand-computed ones."""
    import llmops.evaluation.eval_set as runner

    task = IDPTask(None)
    examples = _examples(task)[:2]
    answers = ['{"total": "0", "vendor": "Acme"}', 'noise {"total": "7"}']
    monkeypatch.setattr(runner, "generate", lambda *args, **kwargs: answers)
    report = evaluate(*tiny, task, examples, EvalSettings(max_examples=0), None)
    assert report.metrics["field_f1"] == 2 / (2 + 3 / 2)  # TP 2; FP 1 ("7"), FN 2 ("1", "Acme")
    assert report.metrics["invoice/exact_match"] == 1.0 and report.metrics["receipt/field_f1"] == 0.0
    assert report.per_field == {"total": 0.5, "vendor": 2 / 3}
    assert [row["json_valid"] for row in report.rows] == [True, True]
    assert report.rows[1]["parsed"] == {"total": "7"}


def test_empty_eval_set_is_a_data_error(tiny: tuple[Any, Any]) -> None:
    with pytest.raises(DataError, match="evaluation set is empty"):
        evaluate(*tiny, IDPTask(None), [], EvalSettings(), None)
