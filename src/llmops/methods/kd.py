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

from llmops.config import RunConfig
from llmops.errors import ConfigError, ModelError
from llmops.methods.base import Method, MethodContext, OnLog, Prepared, TrainResult
from llmops.methods.kd_loss import kd_trainer_class

log = logging.getLogger(__name__)


class KD(Method):
    """Knowledge distillation from `teacher`: on its logits (`use_logit_kd`, online or cached) or its answers."""

    name = "KD"
    summary = "knowledge distillation from a teacher model (its logits or its answers)"
    adapter_learning_rate = 5e-4
    section = "kd"
    own_keys = ("teacher", "use_logit_kd")

    def train_formats(self, flow_type: str) -> tuple[str, ...]:
        from llmops.data.formats import TEACHER_ANSWER, answer_formats

        return answer_formats(flow_type) + TEACHER_ANSWER

    def check(self, cfg: RunConfig, prepared: Prepared, records: list) -> None:
        """A teacher, except for sequence-level KD on data whose every record has its teacher_output."""
        if cfg.kd.student_from_teacher and not cfg.teacher:
            raise ConfigError("kd.student_from_teacher prunes the teacher into the student: pass --teacher too")
        prepared.teacher_targets = [record.get("teacher_output") is not None for _, record in records]
        prepared.logit_kd = bool(cfg.use_logit_kd and cfg.teacher)
        for key in ("hidden_weight", "distil_prompt"):
            if getattr(cfg.kd, key) and not (prepared.logit_kd and not cfg.kd.cache):
                raise ConfigError(
                    f"kd.{key}: the teacher's layers or prompt logits are read while it runs; it "
                    "needs logit KD with an online teacher (use_logit_kd: true, --teacher, "
                    "kd.cache: false)"
                )
        if cfg.kd.on_policy and not prepared.logit_kd:
            raise ConfigError(
                "kd.on_policy: the teacher scores the student's own answers token by token; it needs "
                "logit KD (use_logit_kd: true) and --teacher"
            )
        if cfg.teacher:
            return
        if not all(prepared.teacher_targets):
            raise ConfigError(
                f"{cfg.data}: KD without --teacher needs a teacher_output in every record; "
                "pass --teacher (hub id or path) so the teacher answers the others"
            )
        if cfg.use_logit_kd:
            print(
                "warning: use_logit_kd needs the teacher's logits and no --teacher is given: distilling from the "
                "data's teacher_output text instead (sequence-level KD); pass --teacher for logit-level KD",
                file=sys.stderr,
            )

    def student_source(self, cfg: RunConfig, prepared: Prepared, run_dir: Path) -> str:
        """With `kd.student_from_teacher`: the teacher depth-pruned (importance measured on the training examples),
        written once into the run folder (a resumed run reuses it)."""
        if not cfg.kd.student_from_teacher:
            return cfg.student
        from llmops.models.prune import PRUNE_FILE, prune_to_folder

        folder = Path(run_dir) / "student"
        if not (folder / PRUNE_FILE).is_file():
            print(
                f"kd: pruning the teacher {cfg.teacher} to {cfg.kd.student_from_teacher} decoder layers "
                f"({cfg.kd.prune_importance} importance on {cfg.kd.prune_calibration} training examples)",
                file=sys.stderr,
            )
            report = prune_to_folder(
                str(cfg.teacher),
                cfg.kd.student_from_teacher,
                folder,
                records=prepared.train,
                method=cfg.kd.prune_importance,
                max_len=cfg.training.max_len,
                calibration=cfg.kd.prune_calibration,
            )
            print(
                f"kd: student = layers {report.kept} of {report.layers_before} "
                f"({report.parameters_after:,} of {report.parameters_before:,} parameters)",
                file=sys.stderr,
            )
        return str(folder)

    def prepare(self, cfg: RunConfig, prepared: Prepared, model: Any, tokenizer: Any) -> MethodContext:
        """The teacher, checked against the student's vocabulary, and its answers to the eval prompts."""
        from llmops.methods.kd_metrics import teacher_answers
        from llmops.models.loader import load_for_inference

        ctx = MethodContext()
        if not cfg.teacher:
            return ctx
        ctx.teacher, teacher_tokenizer = load_for_inference(cfg.teacher)
        check_same_vocab(tokenizer, teacher_tokenizer, cfg.student, cfg.teacher)
        prompts = [example["prompt"] for example in prepared.eval]
        ctx.teacher_answers = teacher_answers(
            ctx.teacher, tokenizer, prompts, cfg.eval.batch_size, cfg.eval.answer_tokens, cache_dir=kd_cache_dir(cfg)
        )
        return ctx

    def train(
        self,
        cfg: RunConfig,
        prepared: Prepared,
        ctx: MethodContext,
        model: Any,
        tokenizer: Any,
        output_dir: Path,
        resume_from: str | bool | None,
        on_log: OnLog,
    ) -> TrainResult:
        if prepared.logit_kd:
            return train_kd(
                model, tokenizer, ctx.teacher, prepared.train, cfg, output_dir, resume_from=resume_from, on_log=on_log
            )
        from llmops.methods.sft import train_sft

        examples = _sequence_kd_examples(cfg, prepared, ctx, tokenizer)
        return train_sft(model, tokenizer, examples, cfg, output_dir, resume_from=resume_from, on_log=on_log)

    def metrics(
        self, cfg: RunConfig, prepared: Prepared, ctx: MethodContext, model: Any, tokenizer: Any
    ) -> dict[str, float]:
        """teacher_kl: the student's divergence from the teacher on the teacher's eval answers."""
        from llmops.methods.kd_metrics import teacher_kl

        if ctx.teacher is None or not prepared.eval:
            return {}
        prompts = [example["prompt"] for example in prepared.eval]
        return {
            "teacher_kl": teacher_kl(
                model, ctx.teacher, tokenizer, prompts, ctx.teacher_answers, batch_size=cfg.eval.batch_size
            )
        }


