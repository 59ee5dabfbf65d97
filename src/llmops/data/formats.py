"""Record formats: detect each JSONL record's format and convert it to the internal example forms."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from llmops.errors import ConfigError, DataError

# Required fields of each format, in detection order (the first whose fields are all present wins).
FORMATS: dict[str, tuple[str, ...]] = {
    "preference": ("prompt", "chosen", "rejected"),
    "humaneval": ("task_id", "prompt", "test", "entry_point"),
    "messages": ("messages",),
    "prompt_completion": ("prompt", "completion"),
    "input_teacher_output": ("input", "teacher_output"),
    "input_output": ("input", "output"),
    "document_fields": ("document", "fields"),
    "document_output": ("document", "output"),
}
UNKNOWN = "unknown"
DEFAULT_CLASS = "all"
FLOW_TYPES = {"idp": "IDP", "codegen": "CodeGen"}

# Format groups the training methods compose (each method says which it accepts: llmops.methods).
_ANSWERS_COMMON = ("input_output", "prompt_completion", "messages")
_IDP_DOCUMENT = ("document_fields", "document_output")
_IDP_EVAL = _IDP_DOCUMENT + ("input_output", "input_teacher_output", "prompt_completion", "messages")
TEACHER_ANSWER = ("input_teacher_output",)  # an answer written by a teacher model
PREFERENCE = ("preference",)

Records = Sequence[tuple[int, dict[str, Any]]] | Sequence[dict[str, Any]]


def detect_format(record: dict[str, Any]) -> str:
    """The name of the record's format (a key of FORMATS), or "unknown"."""
    for name, fields in FORMATS.items():
        if all(key in record for key in fields):
            return name
    return UNKNOWN


def describe(name: str) -> str:
    """A format as users write it, e.g. {"input","output"}."""
    return "{" + ",".join(f'"{key}"' for key in FORMATS[name]) + "}"


def normalise_flow(flow_type: str) -> str:
    """Canonical "IDP" or "CodeGen"; ConfigError naming the bad value."""
    flow = FLOW_TYPES.get(str(flow_type).lower())
    if flow is None:
        raise ConfigError(f"flow_type must be IDP or CodeGen, got {flow_type!r}")
    return flow


def answer_formats(flow_type: str) -> tuple[str, ...]:
    """Training formats with a prompt and the answer to learn (what supervised fine-tuning reads)."""
    return _ANSWERS_COMMON + (_IDP_DOCUMENT if normalise_flow(flow_type) == "IDP" else ("humaneval",))


def eval_formats(flow_type: str) -> tuple[str, ...]:
    """Evaluation formats: a prompt and its gold JSON (IDP), a problem with its tests (CodeGen)."""
    return _IDP_EVAL if normalise_flow(flow_type) == "IDP" else ("humaneval",)


def numbered(records: Records) -> list[tuple[int, dict[str, Any]]]:
    """(line, record) pairs: read_records output as is, plain records numbered from 1."""
    out: list[tuple[int, dict[str, Any]]] = []
    for index, item in enumerate(records, start=1):
        if isinstance(item, tuple):
            out.append((int(item[0]), item[1]))
        else:
            out.append((index, item))
    return out


def record_class(record: dict[str, Any]) -> str:
    """The record's class (field "class"), "all" when absent."""
    value = record.get("class")
    return DEFAULT_CLASS if value is None or value == "" else str(value)


def record_groups(record: dict[str, Any]) -> list[str]:
    """The groups an IDP eval record is also scored in, besides its class: `lang-<language>` for a record with a
    "language", `scanned` or `digital` for one with a boolean "scanned"."""
    groups = []
    language = record.get("language")
    if isinstance(language, str) and language.strip():
        groups.append(f"lang-{language.strip().lower()}")
    if isinstance(record.get("scanned"), bool):
        groups.append("scanned" if record["scanned"] else "digital")
    return groups


