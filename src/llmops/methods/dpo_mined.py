"""DPO on pairs mined from the model itself (`dpo.pairs_from: self`): which records the data must hold, and the
pairs mined once from the starting model before training (kept beside the checkpoints, so a resumed run reuses
them instead of mining again)."""

from __future__ import annotations

import logging
import random
import sys
from pathlib import Path
from typing import Any

from llmops.config import RunConfig
from llmops.errors import DataError, ModelError
from llmops.methods.base import OnLog

log = logging.getLogger(__name__)

MINED_FILE = "mined_pairs.jsonl"


def check_pairs_from(cfg: RunConfig, records: list) -> None:
    """DataError naming the first record whose kind does not match `dpo.pairs_from`, and the setting to change."""
    from llmops.data.formats import detect_format, numbered

    mined = cfg.dpo.pairs_from == "self"
    for line, record in numbered(records):
        is_pair = detect_format(record) == "preference"
        if is_pair and mined:
            raise DataError(
                f"{cfg.data}:{line}: a {{prompt,chosen,rejected}} pair, but dpo.pairs_from is self "
                "(pairs are mined from the model; the data hold gold records or problems with tests); "
                "set dpo.pairs_from: data to train on the file's pairs"
            )
        if not is_pair and not mined:
            raise DataError(
                f"{cfg.data}:{line}: not a {{prompt,chosen,rejected}} pair, and dpo.pairs_from is data; "
                "set dpo.pairs_from: self to mine pairs from the model on gold records or problems "
                "with tests"
            )


def gold_examples(cfg: RunConfig, task: Any, records: list) -> list[dict]:
    """Gold records / problems as {"id","prompt","reference","class"}: the prompts to mine and their judges."""
    return task.eval_examples(records, source=cfg.data or "data")


def mined_path(output_dir: Path) -> Path:
    """Where a run keeps its mined pairs: beside its checkpoints folder."""
    return Path(output_dir).parent / MINED_FILE


def _read_pairs(path: Path, task: Any) -> list[dict]:
    from llmops.data.formats import to_preference_examples
    from llmops.data.io import read_records

    return to_preference_examples(read_records(str(path)), task.build_prompt, task.format_answer, source=str(path))


def mined_examples(
    cfg: RunConfig,
    task: Any,
    examples: list[dict],
    model: Any,
    tokenizer: Any,
    output_dir: Path,
    on_log: OnLog | None = None,
) -> list[dict]:
    """Preference examples mined from `model` on the gold `examples` (written to mined_pairs.jsonl beside
    `output_dir`), or read back from that file when an earlier attempt of the run wrote it."""
    from llmops.evaluation.pairs import mine_pairs, reward_kwargs, write_pairs

    path = mined_path(output_dir)
    if path.is_file():
        pairs = _read_pairs(path, task)
        log.info("reusing %d mined pairs from %s", len(pairs), path)
        if on_log is not None:
            on_log({"step": 0, "mined_pairs": len(pairs)})
        return pairs
    d = cfg.dpo
    if d.mine_max_prompts and len(examples) > d.mine_max_prompts:
        examples = random.Random(cfg.training.seed).sample(examples, d.mine_max_prompts)
    pairs, summary = mine_pairs(
        model,
        tokenizer,
        task,
        examples,
        d.mine_samples,
        d.mine_temperature,
        d.mine_max_new_tokens,
        cfg.eval.batch_size,
        cfg.training.seed,
        reward_kwargs(cfg),
        constrained=cfg.eval.constrained,
    )
    print(
        f"mined {summary['pairs']} pairs from {summary['prompts']} prompts x {d.mine_samples} answers: mean reward "
        f"{summary['mean_reward']:.3f}, {100 * summary['full_reward_share']:.0f}% of answers at 1.0 "
        f"({summary['seconds']:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    if on_log is not None:
        on_log(
            {
                "step": 0,
                "mined_pairs": summary["pairs"],
                "mined_mean_reward": summary["mean_reward"],
                "mined_full_reward_share": summary["full_reward_share"],
            }
        )
    if not pairs:
        raise ModelError(
            f"dpo.pairs_from self: no pair mined from {summary['prompts']} prompts: all "
            f"{d.mine_samples} answers to each prompt scored alike; raise dpo.mine_temperature or "
            "dpo.mine_samples, or start from a model that solves some of the task"
        )
    write_pairs(path, pairs)
    return _read_pairs(path, task)
