"""`llmops mine-pairs`: DPO preference pairs from a model's own sampled answers, judged by the task's reward."""

from __future__ import annotations

import json
from typing import Any

import typer

from llmops.cli.common import guard
from llmops.errors import ConfigError, ModelError


def _gold_examples(data: str, flow_type: str, schema: str | None, limit: int | None) -> tuple[Any, Any, list]:
    """The run config, the task and the eval examples of `data` (checked: `FILE:LINE` problems, exit 2)."""
    from llmops.config import build_config
    from llmops.run_inputs import load_checked, make_task

    # SFT's evaluation formats: what the task can judge (gold JSON for IDP, problems with tests for CodeGen).
    cfg = build_config(flags={"flow_type": flow_type, "train_type": "SFT", "data": data, "schema": schema})
    task = make_task(cfg)
    records = load_checked(data, cfg, task, "eval")
    examples = task.eval_examples(records, source=data)
    return cfg, task, examples[:limit] if limit else examples


def _valid_pairs(pairs: list[dict], cfg: Any, schema: Any, output: str) -> list[dict]:
    """The pairs that `llmops data validate --train-type DPO` accepts (IDP: the chosen answer must be schema-valid
    JSON, as gold is); the others are dropped with a warning."""
    from llmops.data.formats import numbered
    from llmops.run_inputs import validate_records

    problems = validate_records("pair", pairs, cfg.flow_type, "DPO", schema, role="train")
    bad = {int(p.split(":", 2)[1]) for p in problems if p.split(":", 2)[1].isdigit()}
    if bad:
        typer.echo(
            f"warning: {len(bad)} of {len(pairs)} mined pairs dropped, as DPO data would not validate "
            f"({output}), e.g. {problems[0]}",
            err=True,
        )
    return [pair for line, pair in numbered(pairs) if line not in bad]


def _print_summary(summary: dict[str, Any], output: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mined pairs -> {output}")
    table.add_column("")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    Console().print(table)


def mine_pairs(
    model: str = typer.Option(..., "--model", help="model that answers: a built-in name or a saved folder"),
    data: str = typer.Option(
        ...,
        "--data",
        help="records the task can judge: IDP gold (e.g. {document,fields}), CodeGen HumanEval problems with tests",
    ),
    output: str = typer.Option(..., "--output", "-o", help="the pairs file written (JSONL, DPO training data)"),
    samples: int = typer.Option(4, "--samples", help="answers sampled per prompt (at least 2)"),
    temperature: float = typer.Option(1.0, "--temperature", help="sampling temperature"),
    flow_type: str = typer.Option("IDP", "--flow-type", "--flow_type", help="IDP or CodeGen"),
    schema: str | None = typer.Option(None, "--schema", help="IDP: the JSON Schema of the answers"),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", help="longest sampled answer, in tokens"),
    batch_size: int = typer.Option(16, "--batch-size", help="answers generated at once"),
    seed: int = typer.Option(0, "--seed", help="sampling seed (same seed, same pairs)"),
    limit: int | None = typer.Option(None, "--limit", help="mine on the first K records only"),
) -> None:
    """Sample answers, judge them with the task's reward, write best-vs-worst pairs; last line: summary as JSON."""

    def body() -> None:
        from llmops.evaluation.pairs import check_samples, reward_kwargs, write_pairs
        from llmops.evaluation.pairs import mine_pairs as mine

        check_samples(samples)
        if temperature <= 0:
            raise ConfigError(f"--temperature {temperature}: sampling needs a temperature above 0 (e.g. 1.0)")
        cfg, task, examples = _gold_examples(data, flow_type, schema, limit)
        from llmops.models.loader import load_for_inference

        mdl, tokenizer = load_for_inference(model)
        pairs, summary = mine(
            mdl,
            tokenizer,
            task,
            examples,
            samples,
            temperature,
            max_new_tokens,
            batch_size,
            seed,
            reward_kwargs(cfg),
            constrained=cfg.eval.constrained,
        )
        kept = _valid_pairs(pairs, cfg, task.schema, output)
        summary["written"] = len(kept)
        _print_summary(summary, output)
        if not kept:
            typer.echo(json.dumps(summary))
            raise ModelError(
                f"no pair to write: the {samples} answers to each prompt scored alike (or no pair "
                "validates); raise --temperature or --samples"
            )
        write_pairs(output, kept)
        typer.echo(f"wrote {len(kept)} pairs to {output}; train on them: llmops run --train_type DPO --data {output}")
        typer.echo(json.dumps(summary))

    guard(body)


def register(app: typer.Typer) -> None:
    app.command(name="mine-pairs")(mine_pairs)
