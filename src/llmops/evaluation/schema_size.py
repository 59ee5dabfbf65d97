"""How long an answer to a narrowed JSON schema (`schema_bounds.narrow_schema`) can be, as xgrammar writes it with
any_whitespace=False (", " and ": " between items, enums and consts compact): `min_json` writes a shortest answer,
to refuse a max_tokens too small for any valid answer; `max_json_bytes` bounds the longest one in UTF-8 bytes (so
in tokens), to check that a typical max_tokens suffices."""

from __future__ import annotations

import json
import math
from typing import Any

from llmops.evaluation.schema_bounds import BOUNDED_FORMATS, FORMAT_PATTERNS, STRING_CHARS, limits

_MAX_DEPTH = 24


class _Unknown(Exception):
    """No bound: a recursive $ref, a missing bound, an unsatisfiable subschema."""


def min_json(schema: Any) -> str | None:
    """A shortest JSON text the grammar of `schema` accepts, or None when it cannot tell. A string with a pattern
    is filled with 'a' to the pattern's shortest width: the right length, not necessarily a match."""
    try:
        return _min(schema, schema, 0)
    except _Unknown:
        return None


def max_json_bytes(schema: Any) -> int | None:
    """An upper bound of the UTF-8 length of any answer to `schema`, or None when unbounded (recursive $ref)."""
    try:
        return _max(schema, schema, frozenset())
    except _Unknown:
        return None


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _nbytes(text: str) -> int:
    return len(text.encode())


def _written_max(value: Any) -> int:
    """The most bytes a grammar may spend writing the constant `value`. xgrammar writes control characters and DEL
    (0x7f) as \\uXXXX (6 bytes; `_compact` counts DEL as 1 raw byte) and other non-ASCII raw (2-4 bytes);
    json.dumps with ensure_ascii escapes all of these, 6 bytes each (12 for a surrogate pair), so its length
    bounds both."""
    return len(json.dumps(value, ensure_ascii=True, separators=(",", ":")))


def _resolve(root: Any, ref: Any) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise _Unknown(ref)
    node = root
    for part in ref[1:].split("/")[1:] if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise _Unknown(ref) from None
    return node


def _types(node: dict[str, Any]) -> list[str]:
    types = node.get("type", [])
    return [types] if isinstance(types, str) else list(types)


def _branches(node: dict[str, Any]) -> list[Any] | None:
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(node.get(key), list) and node[key]:
            return node[key]
    return None


def _min(node: Any, root: Any, depth: int) -> str:
    if depth > _MAX_DEPTH or not isinstance(node, dict):
        raise _Unknown("depth" if isinstance(node, dict) else node)
    if "const" in node:
        return _compact(node["const"])
    if isinstance(node.get("enum"), list) and node["enum"]:
        return min((_compact(v) for v in node["enum"]), key=_nbytes)
    if "$ref" in node:
        return _min(_resolve(root, node["$ref"]), root, depth + 1)
    branches = _branches(node)
    if branches is not None:
        return _shortest([lambda b=b: _min(b, root, depth + 1) for b in branches])
    makers = {
        "null": lambda: "null",
        "boolean": lambda: "true",
        "integer": lambda: _min_number(node, True),
        "number": lambda: _min_number(node, False),
        "string": lambda: _min_string(node),
        "array": lambda: _min_array(node, root, depth),
        "object": lambda: _min_object(node, root, depth),
    }
    return _shortest([makers[t] for t in _types(node) if t in makers] or [lambda: "0"])


def _shortest(makers: list[Any]) -> str:
    found = []
    for make in makers:
        try:
            found.append(make())
        except _Unknown:
            pass
    if not found:
        raise _Unknown("no branch")
    return min(found, key=_nbytes)


def _min_number(node: dict[str, Any], integer: bool) -> str:
    low, low_x, high, high_x = limits(node)

    def fits(x: float) -> bool:
        return (low is None or x > low or (x == low and not low_x)) and (
            high is None or x < high or (x == high and not high_x)
        )

    up = None if low is None else math.ceil(low) + (1 if low_x and float(low).is_integer() else 0)
    down = None if high is None else math.floor(high) - (1 if high_x and float(high).is_integer() else 0)
    whole = [str(c) for c in (0, up, down) if c is not None and fits(c)]
    if whole:
        return min(whole, key=len)
    if integer or low is None or high is None:
        raise _Unknown("empty range")
    return _compact(low if not low_x else high if not high_x else (low + high) / 2)


def _min_string(node: dict[str, Any]) -> str:
    if node.get("format") in BOUNDED_FORMATS:
        return json.dumps(BOUNDED_FORMATS[node["format"]][0])
    width = regex_width(node["pattern"]) if "pattern" in node else None
    low = width[0] if width else int(node.get("minLength", 0))
    return '"' + "a" * low + '"'


def _min_array(node: dict[str, Any], root: Any, depth: int) -> str:
    prefix, items = _array_parts(node)
    parts = []
    for i in range(int(node.get("minItems", 0))):
        parts.append(_min(prefix[i] if i < len(prefix) else items, root, depth + 1))
    return "[" + ", ".join(parts) + "]"


