"""Narrow a JSON schema so that every answer a grammar allows is short: constrained decoding always finishes.

xgrammar 0.2.8 turns a schema into a grammar that follows it exactly: where the schema sets no bound, neither does
the grammar, and a model may write digits, items or keys until max_tokens (an unparseable answer). `narrow_schema`
returns a sub-schema (every instance of it is an instance of the original) where every value is bounded:

- strings: at most `string_max` characters (capped at MAX_STRING_REPEAT, the longest bounded repetition xgrammar
  compiles) as a pattern that carries minLength/maxLength, of characters that need no escape (STRING_CHARS). Formats
  xgrammar leaves unbounded (date-time, time, email, hostname) become bounded patterns, unknown formats (annotations)
  are dropped; in a user's pattern every `*`, `+` and `{n,}` repeats at most PATTERN_REPEAT times.
- integers: within +-(10**12 - 1) unless the schema bounds them (minimum, maximum, exclusive ones rounded inward to
  whole numbers); an integer multipleOf becomes an enum of the MAX_MULTIPLES multiples nearest zero.
- numbers: the same range, and xgrammar writes a bounded number without exponent and at most 6 fraction digits.
- arrays: at most MAX_ITEMS items unless maxItems says (never below minItems); items default to untyped values.
- objects: with properties (or patternProperties), no other keys (additionalProperties false) unless minProperties
  needs more; required keys missing from properties are added as untyped values; free keys (json_object, an
  additionalProperties schema) are at most KEY_MAX characters long, and at most MAX_PROPERTIES more than declared.
- untyped values (`{}`, `true`): a bounded string, integer, boolean or null.
- allOf with several subschemas is refused: xgrammar 0.2.8 would drop it and constrain nothing.

Not bounded: recursive $refs (a tree may nest deeper and deeper), formats uri, uri-reference, duration,
json-pointer, iri, idn-*, regex. Not enforced by the grammar (xgrammar ignores them): uniqueItems, number multipleOf,
not, if/then, dependentRequired, and maxLength beside a user's pattern.

`schema_size.min_json` writes a shortest answer (as the grammar writes it: ", " and ": " separators, compact
enums) and `schema_size.max_json_bytes` bounds the longest answer in UTF-8 bytes, so in tokens.
"""

from __future__ import annotations

import math
import re
from typing import Any

# xgrammar 0.2.8 cannot compile a bounded repetition much past 128 (measured: 128 compiles, 200 fails with
# "per_rule_fsm_hashes ... has_value()"): string values are capped at this length.
MAX_STRING_REPEAT = 128
INT_BOUND = 10**12 - 1
MAX_ITEMS = 8
MAX_PROPERTIES = 8
KEY_MAX = 32
PATTERN_REPEAT = 32
MAX_MULTIPLES = 256

# A generated JSON string may not hold raw control characters, quotes or backslashes (no escapes needed). A
# positive class of code points: xgrammar reads a negated one ([^...]) leniently, accepting UTF-8-encoded surrogates
# and overlong sequences, which decode to several U+FFFD (past maxLength).
# The last bound is a literal character: xgrammar reads no \U escape.
STRING_CHARS = "[\\x20\\x21\\x23-\\x5b\\x5d-\\ud7ff\\ue000-\U0010ffff]"
UNTYPED_AS = ["string", "integer", "boolean", "null"]
_TYPED_BY = {"type", "enum", "const", "$ref", "anyOf", "oneOf", "allOf", "not"}
_OBJECT_KEYS = {
    "properties",
    "additionalProperties",
    "patternProperties",
    "required",
    "propertyNames",
    "minProperties",
    "maxProperties",
}
_ARRAY_KEYS = {"items", "prefixItems", "minItems", "maxItems", "contains"}
_ONE = ("items", "additionalItems", "contains", "then", "else")  # narrowing inside `not` / `if` would widen
_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems", "items")
_MAPS = ("properties", "$defs", "definitions", "dependentSchemas")
_DATE = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIME = "([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
_ATOM = "[a-zA-Z0-9_!#$%&'*+/=?^`{|}~-]"
_LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?"
FORMAT_PATTERNS = {
    "date-time": f"^{_DATE}T{_TIME}$",
    "time": f"^{_TIME}$",
    "email": f"^{_ATOM}{{1,32}}(\\.{_ATOM}{{1,16}}){{0,2}}@{_LABEL}(\\.{_LABEL}){{0,3}}$",
    "hostname": f"^{_LABEL}(\\.{_LABEL}){{0,3}}$",
}
# Formats xgrammar knows (the others it writes as any string, unbounded, and validators ignore them).
_XGRAMMAR_FORMATS = {
    "date",
    "uuid",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "uri-template",
    "duration",
    "json-pointer",
    "relative-json-pointer",
    "iri",
    "iri-reference",
    "idn-email",
    "idn-hostname",
    "regex",
}
# Formats xgrammar writes with a bounded grammar: their shortest instance and their longest length.
BOUNDED_FORMATS = {
    "date": ("2000-01-01", 10),
    "uuid": ("00000000-0000-0000-0000-000000000000", 36),
    "ipv4": ("0.0.0.0", 15),
    "ipv6": ("::", 45),
}


