"""The offline teacher cache: what it stores, how rows are found, when it is reused and when rebuilt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llmops.config import RunConfig
from llmops.errors import ModelError
from llmops.methods.kd_cache import build_or_load, teacher_fingerprint
from llmops.methods.losses import topk_logprobs
from llmops.methods.sft import make_trainer
from llmops.models.loader import load_student


@pytest.fixture
def setup(tiny_model_dir: Path, tmp_path: Path, sft_examples) -> dict:
    """A tiny teacher, the SFT trainer's tokenized dataset and collator for 10 examples."""
    cfg = RunConfig.model_validate(
        {
            "student": str(tiny_model_dir),
            "peft": {"method": "full"},
            "training": {"max_len": 128, "per_device_train_batch_size": 4},
        }
    )
    teacher, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    teacher.eval()
    trainer = make_trainer(teacher, tokenizer, sft_examples(10), cfg, tmp_path / "run")
    return {
        "teacher": teacher,
        "dataset": trainer.train_dataset,
        "collate": trainer.data_collator,
        "vocab": len(tokenizer),
        "dir": tmp_path / "cache",
        "cfg": cfg,
        "tokenizer": tokenizer,
        "make": lambda examples: make_trainer(teacher, tokenizer, examples, cfg, tmp_path / "other"),
    }


def _build(s: dict, k: int = 8, temperature: float = 2.0, dataset=None, teacher=None):
    return build_or_load(
        teacher or s["teacher"],
        s["dataset"] if dataset is None else dataset,
        s["collate"],
        s["dir"],
        k,
        temperature,
        s["vocab"],
        batch_size=3,
    )


def _teacher_topk(s: dict, rows: list[dict], k: int, temperature: float):
    batch = s["collate"]([{key: r[key] for key in ("input_ids", "labels")} for r in rows])
    with torch.no_grad():
        logits = s["teacher"](input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    mask = batch["labels"][:, 1:] != -100
    values, ids = topk_logprobs(logits, k, temperature)
    return batch, mask, values, ids


def test_cache_holds_the_teachers_topk_on_answer_tokens_only(setup: dict) -> None:
    cache = _build(setup)
    rows = list(setup["dataset"])
    answer_tokens = sum(sum(1 for label in r["labels"][1:] if label != -100) for r in rows)
    assert cache.built and cache.values.shape == (answer_tokens, 8) and cache.ids.shape == (answer_tokens, 8)
    assert cache.values.dtype == torch.float16 and cache.ids.dtype == torch.uint16  # the vocabulary fits
    assert cache.bytes_per_token == 8 * (2 + 2)
    assert len(cache.index) == len(rows)
    assert [p.name for p in setup["dir"].iterdir()] == [cache.path.name]  # no temporary folder left behind
    batch, mask, values, ids = _teacher_topk(setup, rows[:5], 8, 2.0)  # a padded batch of different lengths
    got_values, got_ids = cache.lookup(batch["input_ids"], batch["attention_mask"], mask)
    assert torch.equal(got_ids[mask], ids[mask])
    torch.testing.assert_close(got_values[mask], values[mask], atol=2e-3, rtol=1e-3)
    assert torch.isfinite(got_values).all()


def test_same_key_is_read_without_running_the_teacher(setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _build(setup)

    def no_forward(*args, **kwargs):
        raise AssertionError("teacher forward called")

    monkeypatch.setattr(setup["teacher"], "forward", no_forward)
    again = _build(setup)
    assert not again.built and again.path == first.path
    assert torch.equal(again.values, first.values) and torch.equal(again.ids, first.ids)


def test_k_temperature_data_and_teacher_weights_give_new_keys(setup: dict) -> None:
    base = _build(setup).path
    assert _build(setup, k=4).path != base
    assert _build(setup, temperature=1.0).path != base
    other_data = setup["make"](_more_examples()).train_dataset
    assert _build(setup, dataset=other_data).path != base
    fingerprint = teacher_fingerprint(setup["teacher"])
    with torch.no_grad():
        next(setup["teacher"].parameters())[0, 0] += 1e-3
    assert teacher_fingerprint(setup["teacher"]) != fingerprint
    assert _build(setup).path != base
    assert len(list(setup["dir"].iterdir())) == 5


def _more_examples() -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": "Extract JSON.\nInvoice 5 total 7"}],
            "completion": [{"role": "assistant", "content": '{"id": "5", "total": "7"}'}],
        }
    ]


def test_an_example_missing_from_the_cache_is_a_clear_error(setup: dict) -> None:
    cache = _build(setup)
    batch, mask, _, _ = _teacher_topk(setup, list(setup["make"](_more_examples()).train_dataset), 8, 2.0)
    with pytest.raises(ModelError, match="does not match the training data"):
        cache.lookup(batch["input_ids"], batch["attention_mask"], mask)


def test_ids_are_uint16_up_to_65536_tokens_and_int32_above() -> None:
    from llmops.methods.kd_cache import id_dtype_for

    assert id_dtype_for(49152) == torch.uint16 and id_dtype_for(65536) == torch.uint16  # SmolLM2; ids 0..65535
    assert id_dtype_for(65537) == torch.int32 and id_dtype_for(128256) == torch.int32  # Llama 3
    ids = torch.tensor([0, 65535, 40000]).to(torch.uint16)
    assert ids.long().tolist() == [0, 65535, 40000]  # read back as int64 without wrapping
