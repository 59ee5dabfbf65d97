"""The smallest real method, as a user would add one: SFT with NEFTune's noisy embeddings (Jain et al., 2023).

One module with one Method subclass; registering it is one line in llmops.methods.registry.METHODS
(`"NEFT": "neftune_method:NEFTune"`). Validation, the pipeline, the CLI's train_type and the registry name
(llmops-<flow>-neft) all come from that; nothing else changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops.config import RunConfig
from llmops.methods.base import Method, MethodContext, OnLog, TrainResult

NOISE_ALPHA = 5.0  # the paper's default
TRAINED_WITH: list[float] = []  # the noise each training used (what the test checks)


class NEFTune(Method):
    name = "NEFT"
    summary = "SFT with uniform noise on the input embeddings (NEFTune)"

    def train(
        self,
        cfg: RunConfig,
        prepared: Any,
        ctx: MethodContext,
        model: Any,
        tokenizer: Any,
        output_dir: Path,
        resume_from: str | bool | None,
        on_log: OnLog,
    ) -> TrainResult:
        from llmops.methods.sft import make_trainer
        from llmops.methods.trainer import fit

        def build(out: Path) -> Any:
            trainer = make_trainer(model, tokenizer, prepared.train, cfg, out, on_log, desc="neft")
            trainer.neftune_noise_alpha = NOISE_ALPHA  # the Trainer hooks the embeddings while it trains
            TRAINED_WITH.append(trainer.neftune_noise_alpha)
            return trainer

        return fit(build, cfg, output_dir, resume_from)[1]
