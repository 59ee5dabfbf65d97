"""IDP: documents in, JSON out. Prompt format, robust JSON extraction, Donut field-level F1 and validity rates.

Field-level F1 (Donut, Kim et al. 2022): each JSON value is normalised, then flattened to a multiset of
(dotted key path, leaf) pairs, and predicted pairs are matched exactly against gold pairs, micro-averaged over the
dataset: F1 = TP / (TP + (FP + FN) / 2).

Normalisation (the same for predictions and gold):
- empty values are dropped: None, "", [] and {} (also once their own content has been dropped);
- strings are stripped; every leaf is compared by its text, so 12.5 and "12.5" match, an integral number is
  written without a fraction (12, 12.0 and "12" match, "12.0" does not), booleans are "true"/"false";
- list items are flattened under their parent's path without an index ({"items": [{"sku": "A"}]} gives
  ("items.sku", "A")), so items match as a multiset whatever their order; duplicates count as often as they occur.
  A top-level list's items sit under the empty path "" (reported as "(root)" per field).
Exact match compares the whole normalised documents (list order kept) and needs parseable output.
Per-field F1 groups pairs by their top-level key (keys found only in predictions are left out there; they still
count as false positives overall).

Extraction from model output (`json_answers`): the JSON in the first ```-fenced block that holds some, else in the
whole text: the first top-level balanced {...} that parses (brackets matched outside strings, surrounding text
ignored), else the first such [...]. An unclosed object (output cut at max_new_tokens) yields None rather than an
inner fragment.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from llmops.data.io import read_text
from llmops.errors import DataError
from llmops.tasks.base import DEFAULT_CLASS, per_class
from llmops.tasks.json_answers import extract_json
from llmops.tasks.schema_outline import schema_outline

__all__ = ["IDPTask", "extract_json", "flatten", "load_schema", "match", "normalize", "schema_outline"]

INSTRUCTION = "Extract the fields from the document as JSON matching the schema. Answer with JSON only."
METRIC_KEYS = (
    "field_f1",
    "field_precision",
    "field_recall",
    "exact_match",
    "json_valid_rate",
    "schema_valid_rate",
)
ROOT_FIELD = "(root)"


# --- normalisation and field matching -------------------------------------------------------------------------


def _leaf_text(value: Any) -> str:
    """The comparison text of a leaf value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    return str(value).strip()


def normalize(value: Any) -> Any:
    """`value` with empty values dropped and leaves replaced by their comparison text; None when empty."""
    if isinstance(value, dict):
        items = {str(k): normalize(v) for k, v in value.items()}
        kept = {k: v for k, v in items.items() if v is not None}
        return kept or None
    if isinstance(value, list):
        kept_items = [v for v in (normalize(item) for item in value) if v is not None]
        return kept_items or None
    if value is None:
        return None
    text = _leaf_text(value)
    return text or None


def flatten(value: Any) -> Counter[tuple[str, str]]:
    """The multiset of (dotted key path, leaf text) pairs of a JSON value, list indices dropped."""
    pairs: Counter[tuple[str, str]] = Counter()

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{path}.{key}" if path else key)
        elif isinstance(node, list):
            for child in node:
                walk(child, path)
        else:
            pairs[(path, node)] += 1

    normalized = normalize(value)
    if normalized is not None:
        walk(normalized, "")
    return pairs


@dataclass
class Counts:
    """Matched (tp), spurious (fp) and missed (fn) field pairs."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        """Accumulate another count in place."""
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @property
    def f1(self) -> float:
        """TP / (TP + (FP + FN) / 2); 1.0 when there was nothing to find and nothing was predicted."""
        total = self.tp + (self.fp + self.fn) / 2
        return self.tp / total if total else 1.0

    @property
    def precision(self) -> float:
        """TP / (TP + FP); 1.0 when nothing was predicted and nothing was expected, else 0.0 without predictions."""
        predicted = self.tp + self.fp
        return self.tp / predicted if predicted else float(self.fn == 0)

    @property
    def recall(self) -> float:
        """TP / (TP + FN); 1.0 when there was nothing to find."""
        expected = self.tp + self.fn
        return self.tp / expected if expected else float(self.fp == 0)


def match(predicted: Counter[tuple[str, str]], gold: Counter[tuple[str, str]]) -> Counts:
    """Exact multiset matching of flattened pairs."""
    tp = sum((predicted & gold).values())
    return Counts(tp=tp, fp=sum(predicted.values()) - tp, fn=sum(gold.values()) - tp)


def _by_field(pairs: Counter[tuple[str, str]]) -> dict[str, Counter[tuple[str, str]]]:
    """Pairs grouped by their top-level key."""
    groups: dict[str, Counter[tuple[str, str]]] = {}
    for (path, leaf), count in pairs.items():
        field = path.split(".", 1)[0] or ROOT_FIELD
        groups.setdefault(field, Counter())[(path, leaf)] += count
    return groups


# --- the task -------------------------------------------------------------------------------------------------


def _schema_validator(schema: dict[str, Any], name: str) -> Any:
    """A jsonschema validator for `schema` (the class its $schema names, default Draft 2020-12)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(schema, dict):
        raise DataError(f"{name}: a JSON Schema must be a JSON object, got {type(schema).__name__}")
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(top level)"
        raise DataError(f"{name}: invalid JSON Schema at {where}: {exc.message}") from None
    return cls(schema)


