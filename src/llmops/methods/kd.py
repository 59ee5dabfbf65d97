"""Knowledge distillation: SFT's trainer with loss = alpha * CE + (1 - alpha) * KD against a teacher's logits.

The teacher runs online (a forward under no_grad on each batch) or offline from a top-k cache built once before
training (`methods/kd_cache.py`). Tokenization, answer-only labels, checkpoints, resume and progress are SFT's
(`methods/sft.py`); only `compute_loss` differs. The math is in `methods/losses.py`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.config import KDSettings, RunConfig
from llmops.errors import ConfigError, ModelError
from llmops.methods.base import Method, MethodContext, OnLog, TrainResult

log = logging.getLogger(__name__)


class KD(Method):
    """Knowledge distillation from `teacher`: on its logits (`use_logit_kd`, online or cached) or its answers."""

    name = "KD"
    summary = "knowledge distillation from a teacher model (its logits or its answers)"
    section = "kd"
    own_keys = ("teacher", "use_logit_kd")

    def train_formats(self, flow_type: str) -> tuple[str, ...]:
        from llmops.data.formats import TEACHER_ANSWER, answer_formats

        return answer_formats(flow_type) + TEACHER_ANSWER

    def check(self, cfg: RunConfig, prepared: Any, records: list) -> None:
        """A teacher, except for sequence-level KD on data whose every record has its teacher_output."""
        if cfg.kd.student_from_teacher and not cfg.teacher:
            raise ConfigError("kd.student_from_teacher prunes the teacher into the student: pass --teacher too")
        prepared.teacher_targets = [record.get("teacher_output") is not None for _, record in records]
        prepared.logit_kd = bool(cfg.use_logit_kd and cfg.teacher)
        if cfg.kd.on_policy and not prepared.logit_kd:
            raise ConfigError("kd.on_policy: the teacher scores the student's own answers token by token; it needs "
                              "logit KD (use_logit_kd: true) and --teacher")
        if cfg.teacher:
            return
        if not all(prepared.teacher_targets):
            raise ConfigError(f"{cfg.data}: KD without --teacher needs a teacher_output in every record; "
                              "pass --teacher (hub id or path) so the teacher answers the others")
        if cfg.use_logit_kd:
            print("warning: use_logit_kd needs the teacher's logits and no --teacher is given: distilling from the "
                  "data's teacher_output text instead (sequence-level KD); pass --teacher for logit-level KD",
                  file=sys.stderr)

    def student_source(self, cfg: RunConfig, prepared: Any, run_dir: Path) -> str:
        """With `kd.student_from_teacher`: the teacher depth-pruned (importance measured on the training examples),
        written once into the run folder (a resumed run reuses it)."""
        if not cfg.kd.student_from_teacher:
            return cfg.student
        from llmops.models.prune import PRUNE_FILE, prune_to_folder

        folder = Path(run_dir) / "student"
        if not (folder / PRUNE_FILE).is_file():
            print(f"kd: pruning the teacher {cfg.teacher} to {cfg.kd.student_from_teacher} decoder layers "
                  f"({cfg.kd.prune_importance} importance on {cfg.kd.prune_calibration} training examples)",
                  file=sys.stderr)
            report = prune_to_folder(cfg.teacher, cfg.kd.student_from_teacher, folder, records=prepared.train,
                                     method=cfg.kd.prune_importance, max_len=cfg.training.max_len,
                                     calibration=cfg.kd.prune_calibration)
            print(f"kd: student = layers {report.kept} of {report.layers_before} "
                  f"({report.parameters_after:,} of {report.parameters_before:,} parameters)", file=sys.stderr)
        return str(folder)

    def prepare(self, cfg: RunConfig, prepared: Any, model: Any, tokenizer: Any) -> MethodContext:
        """The teacher, checked against the student's vocabulary, and its answers to the eval prompts."""
        from llmops.models.loader import load_for_inference

        ctx = MethodContext()
        if not cfg.teacher:
            return ctx
        ctx.teacher, teacher_tokenizer = load_for_inference(cfg.teacher)
        check_same_vocab(tokenizer, teacher_tokenizer, cfg.student, cfg.teacher)
        prompts = [example["prompt"] for example in prepared.eval]
        ctx.teacher_answers = teacher_answers(ctx.teacher, tokenizer, prompts, cfg.eval.batch_size,
                                              cfg.eval.max_new_tokens)
        return ctx

    def train(self, cfg: RunConfig, prepared: Any, ctx: MethodContext, model: Any, tokenizer: Any,
              output_dir: Path, resume_from: str | bool | None, on_log: OnLog) -> TrainResult:
        if prepared.logit_kd:
            return train_kd(model, tokenizer, ctx.teacher, prepared.train, cfg, output_dir, resume_from=resume_from,
                            on_log=on_log)
        from llmops.methods.sft import train_sft

        examples = _sequence_kd_examples(cfg, prepared, ctx, tokenizer)
        return train_sft(model, tokenizer, examples, cfg, output_dir, resume_from=resume_from, on_log=on_log)

    def metrics(self, cfg: RunConfig, prepared: Any, ctx: MethodContext, model: Any,
                tokenizer: Any) -> dict[str, float]:
        """teacher_kl: the student's divergence from the teacher on the teacher's eval answers."""
        if ctx.teacher is None or not prepared.eval:
            return {}
        prompts = [example["prompt"] for example in prepared.eval]
        return {"teacher_kl": teacher_kl(model, ctx.teacher, tokenizer, prompts, ctx.teacher_answers,
                                         batch_size=cfg.eval.batch_size)}


