"""CodeGen task: prompt styles, code extraction, the program that is run, and pass@k through the real sandbox."""

from __future__ import annotations

import math

import pytest

from llmops.tasks.codegen import COMPLETE_INSTRUCTION, CodeGenTask, extract_code, full_code, is_code_prompt, program_for

PROBLEM = {
    "task_id": "t/0",
    "prompt": 'import math\n\n\ndef add_k(x: int):\n    """Return x plus 3."""\n',
    "test": "def check(candidate):\n    assert candidate(1) == 4\n    assert candidate(-3) == 0\n",
    "entry_point": "add_k",
}
PROSE = {
    "task_id": "t/1",
    "prompt": "Write a function triple(x) that returns three times x.",
    "test": "def check(candidate):\n    assert candidate(2) == 6\n",
    "entry_point": "triple",
}


def test_prompt_styles() -> None:
    task = CodeGenTask()
    assert is_code_prompt(PROBLEM["prompt"]) and not is_code_prompt(PROSE["prompt"])
    assert task.build_prompt(PROBLEM["prompt"]) == (
        f"{COMPLETE_INSTRUCTION}\n```python\n{PROBLEM['prompt'].rstrip()}\n```"
    )
    assert task.build_prompt(PROSE["prompt"]) == PROSE["prompt"]


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ("Sure:\n```python\ndef f():\n    return 1\n```\nDone.", "def f():\n    return 1\n"),
        ("```py\nx = 1\n```\ntext\n```python\ny = 2\n```", "x = 1\ny = 2\n"),
        ("<PLAN>add</PLAN>\n<CODE>\ndef f():\n    return 2\n</CODE>", "def f():\n    return 2\n"),
        ("```python\ndef f():\n    return 3", "def f():\n    return 3\n"),  # truncated fence
        ("    return x + 3", "    return x + 3\n"),
    ],
)
def test_extract_code(answer: str, code: str) -> None:
    assert extract_code(answer) == code


def test_program_for_body_whole_function_and_prose() -> None:
    body = program_for(PROBLEM, "    return x + 3\n")
    assert body.startswith(PROBLEM["prompt"] + "    return x + 3\n") and body.rstrip().endswith("check(add_k)")
    flush_left = program_for(PROBLEM, "return x + 3")
    assert PROBLEM["prompt"] + "    return x + 3\n" in flush_left
    whole = program_for(PROBLEM, "```python\ndef add_k(x):\n    return math.floor(x) + 3\n```")
    assert "    pass\n\ndef add_k(x):" in whole
    prose = program_for(PROSE, "```python\ndef triple(x):\n    return 3 * x\n```")
    assert not prose.startswith("Write") and prose.rstrip().endswith("check(triple)")


def test_full_code_for_a_user() -> None:
    assert full_code(PROBLEM["prompt"], "    return x + 3") == PROBLEM["prompt"] + "    return x + 3\n"
    assert full_code(PROSE["prompt"], "```python\ndef triple(x):\n    return 3 * x\n```") == (
        "def triple(x):\n    return 3 * x\n"
    )


def test_score_runs_tests_per_class() -> None:
    task = CodeGenTask(timeout=2.0, workers=2)
    answers = [
        "    return x + 3",
        "```python\ndef add_k(x):\n    return math.floor(x) + 3\n```",
        "    return x + 4",
        "```python\ndef triple(x):\n    return 3 * x\n```",
        "    while True: pass",
    ]
    refs = [PROBLEM, PROBLEM, PROBLEM, PROSE, PROBLEM]
    classes = ["a", "a", "b", "b", "b"]
    metrics = task.score(answers, refs, classes)
    assert metrics["pass_at_1"] == pytest.approx(3 / 5)
    assert metrics["a/pass_at_1"] == 1.0 and metrics["b/pass_at_1"] == pytest.approx(1 / 3)
    row = task.example_scores(answers[4], PROBLEM)
    assert row["passed"] is False and row["result"] == "timed out"
    wrong = task.example_scores(answers[2], PROBLEM)
    assert wrong["result"].startswith("failed: ") and wrong["code"] == "    return x + 4\n"


def test_score_samples_unbiased_pass_at_k() -> None:
    task = CodeGenTask(timeout=2.0, workers=2)
    good, bad = "    return x + 3", "    return x"
    samples = [[good, bad, bad, bad], [bad, bad, bad, bad], [good, good, bad, good]]
    metrics = task.score_samples(samples, [PROBLEM] * 3, ["a", "a", "b"], [2, 4, 5])
    expected_2 = [1 - math.comb(4 - c, 2) / math.comb(4, 2) for c in (1, 0, 3)]
    assert metrics["pass_at_2"] == pytest.approx(sum(expected_2) / 3)
    assert metrics["pass_at_4"] == pytest.approx(2 / 3)
    assert metrics["b/pass_at_2"] == pytest.approx(1.0)
    assert "pass_at_5" not in metrics  # n = 4 < 5: not reported
