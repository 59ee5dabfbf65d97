"""IDP task: prompt format, JSON extraction and Donut field-level metrics against hand-computed values."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmops.errors import DataError
from llmops.tasks.idp import IDPTask, flatten, load_schema, normalize

SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "number"}, "qty": {"type": "integer"}},
    "required": ["total"],
}

# Hand-computed: gold pairs (a,x) (b,1) (b,1) (b,2) (c.d,y) = 5; "c.e" is empty and dropped.
GOLD_1 = {"a": "x", "b": ["1", "1", "2"], "c": {"d": "y", "e": ""}}
# Pred pairs (a,x) (b,1) (b,2) (b,3) (c.d,z) (zz,q) = 6; "f" is null and dropped. TP 3, FP 3, FN 2.
PRED_1 = 'Here you go:\n```json\n{"a": " x ", "b": ["1", "2", "3"], "c": {"d": "z"}, "f": null, "zz": "q"}\n```'
GOLD_2 = {"total": 12.5, "qty": 2}
PRED_2 = '{"total": "12.5", "qty": 2.0}'  # leaves compare as text: TP 2, exact match


def test_build_prompt_fixed_format() -> None:
    prompt = IDPTask({"type": "object", "properties": {"n": {"type": "string"}}}).build_prompt("Doc é")
    assert prompt == (
        "Extract the fields from the document as JSON matching the schema. Answer with JSON only.\n"
        "Fields: n\n"
        "Document:\nDoc é"
    )
    assert IDPTask(None).build_prompt("D") == (
        "Extract the fields from the document as JSON matching the schema. Answer with JSON only.\nDocument:\nD"
    )
    assert IDPTask(None).format_answer({"n": "é"}) == '{"n": "é"}'


def test_schema_outline_names_nested_fields_choices_and_formats() -> None:
    from llmops.tasks.idp import schema_outline

    party = {"type": "object", "properties": {"name": {"type": "string"}, "vat": {"type": ["string", "null"]}}}
    schema = {
        "type": "object",
        "$defs": {"party": party},
        "properties": {
            "kind": {"enum": ["invoice", "receipt", None]},
            "day": {"type": ["string", "null"], "format": "date"},
            "seller": {"$ref": "#/$defs/party"},
            "buyer": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/party"}]},
            "lines": {
                "type": "array",
                "items": {"type": "object", "properties": {"sku": {}, "qty": {"type": "number"}}},
            },
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    assert schema_outline(schema) == (
        "kind (invoice|receipt), day (date), seller {name, vat}, buyer {name, vat}, lines [{sku, qty}], tags [...]"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('Sure! The JSON: {"a": "}"} hope it helps {', {"a": "}"}),
        ('Use {curly} braces. {"a": 1} trailing garbage }}', {"a": 1}),
        ('Fields {like this}:\n```json\n{"a": 2}\n```\nDone {"a": 3}', {"a": 2}),
        ('{"a": "say \\"hi\\" }"}', {"a": 'say "hi" }'}),
        ('{"a": "line\nbreak"}', {"a": "line\nbreak"}),
        ('see [note] and [1, 2] then {"a": 1}', {"a": 1}),
        ("[1, 2]", [1, 2]),
        ('{"a": 1] {"b": 2}', {"b": 2}),
        ('{"a": {"b": 1}, "c": ', None),
        ("no json here", None),
        ("", None),
        ("```json\n```", None),
    ],
)
def test_parse_edge_cases(text: str, expected: object) -> None:
    assert IDPTask(None).parse(text) == expected


def test_normalize_and_flatten() -> None:
    assert normalize({"a": [], "b": {}, "c": None, "d": " ", "e": {"f": ""}}) is None
    assert normalize({"n": 12.0, "m": True, "s": " t "}) == {"n": "12", "m": "true", "s": "t"}
    pairs = flatten({"items": [{"sku": "A"}, {"sku": "A"}, {"sku": "B", "q": [1, 2]}]})
    assert pairs == {("items.sku", "A"): 2, ("items.sku", "B"): 1, ("items.q", "1"): 1, ("items.q", "2"): 1}
    assert flatten([{"a": 1}, "x"]) == {("a", "1"): 1, ("", "x"): 1}


def test_score_hand_computed_with_classes() -> None:
    task = IDPTask(None)
    m = task.score([PRED_1, PRED_2], [GOLD_1, GOLD_2], ["inv", "rec"])
    assert m["field_precision"] == pytest.approx(5 / 8)
    assert m["field_recall"] == pytest.approx(5 / 7)
    assert m["field_f1"] == pytest.approx(5 / (5 + (3 + 2) / 2))
    assert m["exact_match"] == 0.5 and m["json_valid_rate"] == 1.0 and m["schema_valid_rate"] == 1.0
    assert m["inv/field_f1"] == pytest.approx(3 / (3 + 2.5))
    assert m["inv/field_precision"] == pytest.approx(0.5) and m["inv/field_recall"] == pytest.approx(0.6)
    assert m["rec/field_f1"] == 1.0 and m["rec/exact_match"] == 1.0 and m["inv/exact_match"] == 0.0
    assert set(m) == {
        f"{p}{k}"
        for p in ("", "inv/", "rec/")
        for k in ("field_f1", "field_precision", "field_recall", "exact_match", "json_valid_rate", "schema_valid_rate")
    }


def test_score_unparseable_empty_and_duplicates() -> None:
    task = IDPTask(None)
    m = task.score(["I cannot help", '{"k": ["a", "a"]}'], [{"x": "1", "y": "2"}, {"k": ["a"]}], ["c", "c"])
    # doc 1: FN 2; doc 2: the duplicate "a" is one TP and one FP.
    assert m["field_f1"] == pytest.approx(1 / (1 + 3 / 2))
    assert m["json_valid_rate"] == 0.5 and m["exact_match"] == 0.0
    empty = task.score(["{}"], [{"a": "", "b": []}])
    assert empty["field_f1"] == 1.0 and empty["exact_match"] == 1.0 and empty["default/field_f1"] == 1.0
    nothing = task.score(["{}"], [{"a": "1"}])
    assert nothing["field_precision"] == 0.0 and nothing["field_recall"] == 0.0 and nothing["field_f1"] == 0.0


def test_list_order_counts_for_exact_match_not_f1() -> None:
    gold = {"items": [{"sku": "A", "n": 1}, {"sku": "B", "n": 2}]}
    pred = json.dumps({"items": [{"sku": "B", "n": 2}, {"sku": "A", "n": 1}]})
    m = IDPTask(None).score([pred], [gold])
    assert m["field_f1"] == 1.0 and m["exact_match"] == 0.0


def test_schema_valid_rate_and_per_field() -> None:
    task = IDPTask(SCHEMA)
    m = task.score([PRED_2, '{"total": 3}', "oops"], [GOLD_2, {"total": 3}, {"total": 1}])
    assert m["json_valid_rate"] == pytest.approx(2 / 3)
    assert m["schema_valid_rate"] == pytest.approx(1 / 3)  # "12.5" is a string, the schema wants a number
    per_field = IDPTask(None).per_field([PRED_1, PRED_2], [GOLD_1, GOLD_2])
    assert per_field == pytest.approx({"a": 1.0, "b": 2 / 3, "c": 0.0, "qty": 1.0, "total": 1.0})


def test_example_scores() -> None:
    row = IDPTask(SCHEMA).example_scores(PRED_2, GOLD_2)
    assert row == {
        "parsed": {"total": "12.5", "qty": 2.0},
        "field_f1": 1.0,
        "exact_match": True,
        "json_valid": True,
        "schema_valid": False,
    }


def test_reference_and_messages_forms() -> None:
    task = IDPTask(None)
    assert task.reference({"output": '{"a": 1}'}) == {"a": 1}
    assert task.reference({"fields": {"a": 2}}) == {"a": 2}
    assert task.reference({"reference": {"a": 3}, "fields": {"a": 2}}) == {"a": 3}
    msgs = task.build_messages({"document": "D"})
    assert msgs == [{"role": "user", "content": task.build_prompt("D")}]
    given = [{"role": "user", "content": "hi"}]
    assert task.build_messages({"prompt": given}) is given


def test_load_schema_sources_and_errors(tmp_path: Path) -> None:
    assert load_schema(None) is None
    assert load_schema('{"type": "object"}') == {"type": "object"}
    good = tmp_path / "s.json"
    good.write_text(json.dumps(SCHEMA))
    assert load_schema(str(good)) == SCHEMA
    assert load_schema(good.as_uri()) == SCHEMA
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{\n  "type": "object",,\n}')
    with pytest.raises(DataError, match=rf"^{re.escape(str(bad_json))}:2:20: invalid JSON"):
        load_schema(str(bad_json))
    bad_schema = tmp_path / "bad_schema.json"
    bad_schema.write_text('{"type": "object", "properties": {"n": {"type": "strin"}}}')
    with pytest.raises(DataError, match=rf"^{re.escape(str(bad_schema))}: invalid JSON Schema at properties/n/type"):
        load_schema(str(bad_schema))
    draft7 = tmp_path / "d7.json"
    draft7.write_text('{"$schema": "http://json-schema.org/draft-07/schema#", "required": "total"}')
    with pytest.raises(DataError, match="invalid JSON Schema at required"):
        load_schema(str(draft7))
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path))}/missing.json: not found$"):
        load_schema(str(tmp_path / "missing.json"))
    with pytest.raises(DataError, match=r"^schema \(inline JSON\):1:\d+: invalid JSON"):
        load_schema('{"type": ')
    with pytest.raises(DataError, match="must be a JSON object"):
        IDPTask([1])  # type: ignore[arg-type]
