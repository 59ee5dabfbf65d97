"""The evaluation step: generate for every eval example, score with the task, write the predictions table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import DataError
from llmops.evaluation.generate import generate, sample
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


def _sampled_metrics(model: Any, tokenizer: Any, task: Task, prompts: list, references: list, classes: list[str],
                     settings: Any) -> dict[str, float]:
    """pass_at_<k> for k > 1 from `num_samples` sampled answers, for tasks that score samples (CodeGen)."""
    ks = [k for k in getattr(settings, "pass_k", []) if 1 < k <= settings.num_samples]
    if settings.num_samples <= 1 or not ks or not hasattr(task, "score_samples"):
        return {}
    samples = sample(model, tokenizer, prompts, settings.num_samples, settings.batch_size, settings.max_new_tokens,
                     settings.temperature, settings.top_p)
    return task.score_samples(samples, references, classes, ks)


def evaluate(
    model: Any,
    tokenizer: Any,
    task: Task,
    examples: list[dict[str, Any]],
    settings: Any,
    predictions_path: Path | None = None,
) -> EvalReport:
    """Greedy-generate an answer for each example (and samples for pass@k), score them, write the predictions."""
    if settings.max_examples:
        examples = examples[: settings.max_examples]
    if not examples:
        raise DataError("the evaluation set is empty; give eval_data or a larger data file")
    prompts = [task.build_messages(example) for example in examples]
    references = [task.reference(example) for example in examples]
    classes = [class_of(example) for example in examples]
    outputs = generate(model, tokenizer, prompts, settings.batch_size, settings.max_new_tokens, desc="evaluating",
                       bf16=settings.bf16)
    metrics = task.score(outputs, references, classes)
    metrics.update(_sampled_metrics(model, tokenizer, task, prompts, references, classes, settings))
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
    report = EvalReport(metrics=metrics, per_field=task.per_field(outputs, references), rows=rows)
    if predictions_path is not None:
        write_jsonl(predictions_path, rows)
    return report
