"""`narrow_schema` bounds every value and keeps only instances of the original schema; `min_json` / `max_json_bytes`
measure the shortest and longest answers."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.serving.strategies import instances, schemas

from llmops.evaluation.schema_bounds import INT_BOUND, MAX_ITEMS, MAX_PROPERTIES, bound_pattern, narrow_schema
from llmops.evaluation.schema_size import max_json_bytes, min_json

RECEIPT = {
    "type": "object",
    "required": ["merchant", "total", "paid", "currency", "items"],
    "properties": {
        "merchant": {"type": "string", "maxLength": 40},
        "total": {"type": "number"},
        "paid": {"type": "boolean"},
        "currency": {"enum": ["USD", "EUR", "GBP"]},
        "items": {"type": "integer"},
    },
}


def _valid(instance: Any, schema: Any) -> bool:
    return jsonschema.validators.validator_for(schema)(schema).is_valid(instance)


def test_numbers_get_a_bounded_range_inside_the_given_one() -> None:
    assert narrow_schema({"type": "integer"}) == {"type": "integer", "minimum": -INT_BOUND, "maximum": INT_BOUND}
    number = narrow_schema({"type": "number", "exclusiveMinimum": 0})
    assert number == {"type": "number", "exclusiveMinimum": 0, "maximum": INT_BOUND}
    rounded = narrow_schema({"type": "integer", "exclusiveMinimum": 0.5, "exclusiveMaximum": 10})
    assert (rounded["minimum"], rounded["maximum"]) == (1, 9)
    assert "exclusiveMinimum" not in rounded and "exclusiveMaximum" not in rounded
    big = narrow_schema({"type": "integer", "minimum": 10**15})
    assert big["minimum"] == 10**15 and big["maximum"] == 10**15 + INT_BOUND
    negative = narrow_schema({"type": "number", "maximum": -5})
    assert negative["minimum"] == -5 - INT_BOUND
    draft4 = narrow_schema({"type": "integer", "minimum": 3, "exclusiveMinimum": True})
    assert draft4["minimum"] == 4
    both = narrow_schema({"type": ["integer", "number", "null"]})
    assert both["type"] == ["number", "null"] and both["maximum"] == INT_BOUND
    multiples = narrow_schema({"type": "integer", "multipleOf": 5, "minimum": 3})
    assert multiples["enum"][:3] == [5, 10, 15] and len(multiples["enum"]) == 256


def test_arrays_objects_and_untyped_values_are_bounded() -> None:
    array = narrow_schema({"type": "array", "items": {"type": "integer"}, "minItems": 2})
    assert array["maxItems"] == MAX_ITEMS and array["minItems"] == 2
    assert narrow_schema({"type": "array", "minItems": 20})["maxItems"] == 20
    assert narrow_schema({"type": "array", "maxItems": 30})["maxItems"] == 30
    free = narrow_schema({"type": "array"})["items"]
    assert free["type"] == ["string", "integer", "boolean", "null"] and "pattern" in free and "maximum" in free
    closed = narrow_schema({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a", "b"]})
    assert closed["additionalProperties"] is False and set(closed["properties"]) == {"a", "b"}
    obj = narrow_schema({"type": "object"})
    assert obj["maxProperties"] == MAX_PROPERTIES and obj["propertyNames"]["pattern"].endswith("{0,32}$")
    needs_more = narrow_schema({"type": "object", "properties": {"a": {}}, "minProperties": 3})
    assert needs_more["additionalProperties"] is not False and needs_more["maxProperties"] == 1 + MAX_PROPERTIES
    typeless = narrow_schema({"properties": {"a": True, "b": False}})
    assert typeless["type"] == "object" and set(typeless["properties"]) == {"a"}
    with pytest.raises(ValueError, match="allOf"):
        narrow_schema({"allOf": [{"type": "integer"}, {"minimum": 1}]})


def test_strings_formats_and_patterns_are_bounded() -> None:
    assert narrow_schema({"type": "string", "minLength": 2}, 10)["pattern"].endswith("{2,10}$")
    email = narrow_schema({"type": "string", "format": "email"})
    assert "format" not in email and _matches(email["pattern"], "ann.lee@example.com")
    assert narrow_schema({"type": "string", "format": "date"})["format"] == "date"  # xgrammar's is bounded
    assert "format" not in narrow_schema({"type": "string", "format": "color"})  # unknown: an annotation
    assert bound_pattern("^[a-z]+(-[a-z]*)?x{2,}$", 4) == "^[a-z]{1,5}(-[a-z]{0,4})?x{2,6}$"
    assert bound_pattern(r"^[+*]\+a*?[]*]$", 3) == r"^[+*]\+a{0,3}[]*]$"


def _matches(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


@pytest.mark.parametrize(
    "schema",
    [
        RECEIPT,
        {
            "type": "object",
            "properties": {
                "lines": {
                    "type": "array",
                    "minItems": 2,
                    "items": {
                        "type": "object",
                        "properties": {
                            "description": {"type": "string", "minLength": 3},
                            "amount": {"type": "number", "exclusiveMinimum": 0.5},
                        },
                        "required": ["description", "amount"],
                    },
                }
            },
            "required": ["lines"],
        },
        {"anyOf": [{"type": "integer", "minimum": 10}, {"type": "string", "format": "uuid"}]},
        {
            "$defs": {"d": {"type": "object", "properties": {"n": {"const": [1, 2]}}, "required": ["n"]}},
            "$ref": "#/$defs/d",
        },
    ],
)
def test_min_json_is_a_short_valid_answer(schema: dict) -> None:
    narrowed = narrow_schema(schema)
    text = min_json(narrowed)
    assert text is not None
    assert _valid(json.loads(text), narrowed) and _valid(json.loads(text), schema)
    assert len(text.encode()) <= max_json_bytes(narrowed)


def test_sizes() -> None:
    receipt = narrow_schema(RECEIPT)
    assert min_json(receipt) == '{"merchant": "", "total": 0, "paid": true, "currency": "USD", "items": 0}'
    assert max_json_bytes(receipt) <= 300  # a bounded receipt fits a typical max_tokens
    assert min_json(narrow_schema({"type": "integer", "minimum": 120, "maximum": 999})) == "120"
    assert min_json(narrow_schema({"type": "number", "exclusiveMaximum": -3})) == "-4"
    tree = narrow_schema(
        {"$defs": {"n": {"type": "object", "properties": {"kid": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"}
    )
    assert min_json(tree) == "{}" and max_json_bytes(tree) is None  # recursion: no upper bound
    # Constants as the grammar may write them: DEL and control characters escaped (6 bytes), others raw or escaped.
    assert max_json_bytes({"enum": ["\x7f"]}) == len('"\\u007f"')
    assert max_json_bytes({"const": "\x01\u00e9\U0001f600"}) >= len('"\\u0001\\u00e9\\ud83d\\ude00"')
    assert max_json_bytes({"type": "object", "properties": {"\x7f": {"const": 1}}}) == len('{"\\u007f": 1}')


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), schemas())
def test_every_instance_of_the_narrowed_schema_is_valid_for_the_original(data: st.DataObject, schema: dict) -> None:
    narrowed = narrow_schema(schema, 16)
    assert max_json_bytes(narrowed) is not None
    instance = data.draw(instances(narrowed))
    assert _valid(instance, schema), (instance, narrowed)
