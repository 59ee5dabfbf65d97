"""What every training method declares, and what the pipeline asks of it.

A method (SFT, KD, DPO, ...) is one module with one `Method` subclass, listed in `llmops.methods.registry`. The
pipeline, validation and the CLI only talk to methods through this interface: which config section and top-level
keys the method uses, which record formats it accepts, how its training examples are built and checked, what it
loads beside the student (a teacher, a reference), how it trains, and which held-out metrics it adds.

Importing a method module must stay cheap (no torch, transformers or TRL at the top): validation and `--help`
import them. The training code imports its libraries inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from llmops.config import RunConfig
from llmops.tasks.base import Task


@dataclass
class TrainResult:
    """What a training run produced."""

    loss_history: list[tuple[int, float]] = field(default_factory=list)
    final_loss: float = float("nan")
    steps: int = 0
    tokens_per_second: float = 0.0
    train_seconds: float = 0.0
    gathered_dir: str | None = None  # FSDP / DeepSpeed: the whole model, gathered from the shards by the Trainer


@dataclass
class Prepared:
    """Validated inputs of a run (llmops.run_inputs.validate): the task and its train/eval examples, no model."""

    task: Task
    train: list[dict]
    eval: list[dict]
    pairs: list[dict] = field(default_factory=list)  # DPO: held-out preference pairs
    teacher_targets: list[bool] = field(default_factory=list)  # KD: which training answers are teacher_output
    logit_kd: bool = False  # KD on the teacher's logits (use_logit_kd with a teacher)


@dataclass
class MethodContext:
    """What a method loads beside the student: a teacher and its answers (KD), a reference model (DPO)."""

    teacher: Any = None
    reference: Any = None
    teacher_answers: list[str] = field(default_factory=list)


OnLog = Callable[[dict], None]


class Method:
    """One training method. Subclasses set the class attributes and override the hooks they need."""

    name: ClassVar[str]  # the train_type value, upper case (e.g. "SFT")
    summary: ClassVar[str] = ""  # one line for `--help` and error messages
    section: ClassVar[str | None] = None  # its RunConfig section (e.g. "kd"), if it has one
    # Top-level RunConfig keys only this method reads: set under another method they are warned about as ignored.
    own_keys: ClassVar[tuple[str, ...]] = ()
    holds_out_pairs: ClassVar[bool] = False  # held-out preference pairs are kept for its metrics (DPO)
    # training.learning_rate when unset, for LoRA/QLoRA adapters (full fine-tuning: 2e-4)
    adapter_learning_rate: ClassVar[float] = 2e-4

    # ------------------------------------------------------------------ data

    def train_formats(self, flow_type: str) -> tuple[str, ...]:
        """The record formats (llmops.data.formats.FORMATS keys) its training data may use."""
        from llmops.data.formats import answer_formats

        return answer_formats(flow_type)

    def eval_formats(self, flow_type: str) -> tuple[str, ...]:
        """The record formats its evaluation data may use."""
        from llmops.data.formats import eval_formats

        return eval_formats(flow_type)

    def train_examples(self, cfg: RunConfig, task: Any, records: list) -> list[dict]:
        """Training records as the method's examples (default: prompt-completion examples)."""
        from llmops.data.formats import to_sft_examples

        return to_sft_examples(records, cfg.flow_type, task.build_prompt, task.format_answer, source=cfg.data or "data")

    def holds_out(self, cfg: RunConfig) -> bool:
        """Whether this run keeps held-out preference pairs for the method's metrics (default: holds_out_pairs)."""
        return self.holds_out_pairs

    def check(self, cfg: RunConfig, prepared: Prepared, records: list) -> None:
        """Method-specific checks of the validated inputs (before any model loads); may fill `prepared`."""

    # ------------------------------------------------------------------ training

    def student_source(self, cfg: RunConfig, prepared: Prepared, run_dir: Path) -> str:
        """What the student is loaded from (default: `student`; KD can make one from its teacher, in `run_dir`)."""
        return cfg.student

    def prepare(self, cfg: RunConfig, prepared: Prepared, model: Any, tokenizer: Any) -> MethodContext:
        """What the method needs beside the student, loaded before training."""
        return MethodContext()

    def prepare_trained(self, cfg: RunConfig, prepared: Prepared, model: Any, tokenizer: Any) -> MethodContext:
        """The same, for evaluating a model this method trained in another process (default: `prepare`)."""
        return self.prepare(cfg, prepared, model, tokenizer)

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
        """Fine-tune `model` in place; Trainer checkpoints go to `output_dir`."""
        raise NotImplementedError

    def metrics(
        self, cfg: RunConfig, prepared: Prepared, ctx: MethodContext, model: Any, tokenizer: Any
    ) -> dict[str, float]:
        """The method's own held-out metrics, measured before and after training like the task's."""
        return {}
