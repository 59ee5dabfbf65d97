"""Concurrent json_schema requests through the official openai client, every answer checked."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jsonschema


def assert_all_valid(
    client: Any,
    model: str,
    schema: dict,
    prompt: Callable[[int], str],
    max_tokens: int,
    n: int = 20,
    workers: int = 20,
    sampled: float = 1.0,
) -> list[Any]:
    """`n` requests at once (odd ones sampled at temperature `sampled`, even ones greedy): each answer must finish
    ("stop"), parse and validate against `schema`. Returns the answers."""
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}

    def ask(i: int) -> Any:
        return client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt(i)}],
            max_tokens=max_tokens,
            temperature=sampled if i % 2 else 0,
            response_format=fmt,
        )

    with ThreadPoolExecutor(workers) as pool:
        outs = list(pool.map(ask, range(n)))
    for out in outs:
        assert out.choices[0].finish_reason == "stop", out.choices[0]
        jsonschema.validate(json.loads(out.choices[0].message.content), schema)
    return outs