def narrow_schema(schema: Any, string_max: int | None = MAX_STRING_REPEAT, items_max: int = MAX_ITEMS) -> Any:
    """A sub-schema of `schema` whose every instance is short (see the module docstring); ValueError for an allOf
    of several subschemas. Everything valid for the result is valid for `schema`. `string_max` and `items_max`
    bound strings and arrays that the schema leaves unbounded (the server tightens them to fit a request's
    max_tokens)."""
    return _narrow(schema, string_max, items_max)


def _narrow(node: Any, smax: int | None, imax: int = MAX_ITEMS) -> Any:
    if node is True:
        node = {}
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for key in _ONE:
        if isinstance(node.get(key), (dict, bool)):
            out[key] = _narrow(node[key], smax, imax)
    for key in _LISTS:
        if isinstance(node.get(key), list):
            out[key] = [_narrow(s, smax, imax) for s in node[key]]
            if key in ("anyOf", "oneOf") and any(s is not False for s in out[key]):
                out[key] = [s for s in out[key] if s is not False]  # xgrammar refuses a `false` branch
    for key in _MAPS:
        if isinstance(node.get(key), dict):
            out[key] = {k: _narrow(v, smax, imax) for k, v in node[key].items()}
    if isinstance(node.get("allOf"), list) and len(node["allOf"]) > 1:
        raise ValueError(
            "allOf with several subschemas is not supported (xgrammar would ignore it); merge them into one schema"
        )
    types = _infer_types(out)
    if "enum" in out or "const" in out:
        return out  # a finite set of values
    if "object" in types:
        _bound_object(out, node, smax, imax)
    if "array" in types:
        _bound_array(out, node, smax, imax)
    if "string" in types:
        _bound_string(out, smax)
    if "number" in types or "integer" in types:
        _bound_numbers(out)
    return out


def _infer_types(out: dict[str, Any]) -> list[str]:
    """The node's types, setting `type` where the schema implies it (a subset: untyped means 'anything')."""
    if not (_TYPED_BY & out.keys()):
        if _OBJECT_KEYS & out.keys():
            out["type"] = "object"
        elif _ARRAY_KEYS & out.keys():
            out["type"] = "array"
        elif {"pattern", "format"} & out.keys():
            out["type"] = "string"
        else:
            out["type"] = list(UNTYPED_AS)
    types = out.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if "number" in types and "integer" in types:  # every integer is a number; xgrammar wants whole integer bounds
        types.remove("integer")
        out["type"] = types
    return types


def _bound_object(out: dict[str, Any], node: dict[str, Any], smax: int | None, imax: int) -> None:
    required = [r for r in node.get("required", []) if isinstance(r, str)]
    props = {k: v for k, v in out.get("properties", {}).items() if v is not False or k in required}
    for name in required:
        props.setdefault(name, _narrow({}, smax, imax))  # xgrammar silently drops required keys it has no schema for
    if props or "properties" in out:
        out["properties"] = props
    extra = node.get("additionalProperties", True)
    patterns = node.get("patternProperties")
    if isinstance(patterns, dict):
        out["patternProperties"] = {bound_pattern(k): _narrow(v, smax, imax) for k, v in patterns.items()}
    open_ = extra is True or extra == {}
    if open_ and (props or patterns) and (patterns or int(node.get("minProperties", 0)) <= len(props)):
        out["additionalProperties"] = False
        extra = False
    if extra is not False:
        out["additionalProperties"] = _narrow(extra, smax, imax)
        names = node.get("propertyNames")
        if isinstance(names, dict):
            out["propertyNames"] = _narrow({"type": "string", **names}, smax, imax)
        else:
            out["propertyNames"] = {"type": "string", "pattern": f"^{STRING_CHARS}{{0,{KEY_MAX}}}$"}
    if (extra is not False or patterns) and "maxProperties" not in node:
        out["maxProperties"] = max(int(node.get("minProperties", 0)), len(props) + MAX_PROPERTIES)


def _bound_array(out: dict[str, Any], node: dict[str, Any], smax: int | None, imax: int) -> None:
    if "items" not in node and not isinstance(node.get("prefixItems"), list):
        out["items"] = _narrow({}, smax, imax)
    if "maxItems" not in node:
        prefix = node.get("prefixItems") if isinstance(node.get("prefixItems"), list) else node.get("items")
        fixed = len(prefix) if isinstance(prefix, list) else 0
        out["maxItems"] = max(int(node.get("minItems", 0)), fixed, imax)


