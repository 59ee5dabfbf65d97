"""Format detection and conversion of every accepted record format to the internal example forms."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmops.data.formats import (
    detect_format,
    to_idp_eval_examples,
    to_preference_examples,
    to_sft_examples,
)
from llmops.errors import ConfigError, DataError

SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}}}


def prompt_fn(document: str) -> str:
    """The contract's IDP prompt (llmops.tasks.idp.IDPTask.build_prompt) for SCHEMA."""
    return (
        "Extract the fields from the document as JSON matching the schema. Answer with JSON only.\n"
        f"Fields: total\nDocument:\n{document}"
    )


def answer_fn(fields: Any) -> str:
    return json.dumps(fields, ensure_ascii=False)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"input": "a", "output": "b"}, "input_output"),
        ({"input": "a", "output": "b", "why": {}}, "input_output"),
        ({"input": "a", "teacher_output": "b"}, "input_teacher_output"),
        ({"prompt": "a", "completion": "b"}, "prompt_completion"),
        ({"messages": []}, "messages"),
        ({"document": "d", "fields": {}}, "document_fields"),
        ({"document": "d", "output": "{}"}, "document_output"),
        ({"prompt": "a", "chosen": "b", "rejected": "c"}, "preference"),
        ({"task_id": "t", "prompt": "p", "test": "x", "entry_point": "f"}, "humaneval"),
        ({"text": "a"}, "unknown"),
        ({"input": "a"}, "unknown"),
    ],
)
def test_detect_format(record: dict, expected: str) -> None:
    assert detect_format(record) == expected


def test_idp_seed_input_output_gets_the_idp_prompt_and_keeps_the_json_string() -> None:
    output = '{"total":  12.5, "why": {"total": "line 3"}}'
    [example] = to_sft_examples([(4, {"input": "INVOICE 7", "output": output})], "IDP", prompt_fn, answer_fn)
    assert example == {"prompt": user(prompt_fn("INVOICE 7")), "completion": assistant(output), "class": "all"}
    assert example["prompt"][0]["content"].endswith("Document:\nINVOICE 7")


def test_codegen_seed_record_gets_the_task_prompt_and_keeps_the_plan_and_code() -> None:
    from llmops.tasks.codegen import CodeGenTask

    build = CodeGenTask().build_prompt
    record = {"input": "Write add(a, b).", "output": "<PLAN>sum</PLAN>\n<CODE>def add(a, b): return a + b</CODE>"}
    [example] = to_sft_examples([record], "CodeGen", build, answer_fn)
    assert example["prompt"] == user("Write add(a, b).")  # prose: the task keeps it as is
    assert example["completion"] == assistant(record["output"])
    code = {"input": 'def f(x):\n    """Return x."""\n', "output": "    return x\n"}
    [example] = to_sft_examples([code], "CodeGen", build, answer_fn)
    assert example["prompt"] == user(build(code["input"]))  # the same wrapping as evaluation and predict
    assert example["prompt"][0]["content"].startswith("Complete the following Python function:")


def test_humaneval_record_trains_on_its_canonical_solution() -> None:
    problem = {
        "task_id": "t/1",
        "prompt": "def f():\n",
        "test": "",
        "entry_point": "f",
        "canonical_solution": "    return 1\n",
    }
    [example] = to_sft_examples([problem], "CodeGen", prompt_fn, answer_fn)
    assert example["completion"] == assistant("    return 1\n")
    with pytest.raises(DataError, match="canonical_solution"):
        to_sft_examples([{**problem, "canonical_solution": ""}], "CodeGen", prompt_fn, answer_fn)


def test_prompt_completion_strings_and_message_lists() -> None:
    records = [
        {"prompt": "Q?", "completion": "A.", "class": "faq"},
        {
            "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q2?"}],
            "completion": [{"role": "assistant", "content": "A2."}],
        },
    ]
    first, second = to_sft_examples(records, "IDP", prompt_fn, answer_fn)
    assert first == {"prompt": user("Q?"), "completion": assistant("A."), "class": "faq"}
    assert second["prompt"] == records[1]["prompt"] and second["prompt"] is not records[1]["prompt"]
    assert second["completion"] == assistant("A2.")


def test_messages_split_at_the_last_assistant_message() -> None:
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U2"},
        {"role": "assistant", "content": "A2"},
    ]
    [example] = to_sft_examples([{"messages": messages, "class": "chat"}], "CodeGen", prompt_fn, answer_fn)
    assert example["prompt"] == messages[:4]
    assert example["completion"] == [messages[4]]
    assert example["class"] == "chat"


def test_document_fields_use_the_task_prompt_and_answer() -> None:
    record = {"document": "Total: 9", "fields": {"total": 9, "note": "ü"}, "class": "receipt"}
    [example] = to_sft_examples([record], "IDP", prompt_fn, answer_fn)
    assert example["prompt"] == user(prompt_fn("Total: 9"))
    assert example["completion"] == assistant('{"total": 9, "note": "ü"}')
    assert example["class"] == "receipt"


