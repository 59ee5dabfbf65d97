"""train_sft on a tiny model: what trains, what the loss sees, determinism, resume, packing."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest
import torch

from llmops.config import RunConfig
from llmops.errors import ModelError
from llmops.methods.sft import make_trainer, train_sft
from llmops.models.loader import load_student


def _cfg(model_dir: Path, method: str = "full", **training) -> RunConfig:
    settings = {
        "max_steps": 3,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "save_steps": 100,
        "max_len": 128,
        "seed": 0,
        **training,
    }
    return RunConfig.model_validate(
        {"student": str(model_dir), "peft": {"method": method, "r": 4, "alpha": 8}, "training": settings}
    )


def _load(cfg: RunConfig):
    return load_student(cfg.student, cfg.peft, cfg.training)


@pytest.mark.parametrize("method", ["full", "lora", "qlora"])
def test_every_trainable_parameter_changes_and_frozen_ones_do_not(
    tiny_model_dir: Path, tmp_path: Path, sft_examples, method: str
) -> None:
    cfg = _cfg(tiny_model_dir, method)
    model, tokenizer = _load(cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    result = train_sft(model, tokenizer, sft_examples(24), cfg, tmp_path)
    assert result.steps == 3 and result.tokens_per_second > 0 and result.train_seconds > 0
    for name, param in model.named_parameters():
        changed = not torch.equal(param.detach().to(before[name].device), before[name])
        assert changed == (name in trainable), name
    if method == "qlora":
        assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if n in trainable)


def test_labels_mask_the_prompt_and_keep_eos(tiny_model_dir: Path, tmp_path: Path, sft_examples) -> None:
    cfg = _cfg(tiny_model_dir)
    model, tokenizer = _load(cfg)
    example = sft_examples(1)[0]
    trainer = make_trainer(model, tokenizer, [example], cfg, tmp_path)
    row = trainer.train_dataset[0]
    prompt_ids = tokenizer.apply_chat_template(
        example["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    labels = row["labels"]
    assert row["input_ids"][: len(prompt_ids)] == prompt_ids
    assert all(label == -100 for label in labels[: len(prompt_ids)])
    completion = labels[len(prompt_ids) :]
    assert all(label != -100 for label in completion)
    assert completion[-1] == tokenizer.eos_token_id  # the last label ends the turn: nothing after it is learned
    assert tokenizer.decode([t for t in completion if t != tokenizer.eos_token_id]).strip().startswith('{"id"')


def test_seeded_runs_give_identical_losses(tiny_model_dir: Path, tmp_path: Path, sft_examples) -> None:
    cfg = _cfg(tiny_model_dir, "lora", max_steps=3)
    runs = []
    for i in range(2):
        model, tokenizer = _load(cfg)
        runs.append(train_sft(model, tokenizer, sft_examples(12), cfg, tmp_path / str(i)).loss_history)
    assert len(runs[0]) == 3 and runs[0] == runs[1]


def test_resume_from_a_middle_checkpoint_matches_an_uninterrupted_run(
    tiny_model_dir: Path, sft_examples, tmp_path: Path
) -> None:
    cfg = _cfg(tiny_model_dir, "lora", max_steps=6, save_steps=3, save_total_limit=5)
    model, tokenizer = _load(cfg)
    full = train_sft(model, tokenizer, sft_examples(16), cfg, tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]
    shutil.copytree(tmp_path / "a" / "checkpoint-3", tmp_path / "b" / "checkpoint-3")
    model, tokenizer = _load(cfg)
    logged: list[dict] = []
    resumed = train_sft(model, tokenizer, sft_examples(16), cfg, tmp_path / "b", resume_from=True, on_log=logged.append)
    assert resumed.steps == 6 and [entry["step"] for entry in logged] == [4, 5, 6]
    assert [s for s, _ in resumed.loss_history] == [1, 2, 3, 4, 5, 6]  # earlier history comes from the checkpoint
    assert resumed.final_loss == pytest.approx(full.final_loss, rel=0.01)


def test_resume_without_a_checkpoint_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path, sft_examples) -> None:
    cfg = _cfg(tiny_model_dir)
    model, tokenizer = _load(cfg)
    with pytest.raises(ModelError, match="no checkpoint"):
        train_sft(model, tokenizer, sft_examples(4), cfg, tmp_path, resume_from=True)


def test_logs_reach_the_caller_and_the_last_step_is_logged(
    tiny_model_dir: Path, tmp_path: Path, sft_examples, capsys: pytest.CaptureFixture
) -> None:
    cfg = _cfg(tiny_model_dir, max_steps=5, logging_steps=2)
    model, tokenizer = _load(cfg)
    logs: list[dict] = []
    result = train_sft(model, tokenizer, sft_examples(24), cfg, tmp_path, on_log=logs.append)
    assert [entry["step"] for entry in logs] == [2, 4, 5]
    assert all(entry["tokens_per_second"] > 0 and "loss" in entry for entry in logs)
    assert [s for s, _ in result.loss_history] == [2, 4, 5] and result.final_loss == logs[-1]["loss"]
    assert "sft step 5/5" in capsys.readouterr().out  # plain lines when stdout is not a terminal


def test_packed_batches_have_no_cross_document_leakage(tiny_model_dir: Path, tmp_path: Path, sft_examples) -> None:
    from llmops.models.packed_attention import packed_attention

    cfg = _cfg(tiny_model_dir, packing=True, per_device_train_batch_size=2)
    model, tokenizer = _load(cfg)
    trainer = make_trainer(model, tokenizer, sft_examples(12), cfg, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
    cu = batch["cu_seq_lens_q"].tolist()
    assert len(cu) > 3  # several documents flattened into one row
    with torch.no_grad(), packed_attention(model):
        packed = model(**batch, fused_lm_head=True).log_probs[0]
    with torch.no_grad():
        for start, end in itertools.pairwise(cu):
            alone = model(
                input_ids=batch["input_ids"][:, start:end], labels=batch["labels"][:, start:end], fused_lm_head=True
            ).log_probs[0]
            torch.testing.assert_close(packed[start : end - 1], alone, atol=1e-5, rtol=1e-5)


def test_packing_trains(tiny_model_dir: Path, tmp_path: Path, sft_examples) -> None:
    cfg = _cfg(tiny_model_dir, packing=True, per_device_train_batch_size=2, max_steps=3)
    model, tokenizer = _load(cfg)
    result = train_sft(model, tokenizer, sft_examples(24), cfg, tmp_path)
    assert result.steps == 3 and result.loss_history[0][1] > result.final_loss
    assert model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("method", ["full", "lora"])
def test_the_answer_only_lm_head_gives_trls_loss_and_gradients(
    tiny_model_dir: Path, tmp_path: Path, sft_examples, method: str
) -> None:
    """On CPU the loss is computed from the logits of the answer positions only; it must be TRL's loss."""
    from trl import SFTTrainer

    cfg = _cfg(tiny_model_dir, method)
    cfg.peft.dropout = 0.0  # the same forward twice
    model, tokenizer = _load(cfg)
    ours = make_trainer(model, tokenizer, sft_examples(8), cfg, tmp_path / "ours")
    stock = make_trainer(model, tokenizer, sft_examples(8), cfg, tmp_path / "trl", trainer_cls=SFTTrainer)
    assert type(ours) is not SFTTrainer and isinstance(ours, SFTTrainer)
    batch = next(iter(ours.get_train_dataloader()))
    assert (batch["labels"] == -100).any()  # prompt and padding are masked: the head skips those positions
    results = []
    for trainer in (ours, stock):
        model.zero_grad()
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
    (ours_loss, ours_grads), (trl_loss, trl_grads) = results
    torch.testing.assert_close(ours_loss, trl_loss, rtol=1e-5, atol=1e-5)
    assert ours_grads.keys() == trl_grads.keys() and ours_grads
    for name in ours_grads:
        torch.testing.assert_close(ours_grads[name], trl_grads[name], rtol=1e-4, atol=1e-6)