def as_messages(value: str | list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    """A string as one message with `role`; a message list copied as is."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [dict(message) for message in value]


def last_assistant(messages: list[dict[str, Any]]) -> int:
    """Index of the last assistant message, -1 when there is none."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "assistant":
            return index
    return -1


def completion_text(value: str | list[dict[str, Any]]) -> str:
    """The text of a completion given as a string or as assistant messages."""
    if isinstance(value, str):
        return value
    return "".join(str(message.get("content", "")) for message in value if message.get("role") == "assistant")


def _text_answer(value: Any, answer_fn: Callable[[Any], str]) -> str:
    return value if isinstance(value, str) else answer_fn(value)


def _sft_pair(
    record: dict[str, Any], fmt: str, prompt_fn: Callable[[str], str], answer_fn: Callable[[Any], str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(prompt messages, completion messages) of one training record."""
    if fmt == "messages":
        messages = [dict(message) for message in record["messages"]]
        cut = last_assistant(messages)
        if cut < 1:
            raise ValueError('"messages" needs a user message followed by an assistant message')
        return messages[:cut], [messages[cut]]
    if fmt == "prompt_completion":
        return as_messages(record["prompt"], "user"), as_messages(record["completion"], "assistant")
    if fmt in ("document_fields", "document_output"):
        answer = answer_fn(record["fields"]) if fmt == "document_fields" else _text_answer(record["output"], answer_fn)
        return as_messages(prompt_fn(record["document"]), "user"), as_messages(answer, "assistant")
    if fmt == "humaneval":
        if not isinstance(record.get("canonical_solution"), str) or not record["canonical_solution"].strip():
            raise ValueError('a HumanEval record trains only with its "canonical_solution"')
        return as_messages(prompt_fn(record["prompt"]), "user"), as_messages(record["canonical_solution"], "assistant")
    target = record["teacher_output"] if fmt == "input_teacher_output" else record["output"]
    # The task builds the prompt from the input (IDP adds the schema; CodeGen wraps completion-style code), the
    # same way evaluation and prediction do.
    prompt = prompt_fn(record["input"])
    return as_messages(prompt, "user"), as_messages(_text_answer(target, answer_fn), "assistant")


def _raise_problems(source: str, problems: list[str], what: str) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DataError(f"{problems[0]}{more}; run `llmops data validate` on {source} for {what}", problems)


def to_sft_examples(
    records: Records,
    flow_type: str,
    prompt_fn: Callable[[str], str],
    answer_fn: Callable[[Any], str],
    *,
    source: str = "data",
) -> list[dict[str, Any]]:
    """Training records (SFT formats, and KD's {"input","teacher_output"}) as SFT examples."""
    flow = normalise_flow(flow_type)

    def convert(line: int, record: dict[str, Any], fmt: str) -> dict[str, Any]:
        try:
            prompt, completion = _sft_pair(record, fmt, prompt_fn, answer_fn)
        except (TypeError, ValueError, KeyError, AttributeError) as err:
            raise ValueError(f"cannot convert the {describe(fmt)} record: {err}") from err
        example = {"prompt": prompt, "completion": completion, "class": record_class(record)}
        if "source_file" in record:  # a document read from a file: named in warnings (too long, ...)
            example["name"] = str(record["source_file"])
        return example

    accepted = answer_formats(flow) + TEACHER_ANSWER
    return _convert_all(records, accepted, f"a {flow} training record", convert, source)


def _convert_all(
    records: Records,
    accepted: Any,
    label: str,
    convert: Callable[[int, dict[str, Any], str], dict[str, Any]],
    source: str,
) -> list[dict[str, Any]]:
    """Convert every record of an accepted format; DataError listing every `source:LINE` problem."""
    examples: list[dict[str, Any]] = []
    problems: list[str] = []
    expected = ", ".join(describe(name) for name in accepted)
    for line, record in numbered(records):
        fmt = detect_format(record)
        if fmt not in accepted:
            problems.append(f"{source}:{line}: not {label}; expected one of {expected}")
            continue
        try:
            examples.append(convert(line, record, fmt))
        except (TypeError, ValueError, KeyError, AttributeError) as err:
            problems.append(f"{source}:{line}: {err}")
    _raise_problems(source, problems, "every problem")
    return examples


def parse_gold(value: Any) -> Any:
    """Gold JSON from an object (as is) or a JSON string; ValueError when the string does not parse."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"the gold output is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None


def _eval_pair(record: dict[str, Any], fmt: str, prompt_fn: Callable[[str], str]) -> tuple[list[dict], Any]:
    """(prompt messages, gold JSON) of one IDP evaluation record."""
    if fmt == "document_fields":
        return as_messages(prompt_fn(record["document"]), "user"), record["fields"]
    if fmt == "document_output":
        return as_messages(prompt_fn(record["document"]), "user"), parse_gold(record["output"])
    if fmt in ("input_output", "input_teacher_output"):
        target = record["teacher_output"] if fmt == "input_teacher_output" else record["output"]
        return as_messages(prompt_fn(record["input"]), "user"), parse_gold(target)
    if fmt == "messages":
        messages = [dict(message) for message in record["messages"]]
        cut = last_assistant(messages)
        if cut < 1:
            raise ValueError('"messages" needs a user message followed by an assistant message')
        return messages[:cut], parse_gold(completion_text(messages[cut : cut + 1]))
    target = record["chosen"] if fmt == "preference" else record["completion"]
    return as_messages(record["prompt"], "user"), parse_gold(completion_text(target))


def to_idp_eval_examples(
    records: Records, prompt_fn: Callable[[str], str], *, source: str = "data"
) -> list[dict[str, Any]]:
    """IDP evaluation records as {"id","prompt","reference","class"}; ids default to the line number."""

    def convert(line: int, record: dict[str, Any], fmt: str) -> dict[str, Any]:
        prompt, reference = _eval_pair(record, fmt, prompt_fn)
        ident = record.get("id")
        return {
            "id": str(line if ident is None else ident),
            "prompt": prompt,
            "reference": reference,
            "class": record_class(record),
            "groups": record_groups(record),
        }

    return _convert_all(records, eval_formats("IDP") + PREFERENCE, "an IDP evaluation record", convert, source)


def to_code_eval_examples(
    records: Records, prompt_fn: Callable[[str], str], *, source: str = "data"
) -> list[dict[str, Any]]:
    """HumanEval records as {"id","prompt","reference","class"}; the reference is the problem itself."""

    def convert(line: int, record: dict[str, Any], fmt: str) -> dict[str, Any]:
        problem = {key: record[key] for key in ("task_id", "prompt", "test", "entry_point")}
        return {
            "id": str(record["task_id"]),
            "prompt": as_messages(prompt_fn(record["prompt"]), "user"),
            "reference": problem,
            "class": record_class(record),
        }

    return _convert_all(records, ("humaneval",), "a HumanEval problem", convert, source)


def to_preference_examples(
    records: Records,
    prompt_fn: Callable[[str], str] | None = None,
    answer_fn: Callable[[Any], str] | None = None,
    *,
    source: str = "data",
) -> list[dict[str, Any]]:
    """{"prompt","chosen","rejected"} records as TRL conversational preference examples with a class.

    A string prompt goes through the task's `prompt_fn` (as in SFT and evaluation); an answer given as an object
    (IDP gold JSON) through `answer_fn`. Message lists are kept as they are.
    """

    def text_prompt(value: Any) -> Any:
        return prompt_fn(value) if prompt_fn is not None and isinstance(value, str) else value

    def answer(value: Any) -> Any:
        return answer_fn(value) if answer_fn is not None and isinstance(value, dict) else value

    def convert(line: int, record: dict[str, Any], fmt: str) -> dict[str, Any]:
        return {
            "prompt": as_messages(text_prompt(record["prompt"]), "user"),
            "chosen": as_messages(answer(record["chosen"]), "assistant"),
            "rejected": as_messages(answer(record["rejected"]), "assistant"),
            "class": record_class(record),
        }

    return _convert_all(records, ("preference",), "a preference record", convert, source)