def _sequence_kd_examples(cfg: RunConfig, prepared: Any, ctx: MethodContext, tokenizer: Any) -> list[dict]:
    """SFT examples whose answers come from the teacher where the data has no teacher_output."""
    todo = [i for i, has_target in enumerate(prepared.teacher_targets) if not has_target]
    if not todo:
        return prepared.train
    print(f"kd: generating teacher answers for {len(todo)} training examples without teacher_output",
          file=sys.stderr)
    answers = teacher_answers(ctx.teacher, tokenizer, [prepared.train[i]["prompt"] for i in todo],
                              cfg.eval.batch_size, cfg.eval.max_new_tokens)
    examples = list(prepared.train)
    for i, answer in zip(todo, answers):
        examples[i] = {**examples[i], "completion": [{"role": "assistant", "content": answer}]}
    return examples


@dataclass
class KDResult(TrainResult):
    """A training run's result plus what the offline teacher cache cost."""

    cache_path: str | None = None
    cache_built: bool = False
    cache_seconds: float = 0.0
    cache_bytes_per_token: float = 0.0


def check_same_vocab(student_tokenizer: Any, teacher_tokenizer: Any, student_name: str, teacher_name: str) -> None:
    """ConfigError unless both tokenizers map the same tokens to the same ids."""
    student_vocab, teacher_vocab = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    if student_vocab == teacher_vocab and len(student_tokenizer) == len(teacher_tokenizer):
        return
    difference = ""
    for token, token_id in sorted(student_vocab.items(), key=lambda item: item[1]):
        if teacher_vocab.get(token) != token_id:
            other = teacher_vocab.get(token)
            difference = (f"; token {token!r} is id {token_id} for the student and "
                          f"{'missing' if other is None else f'id {other}'} for the teacher")
            break
    else:
        extra = next((t for t in teacher_vocab if t not in student_vocab), None)
        if extra is not None:
            difference = f"; token {extra!r} (id {teacher_vocab[extra]}) exists only for the teacher"
    sizes = f"student {len(student_tokenizer)} tokens, teacher {len(teacher_tokenizer)} tokens{difference}"
    raise ConfigError(f"teacher '{teacher_name}' and student '{student_name}' have different vocabularies "
                      f"({sizes}); logit distillation needs the same tokenizer: "
                      "pick a teacher from the student's model family")


