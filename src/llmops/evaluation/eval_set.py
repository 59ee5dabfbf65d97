"""The evaluation step: generate for every eval example, score with the task, write the predictions table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import DataError
from llmops.evaluation.generate import generate, sample
from llmops.evaluation.report import write_jsonl
from llmops.tasks.base import Task, class_of

DEFAULT_MAX_NEW_TOKENS = 256
GOLD_MARGIN = 1.25  # eval.max_new_tokens unset: answers may be this much longer than the longest gold answer


@dataclass
class EvalReport:
    """Flat metrics (`field_f1`, `<class>/field_f1`, ...), a per-field breakdown and one row per example."""

    metrics: dict[str, float]
    per_field: dict[str, float] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)  # (document, field, expected, predicted) rows


def _prompt_text(messages: list[dict[str, str]]) -> str:
    """The prompt as readable text: the last user message, else all contents joined."""
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return users[-1] if users else "\n".join(m.get("content", "") for m in messages)


def _sampled_metrics(
    model: Any, tokenizer: Any, task: Task, prompts: list, references: list, classes: list[str], settings: Any
) -> dict[str, float]:
    """pass_at_<k> for k > 1 from `num_samples` sampled answers, for tasks that score samples (CodeGen)."""
    ks = [k for k in getattr(settings, "pass_k", []) if 1 < k <= settings.num_samples]
    if settings.num_samples <= 1 or not ks or not hasattr(task, "score_samples"):
        return {}
    samples = sample(
        model,
        tokenizer,
        prompts,
        settings.num_samples,
        settings.batch_size,
        settings.answer_tokens,
        settings.temperature,
        settings.top_p,
    )
    return task.score_samples(samples, references, classes, ks)


def decoding(
    model: Any, tokenizer: Any, task: Task, settings: Any, gold_tokens: int | None = None, tighten: bool = False
) -> tuple[Any, int]:
    """(the compiled JSON grammar or None, max_new_tokens) of an evaluation: IDP decodes under its schema (any JSON
    object without one) unless `eval.constrained` is false.

    max_new_tokens: `settings.max_new_tokens`; unset, GOLD_MARGIN times `gold_tokens` (the longest gold answer of
    the eval set, in tokens) when given, else the longest answer the schema allows (its bound: every answer closes
    before it), else DEFAULT_MAX_NEW_TOKENS. An untrained model under a grammar tends to fill every string to its
    bound (measured: ~1,000 tokens an answer where the gold has ~330); an answer that much longer than any gold one
    cannot be right, so evaluation cuts it (it then counts as unparsed) instead of spending minutes on it. With
    `tighten` (a user's explicit limit, as `llmops serve` does with max_tokens) the schema's open bounds are
    narrowed until every answer fits the limit instead."""
    wanted = settings.max_new_tokens or (int(GOLD_MARGIN * gold_tokens) + 16 if gold_tokens else None)
    if not is_constrained(task, settings):
        return None, wanted or DEFAULT_MAX_NEW_TOKENS
    from llmops.evaluation.constrained import JsonGrammar

    schema = task.schema if task.schema is not None else {"type": "object"}
    try:
        constraint = JsonGrammar.for_model(model, tokenizer).constraint(schema, wanted if tighten else None)
    except ValueError as exc:
        raise DataError(
            f"schema: constrained decoding cannot compile it ({exc}); set eval.constrained=false to evaluate without it"
        ) from None
    limits = [x for x in (wanted, constraint.max_tokens) if x]
    return constraint.grammar, min(limits) if limits else DEFAULT_MAX_NEW_TOKENS


def _gold_tokens(tokenizer: Any, task: Task, references: list[Any]) -> int | None:
    """The length in tokens of the longest gold answer (IDP: the gold JSON as training writes it), or None."""
    if not getattr(task, "answers_json", False):
        return None
    lengths = [
        len(tokenizer(task.format_answer(ref), add_special_tokens=False)["input_ids"])
        for ref in references
        if ref is not None
    ]
    return max(lengths, default=0) or None


def is_constrained(task: Task, settings: Any) -> bool:
    """Whether answers are decoded under the task's JSON schema (IDP, unless eval.constrained is false)."""
    wanted = getattr(settings, "constrained", None)
    return bool(getattr(task, "answers_json", False)) and wanted is not False


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
    grammar, max_new_tokens = decoding(model, tokenizer, task, settings, _gold_tokens(tokenizer, task, references))
    outputs = generate(
        model,
        tokenizer,
        prompts,
        settings.batch_size,
        max_new_tokens,
        desc="evaluating",
        bf16=settings.bf16,
        grammar=grammar,
        names=[str(ex.get("id", i)) for i, ex in enumerate(examples)],
    )
    metrics = task.score(outputs, references, classes)
    if getattr(task, "answers_json", False):
        metrics["constrained_decoding"] = float(grammar is not None)
    metrics.update(_sampled_metrics(model, tokenizer, task, prompts, references, classes, settings))
    rows = []
    for i, (example, output) in enumerate(zip(examples, outputs)):
        rows.append(
            {
                "id": str(example.get("id", i)),
                "class": classes[i],
                "prompt": _prompt_text(prompts[i]),
                "output": output,
                "gold": references[i],
                **task.example_scores(output, references[i]),
            }
        )
    report = EvalReport(metrics=metrics, per_field=task.per_field(outputs, references), rows=rows)
    _explain(report, task, outputs, references, [row["id"] for row in rows], examples)
    if predictions_path is not None:
        write_jsonl(predictions_path, rows)
        if hasattr(task, "field_report"):
            write_jsonl(errors_path(predictions_path), report.errors)
    return report


WORST_FIELDS = 5


def errors_path(predictions_path: Path) -> Path:
    """Where the error table of a predictions file goes: `errors.jsonl` beside `predictions.jsonl` (beside
    `out.jsonl`: `out.errors.jsonl`)."""
    name = predictions_path.name
    if "predictions" in name:
        return predictions_path.with_name(name.replace("predictions", "errors"))
    return predictions_path.with_name(f"{predictions_path.stem}.errors.jsonl")


def _explain(
    report: EvalReport,
    task: Task,
    outputs: list[str],
    references: list[Any],
    ids: list[str],
    examples: list[dict[str, Any]],
) -> None:
    """Per-field precision/recall (`field/<path>/...`), metrics per group (`lang-de/`, `scanned/`, ...) and the
    error table of the worst fields, for tasks that report fields (IDP)."""
    if not hasattr(task, "field_report"):
        return
    fields = task.field_report(outputs, references)
    for path, values in fields.items():
        report.metrics.update({f"field/{path}/{key}": value for key, value in values.items() if key != "support"})
    groups: dict[str, list[int]] = {}
    for i, example in enumerate(examples):
        for group in example.get("groups", []):
            groups.setdefault(group, []).append(i)
    for group, indices in sorted(groups.items()):
        subset = task.score([outputs[i] for i in indices], [references[i] for i in indices])
        report.metrics.update({f"{group}/{key}": value for key, value in subset.items() if "/" not in key})
    worst = sorted((path for path, v in fields.items() if v["f1"] < 1.0), key=lambda p: (fields[p]["f1"], p))
    report.errors = task.errors(outputs, references, ids, worst[:WORST_FIELDS])