def _array_parts(node: dict[str, Any]) -> tuple[list[Any], Any]:
    """(the tuple's item schemas, the schema of the items after them)."""
    if isinstance(node.get("prefixItems"), list):
        return node["prefixItems"], node.get("items", {})
    if isinstance(node.get("items"), list):
        return node["items"], node.get("additionalItems", {})
    return [], node.get("items", {})


def _min_object(node: dict[str, Any], root: Any, depth: int) -> str:
    props = node.get("properties") or {}
    required = set(node.get("required") or [])
    want = int(node.get("minProperties", 0))
    chosen = [k for k in props if k in required]
    chosen += [k for k in props if k not in required][: max(0, want - len(chosen))]
    parts = [f"{json.dumps(k, ensure_ascii=False)}: {_min(props[k], root, depth + 1)}" for k in props if k in chosen]
    return "{" + ", ".join(parts) + "}"


def _max(node: Any, root: Any, refs: frozenset[str]) -> int:
    if not isinstance(node, dict):
        raise _Unknown(node)
    if "const" in node:
        return _written_max(node["const"])
    if isinstance(node.get("enum"), list) and node["enum"]:
        return max(_written_max(v) for v in node["enum"])
    if "$ref" in node:
        if node["$ref"] in refs:
            raise _Unknown("recursive $ref")
        return _max(_resolve(root, node["$ref"]), root, refs | {node["$ref"]})
    branches = _branches(node)
    if branches is not None:
        return max(_max(b, root, refs) for b in branches)
    sizes = {
        "null": lambda: 4,
        "boolean": lambda: 5,
        "integer": lambda: _max_number(node, 0),
        "number": lambda: _max_number(node, 7),
        "string": lambda: _max_string(node),
        "array": lambda: _max_array(node, root, refs),
        "object": lambda: _max_object(node, root, refs),
    }
    types = [t for t in _types(node) if t in sizes]
    if not types:
        raise _Unknown("untyped")
    return max(sizes[t]() for t in types)


def _max_number(node: dict[str, Any], fraction: int) -> int:
    low, _, high, _ = limits(node)
    if low is None or high is None:
        raise _Unknown("unbounded number")
    return 1 + len(str(math.floor(max(abs(low), abs(high))))) + fraction  # sign, digits, "." and 6 digits


def _max_string(node: dict[str, Any]) -> int:
    if node.get("format") in BOUNDED_FORMATS:
        return 2 + BOUNDED_FORMATS[node["format"]][1]
    width = regex_width(node["pattern"]) if "pattern" in node and "format" not in node else None
    if width is None or width[1] > 1 << 20:
        raise _Unknown("unbounded string")
    # Format patterns are ASCII; our own string pattern needs no escapes (4 bytes a character at most); a user's
    # pattern may need \u00XX ones (6).
    pattern = str(node["pattern"])
    per_char = 1 if pattern in FORMAT_PATTERNS.values() else 4 if pattern.startswith("^" + STRING_CHARS) else 6
    return 2 + per_char * width[1]


def _max_array(node: dict[str, Any], root: Any, refs: frozenset[str]) -> int:
    prefix, items = _array_parts(node)
    count = node.get("maxItems")
    if items is False:
        count = len(prefix) if count is None else min(count, len(prefix))
    if count is None:
        raise _Unknown("unbounded array")
    sizes = [_max(prefix[i] if i < len(prefix) else items, root, refs) for i in range(int(count))]
    return 2 + sum(sizes) + 2 * max(0, len(sizes) - 1)


def _max_object(node: dict[str, Any], root: Any, refs: frozenset[str]) -> int:
    props = node.get("properties") or {}
    total = 2 + sum(_written_max(k) + 2 + _max(v, root, refs) for k, v in props.items())
    count = len(props)
    extra = node.get("additionalProperties", False)
    patterns = node.get("patternProperties") or {}
    if extra is not False or patterns:
        if "maxProperties" not in node:
            raise _Unknown("unbounded object")
        values = [_max(v, root, refs) for v in patterns.values()] + ([_max(extra, root, refs)] if extra else [])
        keys = [_max_string({"pattern": p}) for p in patterns]
        if extra is not False:
            keys.append(_max_string(node.get("propertyNames") or {}))
        extras = int(node["maxProperties"])
        total += extras * (max(keys) + 2 + max(values, default=0))
        count += extras
    return total + 2 * max(0, count - 1)


def regex_width(pattern: str) -> tuple[int, int] | None:
    """(shortest, longest) length of a regex's matches (Python's regex parser), None when it cannot parse it."""
    try:
        import re._parser as sre_parse  # Python >= 3.11
    except ImportError:  # pragma: no cover
        import sre_parse  # type: ignore[no-redef]
    try:
        low, high = sre_parse.parse(pattern).getwidth()
    except Exception:  # noqa: BLE001 - a dialect Python does not read
        return None
    return int(low), int(high)