def _kd_trainer_class() -> type:
    from trl import SFTTrainer

    class KDTrainer(SFTTrainer):
        """SFTTrainer whose loss mixes answer-token CE with distillation from `self.teacher` or `self.cache`."""

        teacher: Any = None
        cache: Any = None  # a kd_cache.TeacherCache
        kd: KDSettings = KDSettings()
        vocab_size: int = 0

        def compute_loss(self, model: Any, inputs: dict, return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            return _kd_compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

    return KDTrainer


def _answer_columns(mask: Any) -> Any:
    """Positions from the batch's first answer token to its last ([batch, seq-1] next-token mask): the only logits
    the losses need (a 49k-vocabulary head over prompt and padding is most of a step's memory and time)."""
    import torch

    columns = mask.any(dim=0).nonzero().flatten()
    if columns.numel() == 0:
        return torch.arange(0, 1, device=mask.device)
    return torch.arange(int(columns[0]), int(columns[-1]) + 1, device=mask.device)


def _kd_compute_loss(trainer: Any, model: Any, inputs: dict, return_outputs: bool, num_items_in_batch: Any) -> Any:
    """Student forward on the answer positions, then the loss of the batch: off-policy, alpha * CE + (1 - alpha) *
    KD on the data's answers; on-policy (a `kd.on_policy` share of training batches), the divergence alone on the
    student's own sampled answers, scored by the teacher. CE, KD, accuracy and the on-policy share are logged."""
    import torch

    from llmops.methods.kd_on_policy import on_policy_now, sample_on_policy
    from llmops.methods.losses import completion_ce, distillation_total, kd_loss

    mode = "train" if trainer.model.training else "eval"
    on_policy = mode == "train" and on_policy_now(trainer)
    if on_policy:
        inputs = sample_on_policy(trainer, model, inputs)
        trainer.last_on_policy_batch = inputs
    targets = inputs["labels"][:, 1:]
    mask = targets != -100
    keep = _answer_columns(mask)
    outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False,
                    logits_to_keep=keep)
    logits, kept = outputs.logits, mask[:, keep]
    student = logits[..., :trainer.vocab_size][kept]  # [answer tokens, vocab]: no copies of prompt positions
    count = kept.sum()
    kd_settings = trainer.kd
    if not bool(count):
        loss = ce = kd = logits.sum() * 0.0
    elif on_policy:
        teacher = _online_teacher_logits(trainer, inputs, keep, kept, student.device)
        kd = kd_loss(student, teacher, torch.ones_like(kept[kept]), loss=kd_settings.on_policy_loss,
                     temperature=kd_settings.temperature, beta=kd_settings.beta)
        ce, loss = None, kd
    else:
        ce = completion_ce(logits, targets[:, keep])
        kd = _kd_term(trainer, inputs, student, mask, keep, kept)
        loss = distillation_total(ce, kd, kd_settings.alpha)
    if num_items_in_batch is not None:  # token-weighted across gradient accumulation, like SFT's loss
        loss = loss * count / torch.as_tensor(num_items_in_batch, device=loss.device).clamp(min=1)
    with torch.no_grad():
        correct = (student.argmax(-1) == targets[:, keep][kept]).sum()
    metrics = trainer._metrics[mode]
    if ce is not None:
        metrics["ce_loss"].append(ce.item())
    metrics["kd_loss"].append(kd.item())
    metrics["mean_token_accuracy"].append((correct / count.clamp(min=1)).item())
    if mode == "train":
        metrics["on_policy"].append(float(on_policy))
        trainer._total_train_tokens += int(inputs["attention_mask"].sum())
    metrics["num_tokens"] = [trainer._total_train_tokens]
    return (loss, outputs) if return_outputs else loss


