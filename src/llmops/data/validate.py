"""Dataset validation: every problem in a file, each as `FILE:LINE: what is wrong`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmops.data.formats import (
    FORMATS,
    UNKNOWN,
    Records,
    completion_text,
    describe,
    detect_format,
    last_assistant,
    normalise_flow,
    numbered,
)
from llmops.data.io import format_problem, scan_records
from llmops.errors import ConfigError, DataError

ROLES = ("system", "user", "assistant", "tool", "developer")
MAX_SCHEMA_ERRORS = 10


@dataclass(frozen=True)
class _Context:
    flow: str
    label: str
    role: str
    accepted: tuple[str, ...]
    validator: Any


def validate_file(
    location: str,
    flow_type: str,
    accepted: Sequence[str],
    schema: dict | None = None,
    role: str = "train",
    label: str = "",
) -> list[str]:
    """Every problem in the file at `location` as `FILE:LINE: what is wrong`; [] when it is clean.

    `accepted`: the record formats allowed (a training method's, see llmops.methods); `label` names that method in
    messages."""
    ctx = _context(flow_type, accepted, label, schema, role)
    try:
        result = scan_records(location)
    except DataError as err:
        return err.problems or [str(err)]
    from llmops.data.documents import inline_files

    records, file_problems = inline_files(result.records, location)
    problems = result.problems + _record_problems(records, ctx)
    problems.sort(key=lambda item: item[0])
    return file_problems + [format_problem(location, line, message) for line, message in problems]


def validate_records(
    location: str,
    records: Records,
    flow_type: str,
    accepted: Sequence[str],
    schema: dict | None = None,
    role: str = "train",
    label: str = "",
) -> list[str]:
    """Every problem in already-read records as `FILE:LINE: what is wrong`; [] when they are clean."""
    ctx = _context(flow_type, accepted, label, schema, role)
    return [format_problem(location, line, message) for line, message in _record_problems(numbered(records), ctx)]


def schema_validator(schema: dict | None) -> Any:
    """A jsonschema validator for `schema` (its own draft), or None; DataError when the schema is invalid."""
    if schema is None:
        return None
    from jsonschema import exceptions, validators

    if not isinstance(schema, dict):
        raise DataError(f"the JSON Schema must be an object, got {type(schema).__name__}")
    cls = validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except exceptions.SchemaError as err:
        raise DataError(f"the JSON Schema is invalid at {_path(err.absolute_path)}: {err.message}") from err
    return cls(schema)


def _context(flow_type: str, accepted: Sequence[str], label: str, schema: dict | None, role: str) -> _Context:
    if role not in ("train", "eval"):
        raise ConfigError(f"role must be train or eval, got {role!r}")
    return _Context(normalise_flow(flow_type), label, role, tuple(accepted), schema_validator(schema))


def _record_problems(records: list[tuple[int, dict[str, Any]]], ctx: _Context) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for line, record in records:
        problems.extend((line, message) for message in _check_record(record, ctx))
        ident = record.get("task_id", record.get("id"))
        if ctx.role == "eval" and isinstance(ident, (str, int)) and not isinstance(ident, bool):
            if str(ident) in seen:
                problems.append((line, f'duplicate id "{ident}" (first used on line {seen[str(ident)]})'))
            seen.setdefault(str(ident), line)
    return problems


def _check_record(record: dict[str, Any], ctx: _Context) -> list[str]:
    fmt = detect_format(record)
    if fmt not in ctx.accepted:
        return [_format_mismatch(record, fmt, ctx)]
    problems = _CHECKS[fmt](record, ctx)
    if "class" in record and not _nonempty_str(record["class"]):
        problems.append(f'"class" must be a non-empty string, got {_kind(record["class"])}')
    if "id" in record and (isinstance(record["id"], bool) or not isinstance(record["id"], (str, int))):
        problems.append(f'"id" must be a string or an integer, got {_kind(record["id"])}')
    return problems


def _format_mismatch(record: dict[str, Any], fmt: str, ctx: _Context) -> str:
    expected = ", ".join(describe(name) for name in ctx.accepted)
    where = " ".join(filter(None, (ctx.flow, ctx.label, "training" if ctx.role == "train" else "evaluation")))
    where += " data"
    if fmt != UNKNOWN:
        return f"a {describe(fmt)} record is not accepted in {where}; expected one of {expected}"
    has = ", ".join(f'"{key}"' for key in record) or "no fields"
    best, overlap = None, 0
    for name in ctx.accepted:
        count = sum(key in record for key in FORMATS[name])
        if count > overlap:
            best, overlap = name, count
    if best is None:
        return f"unknown record format: it has {has}; expected one of {expected}"
    missing = ", ".join(f'"{key}"' for key in FORMATS[best] if key not in record)
    field_word = "field" if missing.count('"') == 2 else "fields"
    return f"missing {field_word} {missing} (a {describe(best)} record; it has {has})"


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _text(record: dict[str, Any], key: str) -> list[str]:
    value = record[key]
    if not isinstance(value, str):
        return [f'"{key}" must be a string, got {_kind(value)}']
    return [] if value.strip() else [f'"{key}" is empty']


def _messages(value: Any, key: str, role: str | None = None) -> list[str]:
    """Problems of a chat message list; `role` is the role every message must have, if any."""
    if not isinstance(value, list):
        return [f'"{key}" must be a string or a list of messages, got {_kind(value)}']
    if not value:
        return [f'"{key}" is an empty list']
    problems = []
    for index, message in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(message, dict):
            problems.append(f'"{where}" must be an object with "role" and "content", got {_kind(message)}')
            continue
        if message.get("role") not in ROLES:
            problems.append(f'"{where}.role" must be one of {", ".join(ROLES)}, got {message.get("role")!r}')
        elif role is not None and message["role"] != role:
            problems.append(f'"{where}.role" must be "{role}", got "{message["role"]}"')
        if not isinstance(message.get("content"), str):
            problems.append(f'"{where}.content" must be a string, got {_kind(message.get("content"))}')
        elif not message["content"].strip() and message.get("role") != "system":
            problems.append(f'"{where}.content" is empty')
    return problems


def _text_or_messages(record: dict[str, Any], key: str, role: str | None = None) -> list[str]:
    return _text(record, key) if isinstance(record[key], str) else _messages(record[key], key, role)


def _gold_text(text: Any, where: str, ctx: _Context) -> list[str]:
    """For IDP, `text` must be JSON (object or array) that matches the schema."""
    if ctx.flow != "IDP" or not isinstance(text, str) or not text.strip():
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return [f"{where} should be JSON for IDP but does not parse: {err.msg} at column {err.colno}"]
    return _gold_value(value, where, ctx)


def _gold_value(value: Any, where: str, ctx: _Context) -> list[str]:
    if not isinstance(value, (dict, list)):
        return [f"{where} must be a JSON object for IDP, got {_kind(value)}"]
    if ctx.validator is None:
        return []
    errors = sorted(ctx.validator.iter_errors(value), key=lambda err: [str(part) for part in err.absolute_path])
    problems = []
    for err in errors[:MAX_SCHEMA_ERRORS]:
        at = f" at {_path(err.absolute_path)}" if err.absolute_path else ""
        problems.append(f"gold JSON violates the schema{at}: {err.message}")
    if len(errors) > MAX_SCHEMA_ERRORS:
        problems.append(f"gold JSON violates the schema in {len(errors) - MAX_SCHEMA_ERRORS} more places")
    return problems


def _path(parts: Any) -> str:
    """A JSON path as `line_items[0].qty`; `the top level` when empty."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the top level"


def _check_input_target(record: dict[str, Any], ctx: _Context, target: str) -> list[str]:
    problems = _text(record, "input") + _text(record, target)
    if isinstance(record[target], dict) and ctx.flow == "IDP":
        problems[-1] += ' (JSON text); for JSON objects use {"document","fields"}'
    return problems + _gold_text(record[target], f'"{target}"', ctx)


def _check_prompt_completion(record: dict[str, Any], ctx: _Context) -> list[str]:
    problems = _text_or_messages(record, "prompt") + _text_or_messages(record, "completion", "assistant")
    if problems:
        return problems
    return _gold_text(completion_text(record["completion"]), '"completion"', ctx)


def _check_messages(record: dict[str, Any], ctx: _Context) -> list[str]:
    messages = record["messages"]
    problems = _messages(messages, "messages")
    if problems:
        return problems
    cut = last_assistant(messages)
    if cut != len(messages) - 1:
        return ['the last of "messages" must be an assistant message (the completion to learn)']
    if cut == 0 or all(message.get("role") == "system" for message in messages[:cut]):
        return ['"messages" needs a user message before the assistant message']
    return _gold_text(messages[cut]["content"], "the last assistant message", ctx)


def _check_document_fields(record: dict[str, Any], ctx: _Context) -> list[str]:
    problems = _text(record, "document")
    if not isinstance(record["fields"], dict):
        return problems + [f'"fields" must be an object, got {_kind(record["fields"])}']
    return problems + _gold_value(record["fields"], '"fields"', ctx)


def _check_document_output(record: dict[str, Any], ctx: _Context) -> list[str]:
    problems = _text(record, "document") + _text(record, "output")
    return problems + _gold_text(record["output"], '"output"', ctx)


def _check_preference(record: dict[str, Any], ctx: _Context) -> list[str]:
    problems = _text_or_messages(record, "prompt")
    problems += _text_or_messages(record, "chosen", "assistant") + _text_or_messages(record, "rejected", "assistant")
    if problems:
        return problems
    if record["chosen"] == record["rejected"]:
        return ['"chosen" and "rejected" are identical; a preference pair needs two different answers']
    return _gold_text(completion_text(record["chosen"]), '"chosen"', ctx)


def _check_humaneval(record: dict[str, Any], ctx: _Context) -> list[str]:
    task_id = record["task_id"]
    problems = [] if _nonempty_str(task_id) else [f'"task_id" must be a non-empty string, got {_kind(task_id)}']
    for key in ("prompt", "test", "entry_point"):
        problems += _text(record, key)
    entry = record["entry_point"]
    if _nonempty_str(entry) and not entry.strip().isidentifier():
        problems.append(f'"entry_point" must be a Python function name, got {entry!r}')
    if "canonical_solution" in record and not isinstance(record["canonical_solution"], str):
        problems.append(f'"canonical_solution" must be a string, got {_kind(record["canonical_solution"])}')
    return problems


_CHECKS = {
    "input_output": lambda record, ctx: _check_input_target(record, ctx, "output"),
    "input_teacher_output": lambda record, ctx: _check_input_target(record, ctx, "teacher_output"),
    "prompt_completion": _check_prompt_completion,
    "messages": _check_messages,
    "document_fields": _check_document_fields,
    "document_output": _check_document_output,
    "preference": _check_preference,
    "humaneval": _check_humaneval,
}
