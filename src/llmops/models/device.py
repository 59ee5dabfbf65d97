"""Where and in which precision a model trains: CUDA when present, else CPU; bf16 only where supported."""

from __future__ import annotations

from typing import Any

from llmops.config import TrainingSettings


def has_cuda() -> bool:
    """Whether a CUDA device is usable."""
    import torch

    return torch.cuda.is_available()


def use_bf16(training: TrainingSettings) -> bool:
    """bf16 as set; None = on a GPU that supports it, never on CPU."""
    import torch

    if not has_cuda():
        return False
    supported = torch.cuda.is_bf16_supported()
    return supported if training.bf16 is None else bool(training.bf16) and supported


def model_dtype(training: TrainingSettings) -> Any:
    """The dtype weights are loaded in: bf16 when training in bf16, else fp32."""
    import torch

    return torch.bfloat16 if use_bf16(training) else torch.float32


def use_gradient_checkpointing(training: TrainingSettings) -> bool:
    """Gradient checkpointing as set; None = on for GPUs, off on CPU (where it only costs time)."""
    if training.gradient_checkpointing is not None:
        return bool(training.gradient_checkpointing)
    return has_cuda()