def _bound_string(out: dict[str, Any], smax: int | None) -> None:
    fmt = out.get("format")
    if fmt in FORMAT_PATTERNS and "pattern" not in out:
        del out["format"]  # xgrammar prefers format over pattern, and writes these formats unbounded
        out["pattern"] = FORMAT_PATTERNS[fmt]
    if "format" in out and out["format"] not in _XGRAMMAR_FORMATS:
        del out["format"]  # an unknown format is an annotation only; xgrammar would write any string
    if "format" in out:
        return
    if "pattern" in out:
        out["pattern"] = bound_pattern(str(out["pattern"]))
        return
    low = int(out.get("minLength", 0))
    high = out.get("maxLength", smax)
    if high is not None and high > MAX_STRING_REPEAT >= low:
        high = MAX_STRING_REPEAT  # xgrammar 0.2.8 fails to compile longer bounded repetitions
    bound = "" if high is None else str(int(high))
    out["pattern"] = f"^{STRING_CHARS}{{{low},{bound}}}$"
    out.pop("minLength", None)  # the pattern implies both (and xgrammar warns about a pattern beside them)
    out.pop("maxLength", None)


def bound_pattern(pattern: str, repeat: int = PATTERN_REPEAT) -> str:
    """`pattern` with every unbounded repetition (`*`, `+`, `{n,}`) capped at `repeat` more; lazy marks dropped."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
            out.append(c)
            i += 1
            continue
        if c == "[":
            j = i + 1
            j += pattern[j : j + 1] == "^"
            j += pattern[j : j + 1] == "]"  # a leading ] is a literal
            in_class = True
            out.append(pattern[i:j])
            i = j
            continue
        found = re.match(r"\{(\d+),\}", pattern[i:]) if c == "{" else None
        if c not in "*+" and found is None:
            out.append(c)
            i += 1
            continue
        low = 0 if c == "*" else 1 if c == "+" else int(found[1])
        out.append(f"{{{low},{low + repeat}}}")
        i += 1 if found is None else found.end()
        i += pattern[i : i + 1] == "?"
    return "".join(out)


def limits(node: dict[str, Any]) -> tuple[Any, bool, Any, bool]:
    """(low, low exclusive, high, high exclusive), from minimum/maximum/exclusive* (draft 4 booleans too)."""
    low, high = node.get("minimum"), node.get("maximum")
    low_x = high_x = False
    emin, emax = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
    if emin is True:
        low_x = low is not None
    elif _is_num(emin) and (low is None or emin >= low):
        low, low_x = emin, True
    if emax is True:
        high_x = high is not None
    elif _is_num(emax) and (high is None or emax <= high):
        high, high_x = emax, True
    return low, low_x, high, high_x


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bound_numbers(out: dict[str, Any]) -> None:
    """Bounds for integer and number values: given ones rounded inward for integers, else +-INT_BOUND."""
    types = out.get("type")
    integer = "integer" in (types if isinstance(types, list) else [types])
    low, low_x, high, high_x = limits(out)
    if integer:
        low = None if low is None else math.floor(low) + 1 if low_x else math.ceil(low)
        high = None if high is None else math.ceil(high) - 1 if high_x else math.floor(high)
        low_x = high_x = False
    if low is None:
        low = (0 if high is None else min(math.floor(high), 0)) - INT_BOUND
    if high is None:
        high = max(math.ceil(low), 0) + INT_BOUND
    step = out.get("multipleOf")
    if integer and _is_num(step) and float(step).is_integer() and step > 1:
        if types == "integer" or types == ["integer"]:
            out["enum"] = _multiples(int(step), int(low), int(high))
        return  # xgrammar ignores multipleOf beside a range: leave it unbounded but exact
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        out.pop(key, None)
    out["exclusiveMinimum" if low_x else "minimum"] = low
    out["exclusiveMaximum" if high_x else "maximum"] = high


def _multiples(step: int, low: int, high: int) -> list[int]:
    """At most MAX_MULTIPLES multiples of `step` within [low, high], those nearest zero."""
    first, last = -(-low // step), high // step
    centre = min(max(0, first), last)
    start = max(first, min(centre - MAX_MULTIPLES // 2, last - MAX_MULTIPLES + 1))
    return [k * step for k in range(start, min(last, start + MAX_MULTIPLES - 1) + 1)]


__all__ = [
    "BOUNDED_FORMATS",
    "FORMAT_PATTERNS",
    "INT_BOUND",
    "KEY_MAX",
    "MAX_ITEMS",
    "MAX_PROPERTIES",
    "MAX_STRING_REPEAT",
    "PATTERN_REPEAT",
    "STRING_CHARS",
    "UNTYPED_AS",
    "bound_pattern",
    "limits",
    "narrow_schema",
]
