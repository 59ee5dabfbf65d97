"""JSON in model output: the first ```-fenced block that holds some, else the whole text; the first top-level
balanced {...} that parses (brackets matched outside strings, surrounding text ignored), else the first such [...].
An unclosed object (output cut at max_new_tokens) yields None rather than an inner fragment."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

_FENCE = re.compile(r"```[^\n`]*\n?(.*?)```", re.DOTALL)
_CLOSER = {"{": "}", "[": "]"}


def _balanced_end(text: str, start: int) -> int | None:
    """Index after the bracket closing text[start] (string-aware); None if never closed; -j-1 on a mismatch at j."""
    stack: list[str] = []
    in_string = escaped = False
    for j in range(start, len(text)):
        char = text[j]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in _CLOSER:
            stack.append(_CLOSER[char])
        elif char in "}]":
            if stack.pop() != char:
                return -j - 1
            if not stack:
                return j + 1
    return None


def _top_level_spans(text: str) -> Iterator[str]:
    """Each top-level balanced {...} or [...] span of `text`, in order."""
    i = 0
    while i < len(text):
        if text[i] not in _CLOSER:
            i += 1
            continue
        end = _balanced_end(text, i)
        if end is None:
            # Unclosed (usually output cut at max_new_tokens): inner objects would be misleading fragments.
            return
        if end < 0:
            i = -end
            continue
        yield text[i:end]
        i = end


def _first_json(text: str) -> Any | None:
    """The first top-level JSON object in `text`, else its first JSON array, else None."""
    first_list = None
    for span in _top_level_spans(text):
        try:
            value = json.loads(span, strict=False)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
        if first_list is None:
            first_list = value
    return first_list


def extract_json(text: str) -> Any | None:
    """The JSON object (or array) in model output: fenced blocks first, then the whole text; None if none parses."""
    if not text:
        return None
    for block in _FENCE.findall(text):
        value = _first_json(block)
        if value is not None:
            return value
    return _first_json(text)
