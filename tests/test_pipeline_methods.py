"""`llmops run` with KD (logit and sequence level) and DPO on tiny models, and the seed project's example commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import llmops_cli


@pytest.fixture(scope="module")
def teacher(tiny_idp: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wider model with the student's tokenizer (same corpus and vocabulary give the same BPE)."""
    from llmops.models.tiny import build_tiny_model
    from llmops.quickstart.idp_data import IdpDataset, tokenizer_corpus

    data = IdpDataset(
        tiny_idp["train"].parent, tiny_idp["train"], tiny_idp["eval"], tiny_idp["schema"], {}, tiny_idp["document"]
    )
    return build_tiny_model(
        tmp_path_factory.mktemp("teacher") / "model",
        tokenizer_corpus(data, limit=96),
        vocab_size=320,
        hidden_size=48,
        num_layers=2,
        num_heads=2,
        seed=1,
    )


def _summary(save_dir: Path) -> dict:
    (run_dir,) = [p for p in save_dir.iterdir() if (p / "state.json").exists()]  # not kd-cache/
    return json.loads((run_dir / "summary.json").read_text())


def test_logit_kd_run_tracks_teacher_kl(tmp_path: Path, teacher: Path, tiny_run_args: Callable[..., list[str]]) -> None:
    from mlflow.tracking import MlflowClient

    args = tiny_run_args(
        tmp_path / "runs",
        "--train_type",
        "KD",
        "--use_logit_kd",
        "--teacher",
        str(teacher),
        "--max_steps",
        "6",
        "--kd_temperature",
        "2.0",
        "--set",
        "kd.alpha=0.5",
    )
    proc = llmops_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(tmp_path / "runs")
    assert summary["baseline"]["teacher_kl"] > 0 and summary["metrics"]["teacher_kl"] >= 0
    assert "field_f1" in summary["metrics"]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(summary["run_id"])
    assert {"baseline/teacher_kl", "eval/teacher_kl", "train/kd_loss", "train/ce_loss"} <= set(run.data.metrics)
    assert run.data.params["kd.temperature"] == "2.0"
    assert client.get_model_version_by_alias("llmops-idp-kd", "challenger").run_id == summary["run_id"]


def test_kd_with_a_student_pruned_from_the_teacher_and_on_policy_batches(
    tmp_path: Path, teacher: Path, tiny_run_args: Callable[..., list[str]]
) -> None:
    """kd.student_from_teacher: the run prunes the teacher into its own student (logged), then distils into it,
    half the batches on the student's own samples; teacher_kl falls."""
    from mlflow.tracking import MlflowClient

    args = tiny_run_args(
        tmp_path / "runs",
        "--train_type",
        "KD",
        "--use_logit_kd",
        "--teacher",
        str(teacher),
        "--max_steps",
        "8",
        "--set",
        "kd.student_from_teacher=1",
        "--set",
        "kd.on_policy=0.5",
        "--set",
        "kd.on_policy_max_new_tokens=24",
        "--set",
        "kd.alpha=0.2",
        "--set",
        "kd.temperature=1.0",
    )
    proc = llmops_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(tmp_path / "runs")
    student = Path(summary["run_dir"]) / "student"
    pruned = json.loads((student / "llmops_pruned.json").read_text())
    assert len(pruned["kept"]) == 1 and pruned["layers_before"] == 2 and pruned["source"] == str(teacher)
    assert summary["metrics"]["teacher_kl"] < summary["baseline"]["teacher_kl"]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(summary["run_id"])
    assert run.data.params["student_layers"] == "1" and run.data.params["student_made_from"] == str(teacher)
    assert "train/on_policy" in run.data.metrics
    assert [a.path for a in client.list_artifacts(summary["run_id"], "student")] == ["student/llmops_pruned.json"]