def _online_teacher_logits(trainer: Any, inputs: dict, keep: Any, kept: Any, device: Any) -> Any:
    """The teacher's logits at the answer positions of the batch, [answer tokens, vocab], under no_grad."""
    import torch

    teacher = trainer.teacher
    teacher_device = next(teacher.parameters()).device
    with torch.no_grad():
        logits = teacher(input_ids=inputs["input_ids"].to(teacher_device),
                         attention_mask=inputs["attention_mask"].to(teacher_device), use_cache=False,
                         logits_to_keep=keep.to(teacher_device)).logits
    return logits[..., :trainer.vocab_size][kept.to(teacher_device)].to(device)


def _kd_term(trainer: Any, inputs: dict, student: Any, mask: Any, keep: Any, kept: Any) -> Any:
    """The off-policy distillation loss of a batch (student logits [answer tokens, vocab]), from the cache or from
    an online teacher forward."""
    import torch

    from llmops.methods.losses import kd_loss, topk_kd_loss, topk_logprobs

    kd = trainer.kd
    options = {"loss": kd.loss, "temperature": kd.temperature, "beta": kd.beta}
    every = torch.ones(student.shape[0], dtype=torch.bool, device=student.device)
    if trainer.cache is not None:
        values, ids = trainer.cache.lookup(inputs["input_ids"], inputs.get("attention_mask"), mask)
        return topk_kd_loss(student, values[:, keep][kept], ids[:, keep][kept], every, **options)
    teacher = _online_teacher_logits(trainer, inputs, keep, kept, student.device)
    if kd.top_k:
        values, ids = topk_logprobs(teacher, min(kd.top_k, trainer.vocab_size), kd.temperature)
        return topk_kd_loss(student, values, ids, every, **options)
    return kd_loss(student, teacher, every, **options)


def _common_vocab(model: Any, teacher: Any, tokenizer: Any) -> int:
    """Logit columns both models share (embeddings are often padded past the tokenizer); all real tokens fit."""
    sizes = [m.get_output_embeddings().weight.shape[0] for m in (model, teacher)]
    if min(sizes) < len(tokenizer):
        raise ModelError(f"student ({sizes[0]} logits) and teacher ({sizes[1]} logits): one has fewer outputs than "
                         f"the tokenizer's {len(tokenizer)} tokens; they do not share a vocabulary")
    return min(sizes)


def _prepare_teacher(teacher: Any, device: Any) -> Any:
    """Teacher frozen, in eval mode, on the student's device (unless it is spread over devices already)."""
    teacher.eval()
    teacher.requires_grad_(False)
    if getattr(teacher, "hf_device_map", None) is None and not getattr(teacher, "is_loaded_in_4bit", False):
        teacher.to(device)
    return teacher


def _no_packing(cfg: RunConfig) -> RunConfig:
    if not cfg.training.packing:
        return cfg
    log.info("knowledge distillation trains without packing (teacher logits are matched per padded row)")
    return cfg.model_copy(update={"training": cfg.training.model_copy(update={"packing": False})})


def make_kd_trainer(model: Any, tokenizer: Any, teacher: Any, examples: list[dict], cfg: RunConfig,
                    output_dir: Path, on_log: Callable[[dict], None] | None = None) -> Any:
    """The KD trainer, data tokenized and (with `kd.cache`) the teacher cache built or loaded, not yet trained."""
    from llmops.methods.kd_cache import build_or_load
    from llmops.methods.sft import make_trainer

    cfg = _no_packing(cfg)
    # Its compute_loss normalises the loss per rank (no rescaling by the process count): the local token count.
    trainer = make_trainer(model, tokenizer, examples, cfg, Path(output_dir), on_log,
                           trainer_cls=_kd_trainer_class(), desc="kd", average_tokens=False)
    trainer.kd = cfg.kd
    trainer.vocab_size = _common_vocab(model, teacher, tokenizer)
    trainer.teacher = _prepare_teacher(teacher, trainer.args.device)
    if cfg.kd.cache:
        cache_dir = Path(cfg.kd.cache_dir) if cfg.kd.cache_dir else Path(cfg.save_dir) / "kd-cache"
        trainer.cache = build_or_load(teacher, trainer.train_dataset, trainer.data_collator, cache_dir,
                                      cfg.kd.top_k or cfg.kd.cache_top_k, cfg.kd.temperature, trainer.vocab_size,
                                      batch_size=cfg.training.per_device_train_batch_size)
    return trainer