def _sequence_kd_examples(cfg: RunConfig, prepared: Prepared, ctx: MethodContext, tokenizer: Any) -> list[dict]:
    """SFT examples whose answers come from the teacher where the data has no teacher_output."""
    from llmops.methods.kd_metrics import teacher_answers

    todo = [i for i, has_target in enumerate(prepared.teacher_targets) if not has_target]
    if not todo:
        return prepared.train
    print(f"kd: generating teacher answers for {len(todo)} training examples without teacher_output", file=sys.stderr)
    answers = teacher_answers(
        ctx.teacher,
        tokenizer,
        [prepared.train[i]["prompt"] for i in todo],
        cfg.eval.batch_size,
        cfg.eval.answer_tokens,
        cache_dir=kd_cache_dir(cfg),
    )
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


def kd_cache_dir(cfg: RunConfig) -> Path:
    """Where the teacher's logit cache and its greedy answers are kept: kd.cache_dir, else save_dir/kd-cache."""
    return Path(cfg.kd.cache_dir) if cfg.kd.cache_dir else Path(cfg.save_dir) / "kd-cache"


def check_same_vocab(student_tokenizer: Any, teacher_tokenizer: Any, student_name: str, teacher_name: str) -> None:
    """ConfigError unless both tokenizers map the same tokens to the same ids."""
    student_vocab, teacher_vocab = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    if student_vocab == teacher_vocab and len(student_tokenizer) == len(teacher_tokenizer):
        return
    difference = ""
    for token, token_id in sorted(student_vocab.items(), key=lambda item: item[1]):
        if teacher_vocab.get(token) != token_id:
            other = teacher_vocab.get(token)
            difference = (
                f"; token {token!r} is id {token_id} for the student and "
                f"{'missing' if other is None else f'id {other}'} for the teacher"
            )
            break
    else:
        extra = next((t for t in teacher_vocab if t not in student_vocab), None)
        if extra is not None:
            difference = f"; token {extra!r} (id {teacher_vocab[extra]}) exists only for the teacher"
    sizes = f"student {len(student_tokenizer)} tokens, teacher {len(teacher_tokenizer)} tokens{difference}"
    raise ConfigError(
        f"teacher '{teacher_name}' and student '{student_name}' have different vocabularies "
        f"({sizes}); logit distillation needs the same tokenizer: "
        "pick a teacher from the student's model family"
    )


def _common_vocab(model: Any, teacher: Any, tokenizer: Any) -> int:
    """Logit columns both models share (embeddings are often padded past the tokenizer); all real tokens fit."""
    sizes = [m.get_output_embeddings().weight.shape[0] for m in (model, teacher)]
    if min(sizes) < len(tokenizer):
        raise ModelError(
            f"student ({sizes[0]} logits) and teacher ({sizes[1]} logits): one has fewer outputs than "
            f"the tokenizer's {len(tokenizer)} tokens; they do not share a vocabulary"
        )
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


def make_kd_trainer(
    model: Any,
    tokenizer: Any,
    teacher: Any,
    examples: list[dict],
    cfg: RunConfig,
    output_dir: Path,
    on_log: Callable[[dict], None] | None = None,
) -> Any:
    """The KD trainer, data tokenized and (with `kd.cache`) the teacher cache built or loaded, not yet trained."""
    from llmops.methods.kd_cache import build_or_load
    from llmops.methods.sft import make_trainer

    cfg = _no_packing(cfg)
    # Its compute_loss normalises the loss per rank (no rescaling by the process count): the local token count.
    trainer = make_trainer(
        model,
        tokenizer,
        examples,
        cfg,
        Path(output_dir),
        on_log,
        trainer_cls=kd_trainer_class(),
        desc="kd",
        average_tokens=False,
    )
    trainer.kd = cfg.kd
    trainer.vocab_size = _common_vocab(model, teacher, tokenizer)
    trainer.teacher = _prepare_teacher(teacher, trainer.args.device)
    if cfg.kd.hidden_weight > 0:
        from llmops.methods.kd_hidden import layer_map

        trainer.layer_map = layer_map(model, teacher)
    if cfg.kd.cache:
        trainer.cache = build_or_load(
            teacher,
            trainer.train_dataset,
            trainer.data_collator,
            kd_cache_dir(cfg),
            cfg.kd.top_k or cfg.kd.cache_top_k,
            cfg.kd.temperature,
            trainer.vocab_size,
            batch_size=cfg.training.per_device_train_batch_size,
        )
    return trainer


def train_kd(
    model: Any,
    tokenizer: Any,
    teacher: Any,
    examples: list[dict],
    cfg: RunConfig,
    output_dir: Path,
    resume_from: str | bool | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> KDResult:
    """Distil `teacher` into `model` (in place) on prompt-completion examples; checkpoints go to `output_dir`."""

    def build(out: Path) -> Any:
        return make_kd_trainer(model, tokenizer, teacher, examples, cfg, out, on_log)

    from llmops.methods.trainer import fit

    trainer, result = fit(build, cfg, output_dir, resume_from)
    cache = trainer.cache
    return KDResult(
        **vars(result),
        cache_path=str(cache.path) if cache else None,
        cache_built=bool(cache and cache.built),
        cache_seconds=cache.build_seconds if cache else 0.0,
        cache_bytes_per_token=cache.bytes_per_token if cache else 0.0,
    )
