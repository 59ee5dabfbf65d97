"""Preference pairs mined from a model's own answers: sample n answers per prompt, judge them with the task's
training reward, keep the best and the worst answer of each prompt whose answers scored differently.

What `llmops mine-pairs` writes and what DPO with `dpo.pairs_from: self` trains on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from llmops.config import RunConfig
from llmops.errors import ConfigError

MIN_SAMPLES = 2


def reward_kwargs(cfg: RunConfig) -> dict[str, Any]:
    """The reward weights a run uses (the `grpo` section), as keyword arguments of the task's `rewards`."""
    from llmops.tasks.registry import task_class

    task = task_class(cfg.flow_type)
    kwargs = task.reward_kwargs(cfg.grpo)
    if task.judged_by_tests:  # a progress bar while the sampled programs run
        kwargs["desc"] = "running the answers' tests"
    return kwargs


def check_samples(samples: int, where: str = "--samples") -> None:
    """ConfigError unless at least two answers per prompt are sampled (one answer has nothing to compare with)."""
    if samples < MIN_SAMPLES:
        raise ConfigError(
            f"{where} {samples}: mining pairs compares answers to the same prompt, so it needs at "
            f"least {MIN_SAMPLES}; use 4 or more"
        )


def _best_and_worst(rewards: list[float]) -> tuple[int, int]:
    """Indices of the highest and the lowest reward, the first sample winning ties."""
    best = max(range(len(rewards)), key=lambda i: (rewards[i], -i))
    worst = min(range(len(rewards)), key=lambda i: (rewards[i], i))
    return best, worst


def _pair(example: dict[str, Any], answers: list[str], rewards: list[float]) -> dict[str, Any] | None:
    """The example's preference pair (best answer chosen, worst rejected), None when every answer scored alike."""
    best, worst = _best_and_worst(rewards)
    if rewards[best] == rewards[worst] or answers[best] == answers[worst]:
        return None
    return {
        "prompt": example["prompt"],
        "chosen": answers[best],
        "rejected": answers[worst],
        "class": example.get("class", "all"),
        "chosen_reward": rewards[best],
        "rejected_reward": rewards[worst],
    }


def _summary(prompts: int, samples: int, pairs: int, rewards: list[float], seconds: float) -> dict[str, Any]:
    return {
        "prompts": prompts,
        "samples_per_prompt": samples,
        "pairs": pairs,
        "mean_reward": sum(rewards) / len(rewards) if rewards else 0.0,
        "full_reward_share": sum(r == 1.0 for r in rewards) / len(rewards) if rewards else 0.0,
        "seconds": seconds,
    }


def mine_pairs(
    model: Any,
    tokenizer: Any,
    task: Any,
    examples: list[dict[str, Any]],
    samples: int,
    temperature: float,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    reward_kwargs: dict[str, Any] | None = None,
    constrained: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Pairs `{"prompt","chosen","rejected","class","chosen_reward","rejected_reward"}` from `samples` answers to
    each eval example `{"prompt","reference","class"}`, judged by `task.rewards` (one call: CodeGen runs every
    answer in parallel), and a summary: prompts, samples_per_prompt, pairs, mean_reward, full_reward_share,
    seconds. IDP answers are sampled under the schema (unless `constrained` is false): every one parses, so pairs
    differ by what they extract, not by broken JSON."""
    from types import SimpleNamespace

    from llmops.evaluation.eval_set import decoding
    from llmops.evaluation.generate import sample

    check_samples(samples, "samples")
    if temperature <= 0:
        raise ConfigError(f"temperature {temperature}: sampling needs a temperature above 0 (e.g. 1.0)")
    start = time.perf_counter()
    grammar, max_new_tokens = decoding(
        model, tokenizer, task, SimpleNamespace(max_new_tokens=max_new_tokens, constrained=constrained)
    )
    answers = sample(
        model,
        tokenizer,
        [ex["prompt"] for ex in examples],
        samples,
        batch_size,
        max_new_tokens,
        temperature,
        seed=seed,
        desc="sampling answers to mine pairs",
        grammar=grammar,
    )
    flat = [answer for group in answers for answer in group]
    references = [ex["reference"] for ex in examples for _ in range(samples)]
    rewards = task.rewards(flat, references, **(reward_kwargs or {})) if flat else []
    pairs = []
    for i, example in enumerate(examples):
        pair = _pair(example, answers[i], rewards[i * samples : (i + 1) * samples])
        if pair is not None:
            pairs.append(pair)
    return pairs, _summary(len(examples), samples, len(pairs), rewards, time.perf_counter() - start)


def write_pairs(path: str | Path, pairs: list[dict[str, Any]]) -> Path:
    """Write `pairs` as JSON Lines to a local `path`, atomically (temp file, then os.replace)."""
    from llmops.evaluation.report import write_jsonl

    if "://" in str(path):
        raise ConfigError(f"{path}: mined pairs are written to a local path; copy the file to object storage after")
    return write_jsonl(path, pairs)