def train_kd(model: Any, tokenizer: Any, teacher: Any, examples: list[dict], cfg: RunConfig, output_dir: Path,
             resume_from: str | bool | None = None, on_log: Callable[[dict], None] | None = None) -> KDResult:
    """Distil `teacher` into `model` (in place) on prompt-completion examples; checkpoints go to `output_dir`."""
    def build(out: Path) -> Any:
        return make_kd_trainer(model, tokenizer, teacher, examples, cfg, out, on_log)

    from llmops.methods.trainer import fit

    trainer, result = fit(build, cfg, output_dir, resume_from)
    cache = trainer.cache
    return KDResult(**vars(result), cache_path=str(cache.path) if cache else None,
                    cache_built=bool(cache and cache.built), cache_seconds=cache.build_seconds if cache else 0.0,
                    cache_bytes_per_token=cache.bytes_per_token if cache else 0.0)


def _answer_batch(tokenizer: Any, prompts: list[list[dict]], answers: list[str]) -> tuple[Any, Any, Any]:
    """Right-padded ids, attention mask and a [batch, seq-1] mask of next-token positions inside the answer."""
    import torch

    rows, starts = [], []
    for prompt, answer in zip(prompts, answers, strict=True):
        prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                   return_dict=True)["input_ids"]
        full = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": answer}], tokenize=True,
                                             return_dict=True)["input_ids"]
        rows.append(full)
        starts.append(len(prompt_ids))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    answer = torch.zeros((len(rows), width - 1), dtype=torch.bool)
    for i, (row, start) in enumerate(zip(rows, starts, strict=True)):
        ids[i, :len(row)] = torch.tensor(row)
        attention[i, :len(row)] = 1
        answer[i, max(start - 1, 0):len(row) - 1] = True  # logits at t predict token t + 1
    return ids, attention, answer


def teacher_kl(student: Any, teacher: Any, tokenizer: Any, prompts: list[list[dict]], answers: list[str],
               batch_size: int = 8, temperature: float = 1.0) -> float:
    """Mean KL(teacher || student) per answer token, both teacher-forced on prompt + answer (chat template)."""
    import torch

    from llmops.methods.losses import kd_loss

    if not prompts:
        raise ModelError("teacher_kl: no examples to measure on")
    modes = (student.training, teacher.training)
    student.eval()
    teacher.eval()
    total, tokens = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(prompts), batch_size):
                ids, attention, mask = _answer_batch(tokenizer, prompts[start:start + batch_size],
                                                     answers[start:start + batch_size])
                keep = _answer_columns(mask)  # the heads only over the answers: no [batch, seq, vocab] logits
                logits = [m(input_ids=ids.to(d), attention_mask=attention.to(d), use_cache=False,
                            logits_to_keep=keep.to(d)).logits
                          for m, d in ((student, _device(student)), (teacher, _device(teacher)))]
                vocab = min(x.shape[-1] for x in logits)
                s, t = (x[..., :vocab].float().cpu() for x in logits)
                kept = mask[:, keep]
                count = int(kept.sum())
                total += float(kd_loss(s, t, kept, temperature=temperature)) / temperature**2 * count
                tokens += count
    finally:
        student.train(modes[0])
        teacher.train(modes[1])
    return total / max(tokens, 1)


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def teacher_answers(teacher: Any, tokenizer: Any, prompts: list[list[dict]], batch_size: int,
                    max_new_tokens: int) -> list[str]:
    """Greedy teacher generations, the targets of sequence-level KD when records carry no teacher_output."""
    from llmops.evaluation.generate import generate

    return generate(teacher, tokenizer, prompts, batch_size=batch_size, max_new_tokens=max_new_tokens)
