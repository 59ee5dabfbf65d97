"""Group relative policy optimisation on the task's own judges: TRL's GRPOTrainer with the task's reward.

For each training prompt the model samples a group of `grpo.num_generations` answers; each answer is judged by the
task against that prompt's own training example (CodeGen: its program passes the problem's tests in the sandbox,
all answers of a batch in parallel in the warm pool; IDP: field F1 against the gold JSON plus a schema-validity
term), and the policy gradient pushes towards answers better than their group's mean. No answers are needed in the
data: IDP `{"document","fields"}` (any gold format), CodeGen HumanEval records with tests.

Only training examples are ever judged: the reward function holds the training references and is given an index
into them per answer (a dataset column), nothing else. The reference model of the KL term (`grpo.beta`) is the
starting model: under LoRA/QLoRA TRL's frozen copy of the starting adapter (adapter-sized; for the fresh adapter a
run starts with, the same as the base with the adapter disabled: no second model), removed after training; under
full fine-tuning a copy TRL loads from the student's folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from llmops.config import RunConfig
from llmops.errors import ConfigError
from llmops.methods.base import Method, MethodContext, OnLog, Prepared, TrainResult
from llmops.models.device import has_cuda

log = logging.getLogger(__name__)

INDEX = "llmops_index"  # the dataset column that says which training example judges an answer


class GRPO(Method):
    """GRPO on prompts whose answers the task can judge (tests for CodeGen, gold fields for IDP)."""

    name = "GRPO"
    summary = "group relative policy optimisation on the task's own rewards (tests pass, field F1)"
    section = "grpo"

    def train_formats(self, flow_type: str) -> tuple[str, ...]:
        from llmops.data.formats import eval_formats

        return eval_formats(flow_type)

    def train_examples(self, cfg: RunConfig, task: Any, records: list) -> list[dict]:
        return task.eval_examples(records, source=cfg.data or "data")

    def check(self, cfg: RunConfig, prepared: Prepared, records: list) -> None:
        check_batch(cfg)

    def prepare(self, cfg: RunConfig, prepared: Prepared, model: Any, tokenizer: Any) -> MethodContext:
        return MethodContext()

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
        reward = TaskReward(prepared.task, [ex["reference"] for ex in prepared.train], cfg)
        return train_grpo(model, tokenizer, prepared.train, reward, cfg, output_dir, resume_from, on_log)


def check_batch(cfg: RunConfig) -> None:
    """The answers of one optimizer step hold whole groups (TRL's rule), said in our keys."""
    t, g = cfg.training, cfg.grpo
    answers = t.per_device_train_batch_size * t.gradient_accumulation_steps
    if answers % g.num_generations:
        raise ConfigError(
            f"grpo.num_generations {g.num_generations}: training.per_device_train_batch_size x "
            f"gradient_accumulation_steps ({t.per_device_train_batch_size} x {t.gradient_accumulation_steps} = "
            f"{answers}) counts sampled answers and must be a multiple of it (e.g. per_device_train_batch_size "
            f"{g.num_generations * max(1, answers // g.num_generations)})"
        )


def completion_text(completion: Any) -> str:
    """The answer text of a TRL completion (a message list for conversational prompts, else text)."""
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


class TaskReward:
    """The task's reward as a TRL reward function: each answer judged against its own training example.

    `judged` counts how often each training example judged an answer (what a test checks: never a held-out one)."""

    __name__ = "task_reward"  # TRL names the reward's metrics after it: train/rewards/task_reward/mean

    def __init__(self, task: Any, references: list[Any], cfg: RunConfig) -> None:
        self.task = task
        self.references = references
        self.reward_kwargs = task.reward_kwargs(cfg.grpo)  # the task's weights from the grpo section
        self.judged: dict[int, int] = {}
        self.seconds = 0.0
        self.last_seconds = 0.0

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        indices = [int(i) for i in kwargs[INDEX]]
        for i in indices:
            self.judged[i] = self.judged.get(i, 0) + 1
        rewards = self.judge([completion_text(c) for c in completions], indices)
        if callable(kwargs.get("log_metric")):
            kwargs["log_metric"]("reward_seconds", self.last_seconds)
        return rewards

    def judge(self, answers: list[str], indices: list[int]) -> list[float]:
        """Rewards of `answers`, answer i judged by training example `indices[i]`."""
        start = time.perf_counter()
        references = [self.references[i] for i in indices]
        rewards = self.task.rewards(answers, references, **self.reward_kwargs)
        self.last_seconds = time.perf_counter() - start
        self.seconds += self.last_seconds
        return rewards


def grpo_config(cfg: RunConfig, output_dir: Path) -> Any:
    """The TRL GRPOConfig for a run: the `grpo` section plus the shared, CPU-safe trainer settings."""
    from trl import GRPOConfig

    from llmops.methods.trainer import trainer_args

    g = cfg.grpo
    accepted = {f.name for f in dataclasses.fields(GRPOConfig)}
    # max_length (prompt + answer of SFT/DPO) has no GRPO meaning: answers are bounded by max_completion_length.
    shared = {k: v for k, v in trainer_args(cfg, output_dir).items() if k in accepted}
    return GRPOConfig(
        **shared,
        num_generations=g.num_generations,
        beta=g.beta,
        temperature=g.temperature,
        top_p=g.top_p,
        max_completion_length=g.max_completion_length,
        loss_type=g.loss_type,
        scale_rewards=g.scale_rewards,
        disable_dropout=True,
        log_completions=False,
    )


def _dataset(examples: list[dict]) -> Any:
    from datasets import Dataset

    return Dataset.from_list([{"prompt": ex["prompt"], INDEX: i} for i, ex in enumerate(examples)])


def make_trainer(
    model: Any,
    tokenizer: Any,
    examples: list[dict],
    reward: TaskReward,
    cfg: RunConfig,
    output_dir: Path,
    on_log: OnLog | None = None,
) -> Any:
    """The configured GRPOTrainer (not yet trained); the reward is the task's, on the training examples only."""
    from transformers import PrinterCallback
    from trl import GRPOTrainer

    from llmops.methods.train_progress import RichProgressCallback
    from llmops.methods.trainer import Relay, keep_adapter_precision, quiet_datasets

    args = grpo_config(cfg, Path(output_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    with quiet_datasets():
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[cast(Any, reward)],  # a callable TRL calls like its reward functions
            args=args,
            train_dataset=_dataset(examples),
            processing_class=tokenizer,
            callbacks=[RichProgressCallback("grpo"), Relay(on_log)],
        )
    trainer.remove_callback(PrinterCallback)  # our progress callback prints instead
    keep_adapter_precision(trainer, args.bf16 and has_cuda())
    return trainer


@contextlib.contextmanager
def constrained_rollouts(model: Any, tokenizer: Any, task: Any, cfg: RunConfig) -> Iterator[None]:
    """IDP rollouts decoded under the schema (eval.constrained): TRL's generate call takes no logits processor, so
    the model's `generate` is wrapped, for the training only, to add the grammar's. Every sampled answer then
    parses, and the group's rewards differ by what the answers extract. The loss still uses the model's own
    (unmasked) log-probabilities of the sampled tokens."""
    from types import SimpleNamespace

    from llmops.evaluation.eval_set import decoding

    settings = SimpleNamespace(max_new_tokens=cfg.grpo.max_completion_length, constrained=cfg.eval.constrained)
    grammar = decoding(model, tokenizer, task, settings)[0]
    if grammar is None:
        yield
        return
    from transformers import LogitsProcessorList

    from llmops.evaluation.constrained import GrammarProcessor

    original = model.generate
    vocab = int(model.config.vocab_size)

    def generate(*args: Any, **kwargs: Any) -> Any:
        rows = int(kwargs["input_ids"].shape[0]) if "input_ids" in kwargs else int(args[0].shape[0])
        kwargs["logits_processor"] = LogitsProcessorList([GrammarProcessor([grammar] * rows, vocab)])
        return original(*args, **kwargs)

    model.generate = generate
    try:
        yield
    finally:
        del model.generate


def train_grpo(
    model: Any,
    tokenizer: Any,
    examples: list[dict],
    reward: TaskReward,
    cfg: RunConfig,
    output_dir: Path,
    resume_from: str | bool | None = None,
    on_log: OnLog | None = None,
) -> TrainResult:
    """Train `model` in place with GRPO on the task's reward; checkpoints go to `output_dir`."""
    from llmops.methods.trainer import fit

    def build(out: Path) -> Any:
        return make_trainer(model, tokenizer, examples, reward, cfg, out, on_log)

    with constrained_rollouts(model, tokenizer, reward.task, cfg):
        result = fit(build, cfg, output_dir, resume_from)[1]
    if "ref" in getattr(model, "peft_config", {}):  # TRL's frozen copy of the starting adapter: the KL reference
        model.delete_adapter("ref")
    answers = sum(reward.judged.values())
    log.info(
        "GRPO: %d answers judged in %.1f s (%.1f ms each)",
        answers,
        reward.seconds,
        1000 * reward.seconds / max(1, answers),
    )
    return result
