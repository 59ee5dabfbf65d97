"""Training rewards (GRPO, mined pairs) by hand: CodeGen through the real sandbox, IDP field F1 + schema term."""

from __future__ import annotations

import pytest

from llmops.tasks.codegen import CodeGenTask
from llmops.tasks.idp import IDPTask

PROBLEM = {
    "task_id": "t/0",
    "prompt": 'def add_k(x: int):\n    """Return x plus 3."""\n',
    "test": "def check(candidate):\n    assert candidate(1) == 4\n    assert candidate(-3) == 0\n",
    "entry_point": "add_k",
}
PASSING = "```python\n    return x + 3\n```"
FAILING = "    return x + 4\n"
UNPARSABLE = "    return (x + \n"
HOSTILE = [
    "    while True:\n        pass\n",  # never ends: killed at the timeout
    "    import os\n    os._exit(0)\n",  # exits before the tests run: not a pass
    "    print('x' * 10**8)\n",  # floods the output: killed at the output limit
    "    import os\n    while True:\n        os.fork()\n",  # fork bomb: bounded by the process limit, then killed
    "    open('/tmp/pwned', 'w').write('x')\n    return x + 3\n",  # passes, but writes only in its own tmpfs
]


@pytest.fixture(scope="module")
def codegen() -> CodeGenTask:
    return CodeGenTask(timeout=2.0)


def test_codegen_reward_is_pass_or_fail(codegen: CodeGenTask) -> None:
    answers = [PASSING, FAILING, UNPARSABLE, "", "I cannot do that."]
    assert codegen.rewards(answers, [PROBLEM] * len(answers)) == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_codegen_format_term_only_for_code_that_compiles_and_runs(codegen: CodeGenTask) -> None:
    answers = [PASSING, FAILING, UNPARSABLE, "    return undefined_name\n"]
    assert codegen.rewards(answers, [PROBLEM] * 4, format_reward=0.2) == [1.0, 0.2, 0.0, 0.2]


def test_hostile_answers_are_contained_and_score_zero(codegen: CodeGenTask) -> None:
    rewards = codegen.rewards(HOSTILE, [PROBLEM] * len(HOSTILE))
    # the last one passes its tests; writing a file is contained by the sandbox, not a failure
    assert rewards == [0.0, 0.0, 0.0, 0.0, 1.0]
    # with a format term, a run killed for time, exit or output still scores nothing
    shaped = codegen.rewards(HOSTILE[:3], [PROBLEM] * 3, format_reward=0.2)
    assert shaped == [0.0, 0.0, 0.0]


def test_codegen_rewards_check_their_arguments(codegen: CodeGenTask) -> None:
    with pytest.raises(ValueError, match="format_reward"):
        codegen.rewards([PASSING], [PROBLEM], format_reward=1.0)
    with pytest.raises(ValueError):
        codegen.rewards([PASSING, FAILING], [PROBLEM])


SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "string"}, "date": {"type": "string"}},
    "required": ["total", "date"],
    "additionalProperties": False,
}
GOLD = {"total": "12.50", "date": "2024-01-02", "vendor": "Acme"}


def test_idp_reward_exact_partial_invalid() -> None:
    task = IDPTask()  # no schema: any JSON counts as valid
    exact = '{"total": "12.50", "date": "2024-01-02", "vendor": "Acme"}'
    partial = '{"total": "12.50", "date": "2024-01-03"}'  # TP 1, FP 1, FN 2: F1 = 1 / (1 + 1.5) = 0.4
    rewards = task.rewards([exact, partial, '{"total": "12.50"', "no json here"], [GOLD] * 4, schema_weight=0.1)
    assert rewards == pytest.approx([1.0, 0.9 * 0.4 + 0.1, 0.0, 0.0])


def test_idp_schema_term() -> None:
    task = IDPTask(SCHEMA)
    gold = {"total": "12.50", "date": "2024-01-02"}
    valid = '{"total": "12.50", "date": "2024-01-02"}'
    invalid = '{"total": 12.5, "date": "2024-01-02"}'  # a number, not a string: 12.5 is not "12.50" either
    wrong_type = '{"total": "12.50", "date": "2024-01-02", "extra": "x"}'  # extra key: schema-invalid, FP 1
    rewards = task.rewards([valid, invalid, wrong_type], [gold] * 3, schema_weight=0.25)
    assert rewards[0] == pytest.approx(1.0)
    assert rewards[1] == pytest.approx(0.75 * (1 / (1 + 0.5 * 2)))  # TP 1 (date), FP 1, FN 1
    assert rewards[2] == pytest.approx(0.75 * (2 / (2 + 0.5)))  # TP 2, FP 1, schema-invalid
    assert task.rewards([valid], [gold], schema_weight=0.0) == [1.0]
    with pytest.raises(ValueError, match="schema_weight"):
        task.rewards([valid], [gold], schema_weight=1.5)
