"""The evaluation step: generate for every eval example, score with the task, write the predictions table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import DataError
from llmops.evaluation.generate import generate
from llmops.evaluation.report import write_jsonl
from llmops.tasks.base import Task, class_of


@dataclass
class EvalReport:
    """Flat metrics (`field_f1`, `<class>/field_f1`, ...), a per-field breakdown and one row per example."""

    metrics: dict[str, float]
    per_field: dict[str, float] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)


def _prompt_text(messages: list[dict[str, str]]) -> str:
    """The prompt as readable text: the last user message, else all contents joined."""
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return users[-1] if users else "\n".join(m.get("content", "") for m in messages)


def evaluate(
    model: Any,
    tokenizer: Any,
    task: Task,
    examples: list[dict[str, Any]],
    settings: Any,
    predictions_path: Path | None = None,
) -> EvalReport:
    """Greedy-generate an answer for each example, score them with `task` and write the predictions table."""
    if settings.max_examples:
        examples = examples[: settings.max_examples]
    if not examples:
        raise DataError("the evaluation set is empty; give eval_data or a larger data file")
    prompts = [task.build_messages(example) for example in examples]
    references = [task.reference(example) for example in examples]
    classes = [class_of(example) for example in examples]
    outputs = generate(model, tokenizer, prompts, settings.batch_size, settings.max_new_tokens, desc="evaluating")
    rows = []
    for i, (example, output) in enumerate(zip(examples, outputs)):
        rows.append({
            "id": str(example.get("id", i)),
            "class": classes[i],
            "prompt": _prompt_text(prompts[i]),
            "output": output,
            "gold": references[i],
            **task.example_scores(output, references[i]),
        })
    report = EvalReport(
        metrics=task.score(outputs, references, classes),
        per_field=task.per_field(outputs, references),
        rows=rows,
    )
    if predictions_path is not None:
        write_jsonl(predictions_path, rows)
    return report
