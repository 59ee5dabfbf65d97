"""Prediction tables: writing them atomically, and scoring saved IDP prediction files (`llmops eval-idp`)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from llmops.data.io import scan_records
from llmops.errors import DataError

_MAX_LISTED = 20


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write `rows` as JSONL to `path` atomically (a temp file in the same folder, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _read_records(location: str, problems: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """The records of a JSONL / JSON file; malformed lines go to `problems` (an empty file has no records)."""
    result = scan_records(location, empty_ok=True)
    problems.extend(result.problem_lines())
    return result.records


def _record_id(
    location: str, lineno: int, record: dict[str, Any], seen: dict[str, int], problems: list[str]
) -> str | None:
    """The record's id as text, or None (with a problem) when missing, of a bad type or repeated."""
    value = record.get("id")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        problems.append(f'{location}:{lineno}: missing "id" (a string or integer)')
        return None
    key = str(value)
    if key in seen:
        problems.append(f"{location}:{lineno}: duplicate id {key!r} (first on line {seen[key]})")
        return None
    seen[key] = lineno
    return key


def _prediction_text(location: str, lineno: int, record: dict[str, Any], problems: list[str]) -> str | None:
    """The raw output of a prediction record as text (JSON objects re-serialised)."""
    if "output" not in record:
        problems.append(f'{location}:{lineno}: missing "output" (the raw model text or a JSON object)')
        return None
    output = record["output"]
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, (dict, list)):
        return json.dumps(output, ensure_ascii=False)
    problems.append(f'{location}:{lineno}: "output" must be text or a JSON object, got {type(output).__name__}')
    return None


def _gold_fields(location: str, lineno: int, record: dict[str, Any], problems: list[str]) -> Any | None:
    """The gold JSON of a gold record: `fields`, else `output` (a JSON object or JSON text)."""
    key = "fields" if "fields" in record else "output" if "output" in record else None
    if key is None:
        problems.append(f'{location}:{lineno}: missing "fields" (or "output"): the gold JSON')
        return None
    value = record[key]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            problems.append(f'{location}:{lineno}: "{key}" is text but not JSON ({exc.msg})')
            return None
    if not isinstance(value, (dict, list)):
        problems.append(f'{location}:{lineno}: "{key}" must be a JSON object, got {type(value).__name__}')
        return None
    cls = record.get("class")
    if cls is not None and not isinstance(cls, str):
        problems.append(f'{location}:{lineno}: "class" must be a string, got {type(cls).__name__}')
        return None
    return value


def _by_line(location: str, problems: list[str]) -> list[str]:
    """`LOCATION:LINE: ...` problems in line order (stable within a line)."""
    return sorted(problems, key=lambda p: int(p[len(location) + 1 :].split(":", 1)[0]))


def _raise_problems(problems: list[str]) -> None:
    """Raise one DataError listing every FILE:LINE problem (the first ones in the message)."""
    if not problems:
        return
    shown = problems[:_MAX_LISTED]
    more = f"\n... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    raise DataError(f"{len(problems)} problem(s) in the IDP eval files:\n" + "\n".join(shown) + more, problems)


def _load_pairs(predictions_path: str, gold_path: str) -> tuple[dict[str, str], list[tuple[str, Any, str]]]:
    """Predictions by id and the gold (id, fields, class) list, every malformed line reported at once."""
    from llmops.tasks.base import class_of

    pred_problems: list[str] = []
    predictions: dict[str, str] = {}
    seen: dict[str, int] = {}
    for lineno, record in _read_records(predictions_path, pred_problems):
        key = _record_id(predictions_path, lineno, record, seen, pred_problems)
        text = _prediction_text(predictions_path, lineno, record, pred_problems)
        if key is not None and text is not None:
            predictions[key] = text
    gold_problems: list[str] = []
    gold: list[tuple[str, Any, str]] = []
    seen = {}
    for lineno, record in _read_records(gold_path, gold_problems):
        key = _record_id(gold_path, lineno, record, seen, gold_problems)
        fields = _gold_fields(gold_path, lineno, record, gold_problems)
        if key is not None and fields is not None:
            gold.append((key, fields, class_of(record)))
    problems = _by_line(predictions_path, pred_problems) + _by_line(gold_path, gold_problems)
    _raise_problems(problems)
    if not gold:
        raise DataError(f'{gold_path}: no gold records; expected JSONL lines of {{"id", "fields"}}')
    return predictions, gold


def eval_idp_files(predictions_path: str, gold_path: str, schema_location: str | None = None) -> dict[str, Any]:
    """IDP metrics (overall, per class, per field) of a predictions JSONL against a gold JSONL, joined on id."""
    from llmops.tasks.idp import IDPTask, load_schema

    task = IDPTask(load_schema(schema_location))
    predictions, gold = _load_pairs(predictions_path, gold_path)
    missing = [key for key, _, _ in gold if key not in predictions]
    gold_ids = {key for key, _, _ in gold}
    outputs = [predictions.get(key, "") for key, _, _ in gold]
    references = [fields for _, fields, _ in gold]
    result: dict[str, Any] = task.score(outputs, references, [cls for _, _, cls in gold])
    result["per_field"] = task.per_field(outputs, references)
    result["num_examples"] = len(gold)
    result["missing_predictions"] = len(missing)
    result["missing_ids"] = missing[:_MAX_LISTED]
    result["unmatched_predictions"] = sum(key not in gold_ids for key in predictions)
    return result