def load_schema(location: str | None) -> dict[str, Any] | None:
    """A JSON Schema from a path/URI (local, s3://, http(s)://) or inline JSON text, checked against its draft."""
    if location is None or not location.strip():
        return None
    inline = location.lstrip().startswith("{")
    name = "schema (inline JSON)" if inline else location
    text = location if inline else read_text(location)
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{name}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    _schema_validator(schema, name)
    return schema


@dataclass
class _Judged:
    """One prediction judged against its reference."""

    parsed: Any
    json_valid: bool
    schema_valid: bool
    exact: bool
    counts: Counts
    predicted_pairs: Counter[tuple[str, str]]
    gold_pairs: Counter[tuple[str, str]]


class IDPTask:
    """Intelligent document processing: extract schema-conforming JSON from a document."""

    name = "idp"
    flow_type = "IDP"
    answers_json = True  # answers are JSON: evaluation decodes them under the schema (eval.constrained)
    input_key = "document"  # the run config's sample input (predicted after training)
    judged_by_tests = False

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        self.schema = schema
        self._validator = _schema_validator(schema, "schema") if schema is not None else None

    @classmethod
    def from_config(cls, cfg: Any) -> IDPTask:
        """The task of a run: its schema (`schema:`, a path, URI or inline JSON) when it has one."""
        return cls(load_schema(cfg.schema) if cfg.schema else None)

    def eval_examples(self, records: list, source: str = "data") -> list[dict[str, Any]]:
        """Gold records as {"id", "prompt", "reference", "class"}: what evaluation and the judges take."""
        from llmops.data.formats import to_idp_eval_examples

        return to_idp_eval_examples(records, self.build_prompt, source=source)

    @classmethod
    def reward_kwargs(cls, grpo: Any) -> dict[str, Any]:
        """The keyword arguments of `rewards` a run's `grpo` settings give."""
        return {"schema_weight": grpo.schema_reward}

    def sample_answer(self, source: str, answer: str) -> str:
        """The answer to a run's sample input, as a user reads it."""
        return answer

    def build_prompt(self, document: str) -> str:
        """The user message for `document` (fixed format shared with training data): the instruction, the fields
        to extract as a short outline of the schema (the schema itself constrains decoding; written out in full it
        cost ~540 tokens of every prompt of the quickstart's nested schema, the outline ~70) and the document."""
        lines = [INSTRUCTION]
        if self.schema is not None:
            lines.append("Fields: " + schema_outline(self.schema))
        return "\n".join(lines) + "\nDocument:\n" + document

    def format_answer(self, fields: Any) -> str:
        """The assistant answer for gold `fields` (the training completion)."""
        return json.dumps(fields, ensure_ascii=False)

    def parse(self, text: str) -> Any | None:
        """The JSON object (or array) in raw model output, or None when nothing parses."""
        return extract_json(text)

    def build_messages(self, example: dict[str, Any]) -> list[dict[str, str]]:
        """The example's prompt messages, built from its `document` when it has no `prompt`."""
        prompt = example.get("prompt")
        if isinstance(prompt, list):
            return prompt
        content = prompt if isinstance(prompt, str) else self.build_prompt(example["document"])
        return [{"role": "user", "content": content}]

    def reference(self, example: dict[str, Any]) -> Any:
        """The gold JSON: `reference`, else `fields`, else `output` (parsed when it is JSON text)."""
        for key in ("reference", "fields", "output"):
            if key in example:
                value = example[key]
                return extract_json(value) if isinstance(value, str) else value
        raise KeyError("an IDP eval example needs `reference`, `fields` or `output`")

    def _judge(self, prediction: str, reference: Any) -> _Judged:
        """Parse `prediction` and compare it with `reference`."""
        parsed = self.parse(prediction)
        valid = parsed is not None
        schema_valid = valid and (self._validator is None or self._validator.is_valid(parsed))
        predicted_pairs, gold_pairs = flatten(parsed), flatten(reference)
        exact = valid and normalize(parsed) == normalize(reference)
        counts = match(predicted_pairs, gold_pairs)
        return _Judged(parsed, valid, schema_valid, exact, counts, predicted_pairs, gold_pairs)

    def example_scores(self, prediction: str, reference: Any) -> dict[str, Any]:
        """Per-example columns: parsed JSON, field F1, exact match, JSON and schema validity."""
        judged = self._judge(prediction, reference)
        return {
            "parsed": judged.parsed,
            "field_f1": judged.counts.f1,
            "exact_match": judged.exact,
            "json_valid": judged.json_valid,
            "schema_valid": judged.schema_valid,
        }

    def rewards(self, answers: list[str], references: list[Any], schema_weight: float = 0.1) -> list[float]:
        """The training reward of each answer (GRPO, mined pairs): 0 when no JSON parses, else
        `(1 - schema_weight) * field F1 + schema_weight * [valid against the schema]` (with no schema, any JSON is
        valid), so 1.0 is exactly the gold fields in schema-valid JSON."""
        if not 0.0 <= schema_weight <= 1.0:
            raise ValueError(f"schema_weight must be in [0, 1], got {schema_weight}")
        out = []
        for answer, reference in zip(answers, references, strict=True):
            judged = self._judge(answer, reference)
            if not judged.json_valid:
                out.append(0.0)
                continue
            out.append((1.0 - schema_weight) * judged.counts.f1 + schema_weight * float(judged.schema_valid))
        return out

    def score(
        self, predictions: list[str], references: list[Any], classes: list[str] | None = None
    ) -> dict[str, float]:
        """Field F1/precision/recall, exact match and validity rates, overall and as `<class>/<key>`."""
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
        classes = classes if classes is not None else [DEFAULT_CLASS] * len(predictions)
        judged = [self._judge(p, r) for p, r in zip(predictions, references)]
        metrics = _aggregate(judged)
        for cls, indices in per_class(classes).items():
            subset = _aggregate([judged[i] for i in indices])
            metrics.update({f"{cls}/{key}": value for key, value in subset.items()})
        return metrics

    def field_report(self, predictions: list[str], references: list[Any]) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and gold count ("support") per dotted field path, nested ones included
        (`seller.name`, `line_items.amount`), micro-averaged over the dataset; paths only predictions have count
        as false positives of their own path."""
        totals: dict[str, Counts] = {}
        for prediction, reference in zip(predictions, references):
            judged = self._judge(prediction, reference)
            for path in {p for p, _ in judged.predicted_pairs} | {p for p, _ in judged.gold_pairs}:
                pred = Counter({k: v for k, v in judged.predicted_pairs.items() if k[0] == path})
                gold = Counter({k: v for k, v in judged.gold_pairs.items() if k[0] == path})
                totals.setdefault(path or ROOT_FIELD, Counts()).add(match(pred, gold))
        return {
            path: {"precision": c.precision, "recall": c.recall, "f1": c.f1, "support": float(c.tp + c.fn)}
            for path, c in sorted(totals.items())
        }

    def errors(
        self, predictions: list[str], references: list[Any], ids: list[str], fields: list[str], per_field: int = 5
    ) -> list[dict[str, Any]]:
        """Up to `per_field` wrong extractions of each of `fields` (dotted paths): document id, field, expected and
        predicted values (missing on one side: null)."""
        rows: list[dict[str, Any]] = []
        for field in fields:
            found = 0
            for ident, prediction, reference in zip(ids, predictions, references):
                judged = self._judge(prediction, reference)
                gold = sorted(v for (p, v), n in judged.gold_pairs.items() if p == field for _ in range(n))
                pred = sorted(v for (p, v), n in judged.predicted_pairs.items() if p == field for _ in range(n))
                if gold == pred:
                    continue
                rows.append(
                    {"document": ident, "field": field, "expected": _one_or_list(gold), "predicted": _one_or_list(pred)}
                )
                found += 1
                if found >= per_field:
                    break
        return rows

    def per_field(self, predictions: list[str], references: list[Any]) -> dict[str, float]:
        """Field F1 per top-level gold key, micro-averaged over the dataset (keys only the model invents left out)."""
        totals: dict[str, Counts] = {}
        gold_fields: set[str] = set()
        for prediction, reference in zip(predictions, references):
            judged = self._judge(prediction, reference)
            predicted, gold = _by_field(judged.predicted_pairs), _by_field(judged.gold_pairs)
            gold_fields.update(gold)
            for field in set(predicted) | set(gold):
                counts = match(predicted.get(field, Counter()), gold.get(field, Counter()))
                totals.setdefault(field, Counts()).add(counts)
        return {field: totals[field].f1 for field in sorted(gold_fields)}


def _one_or_list(values: list[str]) -> Any:
    """None, the one value, or the values of a field that occurs several times (line items)."""
    return None if not values else values[0] if len(values) == 1 else values


def _aggregate(judged: list[_Judged]) -> dict[str, float]:
    """The dataset metrics of a list of judged examples (micro-averaged field counts)."""
    total = Counts()
    for item in judged:
        total.add(item.counts)
    n = len(judged)
    return {
        "field_f1": total.f1,
        "field_precision": total.precision,
        "field_recall": total.recall,
        "exact_match": sum(item.exact for item in judged) / n if n else 0.0,
        "json_valid_rate": sum(item.json_valid for item in judged) / n if n else 0.0,
        "schema_valid_rate": sum(item.schema_valid for item in judged) / n if n else 0.0,
    }
