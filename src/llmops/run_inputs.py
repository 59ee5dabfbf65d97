"""The validate step: config, data and schema checked and turned into a run's train/eval examples.

Nothing here loads a model: every mistake in the inputs is reported before any weights are read or a run folder is
written. `llmops.pipeline` runs it first; `llmops train` and the Kubeflow validate component too.
"""

from __future__ import annotations

import sys
from typing import Any

from llmops.config import RunConfig
from llmops.errors import ConfigError, DataError
from llmops.methods import registry
from llmops.methods.base import Prepared  # noqa: F401 - where the pipeline and the steps import it from


def make_task(cfg: RunConfig) -> Any:
    """The task object for the run's flow type (llmops.tasks.registry)."""
    from llmops.tasks.registry import make_task as build

    return build(cfg)


def eval_examples(cfg: RunConfig, task: Any, records: list) -> list[dict]:
    """Evaluation records as eval examples of the run's task, at most val_per_class of each class."""
    from llmops.data.splits import select_per_class

    return select_per_class(task.eval_examples(records), cfg.val_per_class, cfg.training.seed)


def accepted_formats(flow_type: str, train_type: str, role: str) -> tuple[str, ...]:
    """The record formats a file may use for this flow, training method and role ("train" or "eval")."""
    method = registry.get(train_type)
    if role not in ("train", "eval"):
        raise ConfigError(f"role must be train or eval, got {role!r}")
    return method.train_formats(flow_type) if role == "train" else method.eval_formats(flow_type)


def validate_file(
    location: str, flow_type: str, train_type: str, schema: dict | None = None, role: str = "train"
) -> list[str]:
    """Every problem in the file as `FILE:LINE: what is wrong`, for the formats `train_type` accepts."""
    from llmops.data import validate as data_validate

    accepted = accepted_formats(flow_type, train_type, role)
    return data_validate.validate_file(location, flow_type, accepted, schema, role, registry.get(train_type).name)


def validate_records(
    location: str, records: list, flow_type: str, train_type: str, schema: dict | None = None, role: str = "train"
) -> list[str]:
    """Every problem in already-read records, for the formats `train_type` accepts."""
    from llmops.data import validate as data_validate

    accepted = accepted_formats(flow_type, train_type, role)
    return data_validate.validate_records(
        location, records, flow_type, accepted, schema, role, registry.get(train_type).name
    )


def _check_supported(cfg: RunConfig) -> None:
    if not cfg.data:
        raise ConfigError("data: no training data given; pass --data FILE or set `data:` in the config")
    unused = {
        "host": "it is where Kubeflow pipelines are submitted, not used by a local run",
        "offload_folder": "weight offloading is not supported by this release's loader",
        "prompt": "it is only used by CodeGen",
        "document": "it is only used by IDP",
    }
    from llmops.tasks.registry import task_class

    unused.pop(task_class(cfg.flow_type).input_key)
    method = registry.get(cfg.train_type)
    for other in registry.all_methods():
        if other is not method:
            unused.update(
                {
                    key: f"it is only used by train_type {other.name}"
                    for key in other.own_keys
                    if key not in method.own_keys
                }
            )
    for key, why in unused.items():
        if getattr(cfg, key):
            print(f"warning: {key} is set but ignored: {why}", file=sys.stderr)


def load_checked(location: str, cfg: RunConfig, task: Any, role: str) -> list[tuple[int, dict]]:
    from llmops.data.documents import inline_files
    from llmops.data.io import scan_records

    scanned = scan_records(location)
    records, file_problems = inline_files(scanned.records, location)
    problems = (
        scanned.problem_lines()
        + file_problems
        + validate_records(location, records, cfg.flow_type, cfg.train_type, task.schema, role=role)
    )
    if problems:
        noun = "problem" if len(problems) == 1 else "problems"
        raise DataError(f"{location}: {len(problems)} {noun} found; fix them and run again", problems)
    return records


def _check_testable(cfg: RunConfig, eval_records: list) -> None:
    """CodeGen is judged by running tests: without eval_data the held-out part of `data` must carry them."""
    from llmops.data.formats import detect_format, numbered
    from llmops.tasks.registry import task_class

    if not task_class(cfg.flow_type).judged_by_tests:
        return
    for line, record in numbered(eval_records):
        if detect_format(record) != "humaneval":
            raise ConfigError(
                f"{cfg.data}:{line}: CodeGen evaluation runs each problem's tests, and this record has "
                'none; pass --eval_data with HumanEval records {"task_id","prompt","test","entry_point"}'
            )


def validate(cfg: RunConfig) -> Prepared:
    """Check config, data and schema; build train and eval examples. Raises before any model loads."""
    from llmops.data.splits import train_eval_split

    method = registry.get(cfg.train_type)
    _check_supported(cfg)
    task = make_task(cfg)
    records = load_checked(cfg.data, cfg, task, "train")
    pairs: list = []
    if method.holds_out(cfg):
        records, pairs = train_eval_split(records, cfg.eval.eval_fraction, cfg.training.seed)
    if cfg.eval_data:
        eval_records = load_checked(cfg.eval_data, cfg, task, "eval")
    elif pairs:
        eval_records = pairs  # IDP: the held-out pairs' chosen answers are the gold
        _check_testable(cfg, eval_records)
    else:
        records, eval_records = train_eval_split(records, cfg.eval.eval_fraction, cfg.training.seed)
        _check_testable(cfg, eval_records)
    prepared = Prepared(
        task=task, train=method.train_examples(cfg, task, records), eval=eval_examples(cfg, task, eval_records)
    )
    if cfg.eval.max_examples:
        prepared.eval = prepared.eval[: cfg.eval.max_examples]
    if not prepared.train:
        raise DataError(f"{cfg.data}: no training examples")
    if pairs:
        from llmops.data.formats import to_preference_examples

        prepared.pairs = to_preference_examples(pairs, task.build_prompt, task.format_answer, source=cfg.data)
    method.check(cfg, prepared, records)
    return prepared


def training_examples(location: str, flow_type: str = "IDP", schema: str | None = None) -> list[dict]:
    """The prompt-completion examples a data file gives SFT (checked like a run's training data): calibration data
    for `llmops prune`."""
    from llmops.config import build_config

    cfg = build_config(flags={"flow_type": flow_type, "train_type": "SFT", "data": location, "schema": schema})
    task = make_task(cfg)
    return registry.get("SFT").train_examples(cfg, task, load_checked(location, cfg, task, "train"))
