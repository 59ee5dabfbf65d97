"""`llmops run --flow_type CodeGen` end to end on a tiny model: tests run in the sandbox, pass@k tracked, registered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import llmops_cli


@pytest.fixture(scope="module")
def tiny_codegen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from llmops.models.tiny import build_tiny_model
    from llmops.quickstart.codegen_data import generate_codegen_dataset, tokenizer_corpus
    from llmops.tasks.codegen import CodeGenTask

    root = tmp_path_factory.mktemp("tiny-codegen")
    data = generate_codegen_dataset(root / "data", n_train=120, n_eval_per_class=2, seed=0)
    model = build_tiny_model(
        root / "model",
        tokenizer_corpus(data, CodeGenTask().build_prompt),
        vocab_size=300,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        seed=0,
    )
    return {"train": data.train, "eval": data.eval, "model": model, "root": root}


def _args(tiny: dict[str, Path], save_dir: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--student",
        str(tiny["model"]),
        "--data",
        str(tiny["train"]),
        "--eval_data",
        str(tiny["eval"]),
        "--save_dir",
        str(save_dir),
        "--flow_type",
        "CodeGen",
        "--train_type",
        "SFT",
        "--set",
        "peft.method=full",
        "--set",
        "training.per_device_train_batch_size=4",
        "--set",
        "eval.max_new_tokens=16",
        "--set",
        "eval.batch_size=8",
        "--set",
        "tracking.system_metrics=false",
        "--set",
        "training.num_threads=1",
        "--set",
        "eval.code_workers=2",
        *extra,
    ]


def test_codegen_run_end_to_end(tmp_path: Path, tiny_codegen: dict[str, Path]) -> None:
    from mlflow.tracking import MlflowClient

    prompt = 'def add_three(x: int):\n    """Return x plus 3."""\n'
    proc = llmops_cli(
        _args(
            tiny_codegen,
            tmp_path / "runs",
            "--max_steps",
            "6",
            "--prompt",
            prompt,
            "--set",
            "eval.num_samples=3",
            "--set",
            "eval.pass_k=[1,2,3]",
        ),
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = list((tmp_path / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    classes = ("arithmetic", "conditionals", "lists", "strings")
    for key in ("pass_at_1", "pass_at_2", "pass_at_3", *(f"{c}/pass_at_1" for c in classes)):
        assert 0.0 <= summary["metrics"][key] <= 1.0, key
    assert summary["metrics"]["pass_at_1"] <= summary["metrics"]["pass_at_3"] or summary["metrics"]["pass_at_1"] == 0
    assert "pass_at_1" in summary["baseline"]
    rows = [json.loads(line) for line in (run_dir / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all({"code", "passed", "result"} <= set(r) for r in rows)
    assert all(r["passed"] == (r["result"] == "passed") for r in rows)
    assert summary["sample"] is not None

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(summary["run_id"])
    assert {"baseline/pass_at_1", "eval/pass_at_1", "eval/pass_at_3", "eval/strings/pass_at_1"} <= set(run.data.metrics)
    assert client.get_model_version_by_alias("llmops-codegen-sft", "challenger").run_id == summary["run_id"]

    pred = llmops_cli(
        ["predict", "--model", str(run_dir / "model" / "merged"), "--prompt", prompt, "--max-new-tokens", "8"], tmp_path
    )
    assert pred.returncode == 0, pred.stderr[-3000:]
    assert pred.stdout.startswith(prompt)  # a body answer is printed as the completed function


def test_codegen_without_tests_to_run_is_a_clear_error(tmp_path: Path, tiny_codegen: dict[str, Path]) -> None:
    args = _args(tiny_codegen, tmp_path / "runs")
    del args[args.index("--eval_data") : args.index("--eval_data") + 2]
    proc = llmops_cli(args, tmp_path)
    assert proc.returncode == 2
    assert "CodeGen evaluation runs each problem's tests" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_humaneval_records_train_and_evaluate_without_eval_data(tmp_path: Path, tiny_codegen: dict[str, Path]) -> None:
    problems = tiny_codegen["eval"].read_text().splitlines() * 3
    data = tmp_path / "problems.jsonl"
    data.write_text("\n".join(problems) + "\n")
    args = _args(
        tiny_codegen,
        tmp_path / "runs",
        "--max_steps",
        "2",
        "--set",
        "eval.baseline=false",
        "--set",
        "tracking.enabled=false",
        "--set",
        "eval.eval_fraction=0.25",
    )
    args[args.index("--data") + 1] = str(data)
    del args[args.index("--eval_data") : args.index("--eval_data") + 2]
    proc = llmops_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = list((tmp_path / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "pass_at_1" in summary["metrics"]
