"""train_kd on tiny models: a 4-layer teacher (trained a few SFT steps) and a 2-layer student, one tokenizer."""

from __future__ import annotations

import copy
import math
import shutil
from pathlib import Path

import pytest
import torch
from tests.conftest import make_sft_examples

from llmops.config import RunConfig
from llmops.errors import ConfigError
from llmops.methods.kd import check_same_vocab, train_kd
from llmops.methods.kd_metrics import teacher_answers, teacher_kl
from llmops.methods.sft import train_sft
from llmops.models.loader import load_student
from llmops.models.tiny import _model, train_tokenizer


def _texts(examples: list[dict]) -> list[str]:
    return [e["prompt"][0]["content"] + e["completion"][0]["content"] for e in examples]


def _cfg(student: Path, tmp: Path, method: str = "full", kd: dict | None = None, **training) -> RunConfig:
    settings = {
        "max_steps": 3,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "save_steps": 100,
        "max_len": 128,
        "seed": 0,
        "bf16": False,
        **training,
    }  # exact losses: fp32
    return RunConfig.model_validate(
        {
            "student": str(student),
            "save_dir": str(tmp),
            "training": settings,
            "peft": {"method": method, "r": 4, "alpha": 8},
            "kd": kd or {},
        }
    )


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Teacher (4 layers, h64, a few SFT steps) and an untrained student (2 layers, h32) saved with one tokenizer."""
    root = tmp_path_factory.mktemp("kd-pair")
    tokenizer = train_tokenizer(_texts(make_sft_examples(200, seed=1)), 300)
    torch.manual_seed(0)
    teacher = _model(tokenizer, 64, 4, 2, None, 512)
    student = _model(tokenizer, 32, 2, 2, None, 512)
    for name, model in (("teacher", teacher), ("student", student)):
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    cfg = _cfg(root / "teacher", root, max_steps=25, per_device_train_batch_size=8, logging_steps=25)
    teacher, tok = load_student(cfg.student, cfg.peft, cfg.training)
    train_sft(teacher, tok, make_sft_examples(64, seed=2), cfg, root / "teacher-run")
    teacher.save_pretrained(root / "teacher")
    teacher, tok = load_student(cfg.student, cfg.peft, cfg.training)  # as a run loads it: from disk
    return {"root": root, "teacher": teacher, "student": root / "student", "tokenizer": tok, "cfg": cfg}


def _student(cfg: RunConfig):
    return load_student(cfg.student, cfg.peft, cfg.training)


def _all_logs(pair: dict, cfg: RunConfig, out: Path, teacher=None, model=None, examples=None, **kwargs):
    logs: list[dict] = []
    if model is None:
        model, tokenizer = _student(cfg)
    else:
        tokenizer = pair["tokenizer"]
    result = train_kd(
        model,
        tokenizer,
        teacher or pair["teacher"],
        examples or make_sft_examples(16),
        cfg,
        out,
        on_log=logs.append,
        **kwargs,
    )
    return result, logs, model


@pytest.mark.parametrize(("method", "cache"), [("full", False), ("full", True), ("lora", False)])
def test_kd_trains_every_parameter_and_logs_ce_and_kd(pair: dict, tmp_path: Path, method: str, cache: bool) -> None:
    cfg = _cfg(pair["student"], tmp_path, method, kd={"cache": cache, "cache_top_k": 16, "alpha": 0.5})
    model, _ = _student(cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    teacher_before = {n: p.detach().clone() for n, p in pair["teacher"].named_parameters()}
    result, logs, _ = _all_logs(pair, cfg, tmp_path / "run", model=model)
    assert result.steps == 3 and [e["step"] for e in logs] == [1, 2, 3]
    for entry in logs:
        assert all(math.isfinite(entry[key]) for key in ("loss", "ce_loss", "kd_loss"))
        assert entry["kd_loss"] > 0 and entry["ce_loss"] > 0
        assert entry["loss"] == pytest.approx(0.5 * entry["ce_loss"] + 0.5 * entry["kd_loss"], rel=1e-3)
    for name, param in model.named_parameters():
        assert (not torch.equal(param.detach(), before[name])) == (name in trainable), name
    assert all(torch.equal(p, teacher_before[n]) for n, p in pair["teacher"].named_parameters())
    assert not any(p.requires_grad for p in pair["teacher"].parameters())
    assert result.cache_built == cache and (result.cache_bytes_per_token == 16 * 4 if cache else True)  # fp16 + uint16


def test_alpha_one_gives_the_sft_loss_curve(pair: dict, tmp_path: Path) -> None:
    cfg = _cfg(pair["student"], tmp_path, kd={"alpha": 1.0}, max_steps=4)
    kd, _, _ = _all_logs(pair, cfg, tmp_path / "kd")
    model, tokenizer = _student(cfg)
    sft = train_sft(model, tokenizer, make_sft_examples(16), cfg, tmp_path / "sft")
    assert [s for s, _ in kd.loss_history] == [s for s, _ in sft.loss_history] == [1, 2, 3, 4]
    for (_, a), (_, b) in zip(kd.loss_history, sft.loss_history, strict=True):
        assert a == pytest.approx(b, rel=1e-3)


def test_alpha_zero_with_a_copy_of_the_teacher_has_zero_kd_loss(pair: dict, tmp_path: Path) -> None:
    cfg = _cfg(pair["student"], tmp_path, kd={"alpha": 0.0, "temperature": 2.0}, max_steps=1)
    clone, _ = load_student(str(pair["root"] / "teacher"), pair["cfg"].peft, pair["cfg"].training)
    _, logs, _ = _all_logs(pair, cfg, tmp_path / "run", model=clone)
    assert logs[0]["kd_loss"] == pytest.approx(0.0, abs=1e-6) and logs[0]["loss"] == pytest.approx(0.0, abs=1e-6)
    assert logs[0]["ce_loss"] > 0.1


def test_offline_cache_matches_online_when_k_covers_the_vocabulary(pair: dict, tmp_path: Path) -> None:
    vocab = len(pair["tokenizer"])
    first = []
    for kd in ({"cache": False}, {"cache": True, "cache_top_k": vocab}, {"cache": False, "top_k": vocab}):
        cfg = _cfg(pair["student"], tmp_path, kd={"alpha": 0.0, **kd}, max_steps=1)
        _, logs, _ = _all_logs(pair, cfg, tmp_path / str(len(first)))
        first.append(logs[0]["kd_loss"])
    assert first[1] == pytest.approx(first[0], rel=1e-2) and first[2] == pytest.approx(first[0], rel=1e-4)


def test_second_run_reuses_the_cache_without_a_teacher_forward(
    pair: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(pair["student"], tmp_path, kd={"cache": True, "cache_top_k": 8}, max_steps=2)
    first, logs_a, _ = _all_logs(pair, cfg, tmp_path / "a")
    teacher = pair["teacher"]

    def no_forward(*args, **kwargs):
        raise AssertionError("the teacher ran although its cache exists")

    monkeypatch.setattr(teacher, "forward", no_forward)
    second, logs_b, _ = _all_logs(pair, cfg, tmp_path / "b")
    assert first.cache_built and not second.cache_built and first.cache_path == second.cache_path
    assert Path(first.cache_path).parent == tmp_path / "kd-cache"
    assert [e["loss"] for e in logs_a] == [e["loss"] for e in logs_b]
    with pytest.raises(AssertionError, match="its cache exists"):  # other data: a new key, so the teacher runs
        _all_logs(pair, cfg, tmp_path / "c", examples=make_sft_examples(16, seed=5))


@pytest.mark.parametrize(
    "mode",
    [{"cache": True, "cache_top_k": 8}, {"cache": False}, {"on_policy": 0.5, "on_policy_max_new_tokens": 12}],
    ids=["offline-cache", "online", "on-policy"],
)
def test_resume_from_a_checkpoint_matches_an_uninterrupted_run(pair: dict, tmp_path: Path, mode: dict) -> None:
    cfg = _cfg(pair["student"], tmp_path, kd=mode, max_steps=4, save_steps=2)
    full, _, _ = _all_logs(pair, cfg, tmp_path / "a")
    shutil.copytree(tmp_path / "a" / "checkpoint-2", tmp_path / "b" / "checkpoint-2")
    resumed, logs, _ = _all_logs(pair, cfg, tmp_path / "b", resume_from=True)
    assert resumed.steps == 4 and [e["step"] for e in logs] == [3, 4]
    assert resumed.final_loss == pytest.approx(full.final_loss, rel=1e-3)


def _on_policy_trainer(pair: dict, tmp_path: Path, **kd):
    from llmops.methods.kd import make_kd_trainer

    cfg = _cfg(
        pair["student"],
        tmp_path,
        kd={"on_policy": 1.0, "on_policy_max_new_tokens": 10, "temperature": 1.0, **kd},
        per_device_train_batch_size=3,
    )
    model, tokenizer = _student(cfg)
    trainer = make_kd_trainer(model, tokenizer, pair["teacher"], make_sft_examples(6), cfg, tmp_path / "run")
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    return trainer, model, batch


def test_on_policy_loss_is_reverse_kl_on_the_students_own_sampled_tokens(pair: dict, tmp_path: Path) -> None:
    trainer, model, batch = _on_policy_trainer(pair, tmp_path)
    model.train()
    loss = trainer.compute_loss(model, batch)
    sampled = trainer.last_on_policy_batch
    # The prompts are the batch's prompts; the answers are new tokens the student sampled, not the gold answers.
    for row in range(3):
        start = int((batch["labels"][row] != -100).nonzero()[0])
        assert torch.equal(sampled["input_ids"][row, :start], batch["input_ids"][row, :start])
        assert (sampled["labels"][row, :start] == -100).all() and (sampled["labels"][row, start] != -100)
    assert not torch.equal(sampled["labels"], batch["labels"][:, : sampled["labels"].shape[1]])
    # By hand: at every sampled answer token t, sum_v p_s(v) (log p_s(v) - log p_t(v)), averaged over tokens.
    with torch.no_grad():
        model.eval()
        s_logits = model(input_ids=sampled["input_ids"], attention_mask=sampled["attention_mask"]).logits
        t_logits = pair["teacher"](input_ids=sampled["input_ids"], attention_mask=sampled["attention_mask"]).logits
    total, count = 0.0, 0
    for row in range(3):
        for t in range(1, sampled["labels"].shape[1]):
            if sampled["labels"][row, t] == -100:
                continue
            p_s = torch.softmax(s_logits[row, t - 1].double(), -1)
            p_t = torch.softmax(t_logits[row, t - 1].double(), -1)
            total += float((p_s * (p_s.log() - p_t.log())).sum())
            count += 1
    assert count > 3
    assert loss.item() == pytest.approx(total / count, rel=1e-4)
    assert trainer._metrics["train"]["on_policy"] == [1.0]


def test_on_policy_samples_repeat_for_the_same_step_and_differ_between_steps(pair: dict, tmp_path: Path) -> None:
    trainer, model, batch = _on_policy_trainer(pair, tmp_path)
    model.train()
    trainer.compute_loss(model, batch)
    first = trainer.last_on_policy_batch["input_ids"]
    trainer._kd_micro = (-1, 0)  # as a resumed process starts the same step
    trainer.compute_loss(model, batch)
    assert torch.equal(trainer.last_on_policy_batch["input_ids"], first)
    trainer.state.global_step = 7
    trainer.compute_loss(model, batch)
    assert not torch.equal(trainer.last_on_policy_batch["input_ids"], first)


def test_on_policy_needs_logit_kd_and_a_pruned_student_needs_a_teacher(tiny_idp: dict) -> None:
    from llmops.pipeline import prepare

    base = {
        "student": str(tiny_idp["model"]),
        "data": str(tiny_idp["train"]),
        "eval_data": str(tiny_idp["eval"]),
        "schema": str(tiny_idp["schema"]),
        "train_type": "KD",
    }
    with pytest.raises(ConfigError, match="use_logit_kd"):
        prepare(RunConfig.model_validate({**base, "teacher": str(tiny_idp["model"]), "kd": {"on_policy": 0.5}}))
    with pytest.raises(ConfigError, match="prunes the teacher"):
        prepare(RunConfig.model_validate({**base, "kd": {"student_from_teacher": 1}}))


def test_a_teacher_with_another_vocabulary_is_a_config_error(pair: dict) -> None:
    other = train_tokenizer(["completely different words " * 3, "zebra quartz vexing jump"] * 20, 300)
    with pytest.raises(ConfigError) as err:
        check_same_vocab(pair["tokenizer"], other, "tiny-student", "big-teacher")
    message = str(err.value)
    assert "tiny-student" in message and "big-teacher" in message
    assert f"student {len(pair['tokenizer'])} tokens" in message and f"teacher {len(other)} tokens" in message
    assert "token " in message and "for the teacher" in message
    check_same_vocab(pair["tokenizer"], copy.deepcopy(pair["tokenizer"]), "a", "b")


def test_teacher_kl_matches_kl_div_and_is_zero_against_itself(pair: dict) -> None:
    import torch.nn.functional as F

    tokenizer, teacher = pair["tokenizer"], pair["teacher"]
    student, _ = load_student(
        str(pair["student"]),
        RunConfig.model_validate({"student": "x"}).peft,
        RunConfig.model_validate({"student": "x"}).training,
    )
    examples = make_sft_examples(5, seed=9)
    prompts = [e["prompt"] for e in examples]
    answers = [e["completion"][0]["content"] for e in examples]
    measured = teacher_kl(student, teacher, tokenizer, prompts, answers, batch_size=2)
    expected, tokens = 0.0, 0
    with torch.no_grad():
        for prompt, answer in zip(prompts, answers, strict=True):
            start = len(
                tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)[
                    "input_ids"
                ]
            )
            ids = torch.tensor(
                [
                    tokenizer.apply_chat_template(
                        [*prompt, {"role": "assistant", "content": answer}], tokenize=True, return_dict=True
                    )["input_ids"]
                ]
            )
            s = F.log_softmax(student(ids).logits[0, start - 1 : -1], -1)
            t = F.log_softmax(teacher(ids).logits[0, start - 1 : -1], -1)
            expected += F.kl_div(s, t, log_target=True, reduction="sum").item()
            tokens += ids.shape[1] - start
    assert measured == pytest.approx(expected / tokens, rel=1e-4)
    assert measured > 0.01
    assert teacher_kl(teacher, teacher, tokenizer, prompts, answers) == pytest.approx(0.0, abs=1e-6)


def _greedy(model, tokenizer, prompt: list[dict], max_new_tokens: int) -> str:
    """One prompt's answer by hand: no batch, no padding, the argmax token until an EOS."""
    ids = tokenizer(
        tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True), add_special_tokens=False
    )["input_ids"]
    configured = model.generation_config.eos_token_id
    eos = {tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])}
    new: list[int] = []
    with torch.no_grad():
        while len(new) < max_new_tokens:
            token = int(model(torch.tensor([ids + new], device=model.device)).logits[0, -1].argmax())
            if token in eos:
                break
            new.append(token)
    return tokenizer.decode(new, skip_special_tokens=True)