def test_kd_teacher_with_another_vocabulary_is_a_clear_error(
    tmp_path: Path, tiny_model_dir: Path, tiny_run_args: Callable[..., list[str]]
) -> None:
    args = tiny_run_args(
        tmp_path / "runs", "--train_type", "KD", "--use_logit_kd", "--teacher", str(tiny_model_dir), "--max_steps", "2"
    )
    proc = llmops_cli(args, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "vocabular" in proc.stderr and str(tiny_model_dir) in proc.stderr and "Traceback" not in proc.stderr


def _teacher_output_data(tiny_idp: dict[str, Path], path: Path, drop_one: bool = False) -> Path:
    rows = []
    for i, line in enumerate(tiny_idp["train"].read_text().splitlines()):
        record = json.loads(line)
        row = {"input": record["document"], "teacher_output": json.dumps(record["fields"]), "class": record["class"]}
        if drop_one and i == 0:
            row = {"input": record["document"], "output": json.dumps(record["fields"])}
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_seed_kd_command_without_teacher_distils_teacher_output(
    tmp_path: Path, tiny_idp: dict[str, Path], tiny_run_args: Callable[..., list[str]]
) -> None:
    """The seed README's KD example: --use_logit_kd on {"input","teacher_output"} data, no --teacher."""
    data = _teacher_output_data(tiny_idp, tmp_path / "kd-data.jsonl")
    args = tiny_run_args(
        tmp_path / "runs",
        "--train_type",
        "KD",
        "--epochs",
        "4",
        "--use_logit_kd",
        "--val_per_class",
        "30",
        "--max_steps",
        "4",
    )
    args[args.index("--data") + 1] = str(data)
    proc = llmops_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sequence-level KD" in proc.stderr
    assert "field_f1" in _summary(tmp_path / "runs")["metrics"]
    missing = _teacher_output_data(tiny_idp, tmp_path / "partial.jsonl", drop_one=True)
    args[args.index("--data") + 1] = str(missing)
    proc = llmops_cli(args, tmp_path)
    assert proc.returncode == 2 and "--teacher" in proc.stderr and "Traceback" not in proc.stderr


def test_dpo_run_tracks_preference_metrics(
    tmp_path: Path, tiny_idp: dict[str, Path], tiny_run_args: Callable[..., list[str]]
) -> None:
    from llmops.quickstart.pairs import write_idp_pairs

    pairs = write_idp_pairs(tiny_idp["train"], tmp_path / "pairs.jsonl", seed=0)
    args = tiny_run_args(
        tmp_path / "runs", "--train_type", "DPO", "--max_steps", "4", "--beta", "0.2", "--set", "eval.eval_fraction=0.2"
    )
    args[args.index("--data") + 1] = str(pairs)
    proc = llmops_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(tmp_path / "runs")
    for key in ("preference_accuracy", "reward_margin", "field_f1"):
        assert key in summary["metrics"] and key in summary["baseline"], key
    assert summary["baseline"]["reward_margin"] == pytest.approx(0.0, abs=1e-6)  # policy == reference
    assert summary["registered_model"] == "llmops-idp-dpo"


def test_seed_codegen_dpo_command(tmp_path: Path) -> None:
    """The seed README's CodeGen DPO example, with local files for its s3:// paths and a tiny student."""
    from llmops.models.tiny import build_tiny_model
    from llmops.quickstart.codegen_data import generate_codegen_dataset, tokenizer_corpus
    from llmops.quickstart.pairs import write_codegen_pairs
    from llmops.tasks.codegen import CodeGenTask

    data = generate_codegen_dataset(tmp_path / "data", n_train=60, n_eval_per_class=2, seed=0)
    student = build_tiny_model(
        tmp_path / "student",
        tokenizer_corpus(data, CodeGenTask().build_prompt),
        vocab_size=300,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
    )
    pairs = write_codegen_pairs(data.train, tmp_path / "codegen-dpo.jsonl", seed=0)
    proc = llmops_cli(
        [
            "run",
            "--student",
            str(student),
            "--data",
            str(pairs),
            "--flow_type",
            "CodeGen",
            "--train_type",
            "DPO",
            "--epochs",
            "2",
            "--prompt",
            "Implement a binary search tree in Python",
            "--eval_data",
            str(data.eval),
            "--val_per_class",
            "20",
            "--save_dir",
            str(tmp_path / "runs"),
            "--max_steps",
            "3",
            "--set",
            "peft.method=full",
            "--set",
            "eval.max_new_tokens=16",
            "--set",
            "tracking.system_metrics=false",
            "--set",
            "training.num_threads=1",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(tmp_path / "runs")
    assert {"pass_at_1", "preference_accuracy", "reward_margin"} <= set(summary["metrics"])
    assert summary["sample"] is not None
