"""Dataset validation: every bad-input kind reported as `FILE:LINE: what is wrong`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops.errors import DataError
from llmops.run_inputs import validate_file, validate_records  # the formats of the method named

INVOICE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "total_amount": {"type": "number"},
        "currency": {"type": "string"},
        "line_items": {
            "type": "array",
            "items": {"type": "object", "properties": {"qty": {"type": "number"}}, "required": ["qty"]},
        },
    },
    "required": ["invoice_number", "total_amount"],
}
GOOD = {"invoice_number": "A-1", "total_amount": 10.5, "currency": "EUR", "line_items": [{"qty": 1}]}


def _jsonl(path: Path, lines: list[object]) -> str:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_clean_seed_files_have_no_problems(tmp_path: Path) -> None:
    seed = {"input": "Invoice A-1 ...", "output": json.dumps({**GOOD, "why": {"total_amount": "line 9"}})}
    name = _jsonl(tmp_path / "idp.jsonl", [seed, {"document": "d", "fields": GOOD, "class": "invoice"}])
    assert validate_file(name, "IDP", "SFT", INVOICE_SCHEMA) == []
    kd = _jsonl(tmp_path / "kd.jsonl", [{"input": "Write f.", "teacher_output": "<CODE>def f(): pass</CODE>"}])
    assert validate_file(kd, "CodeGen", "KD") == []
    dpo = _jsonl(tmp_path / "dpo.jsonl", [{"prompt": "Write f.", "chosen": "def f(): 1", "rejected": "f"}])
    assert validate_file(dpo, "CodeGen", "DPO") == []


def test_every_problem_kind_in_one_idp_file(tmp_path: Path) -> None:
    lines: list[object] = [
        {"input": "doc", "output": json.dumps(GOOD)},  # 1 clean
        '{"input": "doc", "output": ',  # 2 bad JSON
        "[1, 2]",  # 3 not an object
        {"text": "doc", "label": "x"},  # 4 unknown format
        {"input": "doc"},  # 5 missing field
        {"input": "doc", "output": GOOD},  # 6 output must be a string
        {"input": "doc", "output": json.dumps({**GOOD, "total_amount": "abc"})},  # 7 schema violation
        {"document": "doc", "fields": "not an object"},  # 8 fields must be an object
        {"input": "   ", "output": json.dumps(GOOD)},  # 9 empty text
        {"input": "doc", "output": "total is 10"},  # 10 output does not parse
        {"prompt": "p", "chosen": "a", "rejected": "b"},  # 11 a DPO record in SFT data
        {"document": "doc", "fields": {"invoice_number": "A", "total_amount": 1, "line_items": [{}]}},  # 12 nested
        {"input": "doc", "output": json.dumps(GOOD), "class": ""},  # 13 empty class
    ]
    name = _jsonl(tmp_path / "data.jsonl", lines)
    problems = validate_file(name, "IDP", "SFT", INVOICE_SCHEMA)
    expected_any = (
        '{"input","output"}, {"prompt","completion"}, {"messages"}, {"document","fields"}, {"document","output"}'
    )
    assert problems == [
        f"{name}:2: not valid JSON: Expecting value at column 28",
        f"{name}:3: a record must be a JSON object, got an array",
        f'{name}:4: unknown record format: it has "text", "label"; expected one of {expected_any}',
        f'{name}:5: missing field "output" (a {{"input","output"}} record; it has "input")',
        f'{name}:6: "output" must be a string, got an object (JSON text); for JSON objects use {{"document","fields"}}',
        f"{name}:7: gold JSON violates the schema at total_amount: 'abc' is not of type 'number'",
        f'{name}:8: "fields" must be an object, got a string',
        f'{name}:9: "input" is empty',
        f'{name}:10: "output" should be JSON for IDP but does not parse: Expecting value at column 1',
        f'{name}:11: a {{"prompt","chosen","rejected"}} record is not accepted in IDP SFT training data; '
        f"expected one of {expected_any}",
        f"{name}:12: gold JSON violates the schema at line_items[0]: 'qty' is a required property",
        f'{name}:13: "class" must be a non-empty string, got a string',
    ]


def test_non_utf8_line_is_reported_with_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(
        b'{"prompt": "p", "completion": "c"}\n{"prompt": "\xff", "completion": "c"}\n{"prompt": 3, "completion": "c"}\n'
    )
    assert validate_file(str(path), "CodeGen", "SFT") == [
        f"{path}:2: not valid UTF-8 (byte 0xff at column 13); save the file as UTF-8",
        f'{path}:3: "prompt" must be a string or a list of messages, got a number',
    ]


def test_file_level_problems(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.jsonl")
    assert validate_file(missing, "IDP", "SFT") == [f"{missing}: not found"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert validate_file(str(empty), "IDP", "SFT") == [
        f"{empty}: the file is empty; expected JSON Lines records, one object per line"
    ]


def test_message_lists_are_checked() -> None:
    records = [
        (1, {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}),
        (2, {"messages": [{"role": "user", "content": "q"}]}),
        (3, {"messages": [{"role": "bot", "content": "q"}, {"role": "assistant", "content": 5}]}),
        (4, {"messages": "hello"}),
        (5, {"messages": [{"role": "assistant", "content": "a"}]}),
        (6, {"prompt": "q", "completion": [{"role": "user", "content": "a"}]}),
    ]
    assert validate_records("chat.jsonl", records, "CodeGen", "SFT") == [
        'chat.jsonl:2: the last of "messages" must be an assistant message (the completion to learn)',
        "chat.jsonl:3: \"messages[0].role\" must be one of system, user, assistant, tool, developer, got 'bot'",
        'chat.jsonl:3: "messages[1].content" must be a string, got a number',
        'chat.jsonl:4: "messages" must be a string or a list of messages, got a string',
        'chat.jsonl:5: "messages" needs a user message before the assistant message',
        'chat.jsonl:6: "completion[0].role" must be "assistant", got "user"',
    ]


def test_idp_chat_completion_must_be_gold_json() -> None:
    records = [{"messages": [{"role": "user", "content": "doc"}, {"role": "assistant", "content": "{bad"}]}]
    [problem] = validate_records("c.jsonl", records, "IDP", "SFT")
    assert problem.startswith("c.jsonl:1: the last assistant message should be JSON for IDP but does not parse")
    number = validate_records("c.jsonl", [{"prompt": "doc", "completion": "42"}], "IDP", "SFT")
    assert number == ['c.jsonl:1: "completion" must be a JSON object for IDP, got a number']


def test_dpo_records() -> None:
    records = [
        {"prompt": "q", "chosen": "a", "rejected": "b"},
        {"prompt": "q", "chosen": "a", "rejected": "a"},
        {
            "prompt": [{"role": "user", "content": "q"}],
            "chosen": [{"role": "assistant", "content": "x"}],
            "rejected": "",
        },
        {"prompt": "q", "completion": "a"},
        {"prompt": "q", "chosen": "a"},
    ]
    assert validate_records("p.jsonl", records, "CodeGen", "DPO") == [
        'p.jsonl:2: "chosen" and "rejected" are identical; a preference pair needs two different answers',
        'p.jsonl:3: "rejected" is empty',
        'p.jsonl:4: a {"prompt","completion"} record is not accepted in CodeGen DPO training data; '
        'expected one of {"prompt","chosen","rejected"}, {"task_id","prompt","test","entry_point"}',
        'p.jsonl:5: missing field "rejected" (a {"prompt","chosen","rejected"} record; it has "prompt", "chosen")',
    ]


def test_idp_dpo_chosen_is_checked_against_the_schema() -> None:
    record = {"prompt": "doc", "chosen": json.dumps({"invoice_number": 5, "total_amount": 1}), "rejected": "x"}
    assert validate_records("p.jsonl", [record], "IDP", "DPO", INVOICE_SCHEMA) == [
        "p.jsonl:1: gold JSON violates the schema at invoice_number: 5 is not of type 'string'"
    ]


def test_idp_eval_records() -> None:
    records = [
        (1, {"document": "d", "fields": GOOD, "id": "a"}),
        (2, {"document": "d", "output": json.dumps(GOOD), "id": "a"}),
        (3, {"document": "d", "output": json.dumps({"total_amount": 1})}),
        (4, {"document": "d", "fields": GOOD, "id": [1]}),
        (5, {"task_id": "t", "prompt": "p", "test": "t", "entry_point": "f"}),
    ]
    problems = validate_records("gold.jsonl", records, "IDP", "SFT", INVOICE_SCHEMA, role="eval")
    assert problems[:4] == [
        'gold.jsonl:2: duplicate id "a" (first used on line 1)',
        "gold.jsonl:3: gold JSON violates the schema: 'invoice_number' is a required property",
        'gold.jsonl:4: "id" must be a string or an integer, got an array',
        'gold.jsonl:5: a {"task_id","prompt","test","entry_point"} record is not accepted in IDP SFT evaluation data; '
        'expected one of {"document","fields"}, {"document","output"}, {"input","output"}, '
        '{"input","teacher_output"}, {"prompt","completion"}, {"messages"}',
    ]
    assert len(problems) == 4


def test_codegen_eval_needs_humaneval_records() -> None:
    records = [
        {"task_id": "HumanEval/0", "prompt": "def f():\n", "test": "def check(c): pass", "entry_point": "f"},
        {"task_id": "HumanEval/1", "prompt": "def g():\n", "test": "", "entry_point": "not a name"},
        {"task_id": "HumanEval/2", "prompt": "def h():\n", "test": "x"},
        {"task_id": "HumanEval/0", "prompt": "p", "test": "t", "entry_point": "f", "canonical_solution": 1},
    ]
    assert validate_records("he.jsonl", records, "CodeGen", "SFT", role="eval") == [
        'he.jsonl:2: "test" is empty',
        "he.jsonl:2: \"entry_point\" must be a Python function name, got 'not a name'",
        'he.jsonl:3: missing field "entry_point" (a {"task_id","prompt","test","entry_point"} record; '
        'it has "task_id", "prompt", "test")',
        'he.jsonl:4: "canonical_solution" must be a string, got a number',
        'he.jsonl:4: duplicate id "HumanEval/0" (first used on line 1)',
    ]


def test_invalid_schema_is_one_clear_error(tmp_path: Path) -> None:
    name = _jsonl(tmp_path / "d.jsonl", [{"input": "d", "output": "{}"}])
    expected = r"^the JSON Schema is invalid at properties\.total\.type: 'money' is not valid"
    with pytest.raises(DataError, match=expected):
        validate_file(name, "IDP", "SFT", {"type": "object", "properties": {"total": {"type": "money"}}})


def test_plain_record_lists_are_numbered_from_one() -> None:
    records = [{"input": "a", "output": "b"}, {"input": 1, "output": "b"}]
    problems = validate_records("x.jsonl", records, "CodeGen", "SFT")
    assert problems == ['x.jsonl:2: "input" must be a string, got a number']