def test_kd_teacher_output_is_the_completion() -> None:
    [example] = to_sft_examples([{"input": "doc", "teacher_output": '{"total": 1}'}], "IDP", prompt_fn, answer_fn)
    assert example["prompt"] == user(prompt_fn("doc"))
    assert example["completion"] == assistant('{"total": 1}')


def test_unconvertible_records_raise_with_every_line() -> None:
    records = [(1, {"input": "a", "output": "b"}), (2, {"text": "x"}), (5, {"document": "d", "fields": {}})]
    with pytest.raises(DataError) as info:
        to_sft_examples(records, "CodeGen", prompt_fn, answer_fn, source="train.jsonl")
    assert [p.split(": ")[0] for p in info.value.problems] == ["train.jsonl:2", "train.jsonl:5"]
    assert "expected one of" in info.value.problems[0]
    with pytest.raises(DataError, match=r"train.jsonl:1: cannot convert"):
        to_sft_examples([{"messages": assistant("only")}], "IDP", prompt_fn, answer_fn, source="train.jsonl")


def test_idp_eval_examples_from_every_gold_form() -> None:
    records = [
        (1, {"document": "D1", "fields": {"total": 1}, "class": "invoice", "id": "inv-1"}),
        (2, {"document": "D2", "output": '{"total": 2}'}),
        (3, {"input": "D3", "output": '{"total": 3}', "id": 33}),
        (4, {"prompt": "P4", "completion": '{"total": 4}'}),
        (5, {"messages": user("P5") + assistant('{"total": 5}')}),
        (6, {"prompt": "P6", "chosen": '{"total": 6}', "rejected": "no"}),
    ]
    examples = to_idp_eval_examples(records, prompt_fn)
    assert [e["id"] for e in examples] == ["inv-1", "2", "33", "4", "5", "6"]
    assert [e["reference"] for e in examples] == [{"total": n} for n in range(1, 7)]
    assert [e["class"] for e in examples] == ["invoice"] + ["all"] * 5
    assert examples[0]["prompt"] == user(prompt_fn("D1"))
    assert examples[2]["prompt"] == user(prompt_fn("D3"))
    assert examples[3]["prompt"] == user("P4") and examples[4]["prompt"] == user("P5")


def test_idp_eval_bad_gold_json_is_reported() -> None:
    records = [(7, {"document": "D", "output": "{total: 1}"}), (8, {"task_id": "t"})]
    with pytest.raises(DataError) as info:
        to_idp_eval_examples(records, prompt_fn, source="gold.jsonl")
    assert info.value.problems[0].startswith("gold.jsonl:7: the gold output is not valid JSON")
    assert info.value.problems[1].startswith("gold.jsonl:8: not an IDP evaluation record")


def test_preference_examples() -> None:
    records = [{"prompt": "Q", "chosen": "good", "rejected": "bad", "class": "c"}]
    assert to_preference_examples(records) == [
        {"prompt": user("Q"), "chosen": assistant("good"), "rejected": assistant("bad"), "class": "c"}
    ]
    with pytest.raises(DataError, match="data:1: not a preference record"):
        to_preference_examples([{"prompt": "Q", "completion": "A"}])


def test_accepted_formats_per_flow_train_and_role() -> None:
    from llmops.run_inputs import accepted_formats  # each method says which formats it reads

    assert "document_fields" in accepted_formats("IDP", "SFT", "train")
    assert "document_fields" not in accepted_formats("CodeGen", "SFT", "train")
    assert "input_teacher_output" in accepted_formats("idp", "kd", "train")
    assert "input_teacher_output" not in accepted_formats("IDP", "SFT", "train")
    # DPO reads preference pairs, or the flow's gold records to mine pairs from (dpo.pairs_from: self).
    assert accepted_formats("CodeGen", "DPO", "train") == ("preference", "humaneval")
    assert accepted_formats("CodeGen", "SFT", "eval") == ("humaneval",)
    with pytest.raises(ConfigError, match="flow_type must be IDP or CodeGen, got 'OCR'"):
        accepted_formats("OCR", "SFT", "train")
    with pytest.raises(ConfigError, match="train_type must be one of SFT, KD, DPO"):
        accepted_formats("IDP", "PPO", "train")


def test_conversion_with_the_real_idp_task() -> None:
    idp = pytest.importorskip("llmops.tasks.idp")
    task = idp.IDPTask(SCHEMA)
    record = {"document": "Total 3", "fields": {"total": 3}}
    [example] = to_sft_examples([record], "IDP", task.build_prompt, task.format_answer)
    assert example["prompt"] == user(prompt_fn("Total 3"))
    assert example["completion"] == assistant('{"total": 3}')
