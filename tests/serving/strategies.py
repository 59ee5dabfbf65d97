"""Hypothesis strategies for random JSON Schemas (objects, arrays, strings, numbers, integers, booleans, null, enum,
const, anyOf, $defs/$ref), as a client might send them in response_format, for the serving tests."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

NAMES = st.sampled_from(["a", "b", "total", "name", "x_1", "Größe"])
PATTERNS = ["^[A-Z]{2}[0-9]+$", "^[a-z]+(-[a-z]+)?$", "[0-9]{3}"]
FORMATS = ["date", "date-time", "email", "uuid", "time", "hostname", "color"]


def _optional(**parts: Any) -> Any:
    return st.fixed_dictionaries({}, optional=parts)


def _with(kind: str, extra: Any) -> Any:
    return extra.map(lambda d: {"type": kind, **d})


def integers() -> Any:
    return _with(
        "integer",
        _optional(
            minimum=st.integers(-(10**6), 0),
            maximum=st.integers(1, 10**15),
            exclusiveMinimum=st.integers(-(10**7), -(10**6) - 1),
            exclusiveMaximum=st.integers(10**15 + 1, 10**16),
            multipleOf=st.sampled_from([1, 5, 7]),
        ),
    )


def numbers() -> Any:
    cents = st.integers(-(10**7), 0).map(lambda v: v / 100)
    return _with(
        "number",
        _optional(
            minimum=cents,
            maximum=st.integers(1, 10**9).map(lambda v: v / 100),
            exclusiveMinimum=st.integers(-(10**9), -(10**7) - 1).map(lambda v: v / 100),
        ),
    )


def strings(patterns: list[str] = PATTERNS) -> Any:
    plain = _with("string", _optional(minLength=st.integers(0, 3), maxLength=st.integers(3, 300)))
    pattern = st.sampled_from(patterns).map(lambda p: {"type": "string", "pattern": p})
    fmt = st.sampled_from(FORMATS).map(lambda f: {"type": "string", "format": f})
    return st.one_of(plain, pattern, fmt)


def leaves(patterns: list[str] = PATTERNS) -> Any:
    scalars = st.one_of(st.text(max_size=5), st.integers(-99, 99), st.booleans(), st.none())
    return st.one_of(
        integers(),
        numbers(),
        strings(patterns),
        st.just({"type": "boolean"}),
        st.just({"type": "null"}),
        st.lists(scalars, min_size=1, max_size=4, unique_by=repr).map(lambda v: {"enum": v}),
        scalars.map(lambda v: {"const": v}),
        st.just({}),
        st.just({"type": ["integer", "null"]}),
    )


def _object(children: Any) -> Any:
    props = st.dictionaries(NAMES, children, max_size=3)

    def build(draw_props: dict[str, Any]) -> Any:
        names = sorted(draw_props)
        return st.fixed_dictionaries(
            {
                "type": st.just("object"),
                "properties": st.just(draw_props),
                "required": st.lists(st.sampled_from(names), unique=True) if names else st.just([]),
            },
            optional={"additionalProperties": st.one_of(st.booleans(), children)},
        )

    return props.flatmap(build)


def _array(children: Any) -> Any:
    def build(low: int) -> Any:
        return st.fixed_dictionaries(
            {"type": st.just("array"), "items": children},
            optional={"minItems": st.just(low), "maxItems": st.integers(low, low + 3)},
        )

    return st.integers(0, 2).flatmap(build)


def schemas(patterns: list[str] = PATTERNS, max_leaves: int = 6) -> Any:
    """A random schema: nested objects and arrays of the leaves above, anyOf, sometimes behind $defs/$ref."""
    tree = st.recursive(
        leaves(patterns),
        lambda children: st.one_of(
            _object(children), _array(children), st.lists(children, min_size=2, max_size=2).map(lambda b: {"anyOf": b})
        ),
        max_leaves=max_leaves,
    )
    by_ref = tree.map(
        lambda s: {
            "$defs": {"item": s},
            "type": "object",
            "properties": {"item": {"$ref": "#/$defs/item"}},
            "required": ["item"],
        }
    )
    return st.one_of(tree, by_ref)


_END = object()
_BMP_CHARS = "[\\x20\\x21\\x23-\\x5b\\x5d-\\ud7ff]"


class _LegacyMany:
    """hypothesis-jsonschema 0.23.1 drives `many` as `while elements.more(): ...`; hypothesis 6.170 dropped
    `more()` for `with many(...) as e: for _ in e:`. The same protocol, stepped by hand."""

    def __init__(self, data: Any, **sizes: Any) -> None:
        from hypothesis.internal.conjecture.utils import many

        self._many = many(data, **sizes)
        self._many.__enter__()
        self._steps = iter(self._many)

    def more(self) -> bool:
        if next(self._steps, _END) is _END:
            self._many.__exit__(None)
            return False
        return True

    def reject(self, why: str | None = None) -> None:
        self._many.reject(why)


def instances(schema: Any) -> Any:
    """Instances of a narrowed schema: hypothesis-jsonschema's `from_schema`, with objects working on this
    hypothesis version, and strings drawn from the BMP part of STRING_CHARS (hypothesis takes seconds a draw for a
    class up to U+10FFFF). Still instances of `schema`, so a fair check that they are valid for the original."""
    from types import SimpleNamespace

    from hypothesis_jsonschema import _from_schema, from_schema

    from llmops.evaluation.schema_bounds import STRING_CHARS

    _from_schema.cu = SimpleNamespace(many=_LegacyMany)  # type: ignore[attr-defined]
    text = json.dumps(schema).replace(json.dumps(STRING_CHARS)[1:-1], json.dumps(_BMP_CHARS)[1:-1])
    return from_schema(json.loads(text))