def test_teacher_answers_are_its_greedy_answers_in_prompt_order(pair: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    teacher, tokenizer = pair["teacher"], pair["tokenizer"]
    # fp32 throughout (no bf16 autocast), so near-ties cannot break differently in the batch and in the loop above.
    monkeypatch.setattr(teacher, "llmops_full_precision", True, raising=False)
    prompts = [e["prompt"] for e in make_sft_examples(3, seed=4)]
    answers = teacher_answers(teacher, tokenizer, prompts, batch_size=2, max_new_tokens=8)
    assert answers == [_greedy(teacher, tokenizer, prompt, 8) for prompt in prompts]
    assert all(answer and answer not in prompt[0]["content"] for answer, prompt in zip(answers, prompts, strict=True))


def test_teacher_answers_are_kept_and_read_back_for_the_same_teacher_and_prompts(
    pair: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmops.evaluation.generate as generation

    teacher, tokenizer = pair["teacher"], pair["tokenizer"]
    prompts = [e["prompt"] for e in make_sft_examples(3, seed=4)]
    first = teacher_answers(teacher, tokenizer, prompts, batch_size=2, max_new_tokens=6, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("answers-*.json"))) == 1 and not list(tmp_path.glob(".*tmp"))
    calls = []
    real = generation.generate
    monkeypatch.setattr(generation, "generate", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert teacher_answers(teacher, tokenizer, prompts, batch_size=2, max_new_tokens=6, cache_dir=tmp_path) == first
    assert calls == []  # read back, not generated
    teacher_answers(teacher, tokenizer, prompts[:2], batch_size=2, max_new_tokens=6, cache_dir=tmp_path)
    teacher_answers(teacher, tokenizer, prompts, batch_size=2, max_new_tokens=7, cache_dir=tmp_path)
    assert calls == [1, 1] and len(list(tmp_path.glob("answers-*.json"))) == 3  # other prompts or length: new key


def test_hidden_loss_by_hand() -> None:
    from llmops.methods.kd_hidden import hidden_loss

    torch.manual_seed(3)
    teacher = {i: torch.randn(2, 5, 4) for i in range(4)}
    student = {0: teacher[0].clone(), 1: torch.randn(2, 5, 4)}
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    expected = []
    for j, t in enumerate([0, 3]):  # student layer 0 is teacher layer 0, student layer 1 is teacher layer 3
        error = sum(
            float(((student[j][b, p] - teacher[t][b, p]) ** 2).sum()) for b in range(2) for p in range(5) if mask[b, p]
        )
        scale = sum(float((teacher[t][b, p] ** 2).sum()) for b in range(2) for p in range(5) if mask[b, p])
        expected.append(error / scale)
    assert expected[0] == 0.0 and expected[1] > 0
    assert hidden_loss(student, teacher, [0, 3], mask).item() == pytest.approx(sum(expected) / 2, rel=1e-5)


def _pruned_student(pair: dict, tmp_path: Path, keep: int) -> Path:
    from llmops.models.prune import prune_to_folder

    texts = _texts(make_sft_examples(8, seed=4))
    prune_to_folder(str(pair["root"] / "teacher"), keep, tmp_path / f"pruned-{keep}", texts=texts)
    return tmp_path / f"pruned-{keep}"


def test_hidden_state_loss_matches_a_pruned_students_layers_to_the_teachers(pair: dict, tmp_path: Path) -> None:
    from llmops.methods.kd import make_kd_trainer
    from llmops.methods.kd_hidden import layer_map
    from llmops.models.prune import read_report

    # Every layer kept: the student is the teacher, so its layers' outputs are the teacher's (no loss).
    whole = _pruned_student(pair, tmp_path, 4)
    cfg = _cfg(whole, tmp_path, kd={"alpha": 0.0, "hidden_weight": 1.0}, max_steps=1)
    _, logs, _ = _all_logs(pair, cfg, tmp_path / "whole")
    assert logs[0]["hidden_loss"] == pytest.approx(0.0, abs=1e-6) and logs[0]["loss"] == pytest.approx(0.0, abs=1e-5)
    # Half the layers removed: student layer j matches teacher layer kept[j]; the total adds weight x hidden.
    half = _pruned_student(pair, tmp_path, 2)
    kept = read_report(half)["kept"]
    cfg = _cfg(half, tmp_path, kd={"alpha": 0.5, "hidden_weight": 2.0}, max_steps=6, learning_rate=3e-3)
    model, tokenizer = _student(cfg)
    assert layer_map(model, pair["teacher"]) == kept
    _, logs, _ = _all_logs(pair, cfg, tmp_path / "half", model=model)
    first = logs[0]
    assert first["hidden_loss"] > 0
    assert first["loss"] == pytest.approx(
        0.5 * first["ce_loss"] + 0.5 * first["kd_loss"] + 2.0 * first["hidden_loss"], rel=1e-3
    )
    assert logs[-1]["hidden_loss"] < first["hidden_loss"]
    # A student of another depth that was not pruned from the teacher cannot be matched.
    cfg = _cfg(pair["student"], tmp_path, kd={"hidden_weight": 1.0}, max_steps=1)
    other, tokenizer = _student(cfg)
    with pytest.raises(ConfigError, match="not a pruned copy of the teacher"):
        make_kd_trainer(other, tokenizer, pair["teacher"], make_sft_examples(4), cfg, tmp_path / "other")


def test_hidden_state_loss_needs_an_online_teacher(tiny_idp: dict) -> None:
    from llmops.pipeline import prepare

    base = {
        "student": str(tiny_idp["model"]),
        "data": str(tiny_idp["train"]),
        "eval_data": str(tiny_idp["eval"]),
        "schema": str(tiny_idp["schema"]),
        "train_type": "KD",
        "teacher": str(tiny_idp["model"]),
        "use_logit_kd": True,
    }
    with pytest.raises(ConfigError, match="online teacher"):
        prepare(RunConfig.model_validate({**base, "kd": {"hidden_weight": 1.0, "cache": True}}))


def test_distil_prompt_takes_the_kd_term_over_every_real_token(pair: dict, tmp_path: Path) -> None:
    from llmops.methods.kd import make_kd_trainer

    cfg = _cfg(pair["student"], tmp_path, kd={"alpha": 0.0, "distil_prompt": True, "temperature": 1.0})
    model, tokenizer = _student(cfg)
    trainer = make_kd_trainer(model, tokenizer, pair["teacher"], make_sft_examples(6), cfg, tmp_path / "run")
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    model.eval()
    loss = trainer.compute_loss(model, batch)
    with torch.no_grad():
        s_logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        t_logits = pair["teacher"](input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    total, count, answer = 0.0, 0, 0
    for row in range(3):
        for t in range(1, batch["input_ids"].shape[1]):
            if not batch["attention_mask"][row, t]:
                continue
            p_t = torch.softmax(t_logits[row, t - 1].double(), -1)
            p_s = torch.softmax(s_logits[row, t - 1].double(), -1)
            total += float((p_t * (p_t.log() - p_s.log())).sum())
            count += 1
            answer += int(batch["labels"][row, t] != -100)
    assert count > 2 * answer > 0  # the prompts are most of the tokens
    assert loss.item() == pytest.approx(total / count, rel=1e-4)
