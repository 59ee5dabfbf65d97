"""Default sizes of the quickstart's synthetic data and tiny model (see configs/quickstart-idp.yaml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuickstartSettings:
    """Data and model sizes for `llmops quickstart --flow idp`."""

    n_train: int = 12000
    n_eval_per_class: int = 40
    mini_fraction: float = 0.25
    vocab_size: int = 512
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 2
    seed: int = 0
