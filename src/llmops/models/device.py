"""Where and in which precision a model trains: CUDA when present, else CPU; bf16 only where supported."""

from __future__ import annotations

import logging
from typing import Any

from llmops.config import TrainingSettings

log = logging.getLogger(__name__)


def has_cuda() -> bool:
    """Whether a CUDA device is usable."""
    import torch

    return torch.cuda.is_available()


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), where autocast to bf16 pays."""
    import torch

    try:
        native = _cpu_flags() & {"avx512_bf16", "amx_bf16"}
        return bool(native) and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def use_bf16(training: TrainingSettings) -> bool:
    """bf16 as set. None = where the hardware computes it natively: a GPU that supports it, a CPU with AVX512-BF16
    or AMX (autocast over fp32 weights; bench/sft_real_model.py: loss curves within 2% of fp32); True on a CPU
    without it = fp32, with a warning."""
    import torch

    if not has_cuda():
        if training.bf16 and not cpu_supports_bf16():
            log.warning("training.bf16: this CPU has no native bf16 (AVX512-BF16/AMX); using fp32")
            return False
        return cpu_supports_bf16() if training.bf16 is None else bool(training.bf16)
    supported = torch.cuda.is_bf16_supported()
    return supported if training.bf16 is None else bool(training.bf16) and supported


def autocast(enabled: bool) -> Any:
    """bf16 autocast on the model's device type when `enabled`, else a no-op context."""
    import contextlib

    import torch

    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast("cuda" if has_cuda() else "cpu", dtype=torch.bfloat16)


def model_dtype(training: TrainingSettings) -> Any:
    """The dtype weights are loaded in: bf16 when training in bf16, else fp32."""
    import torch

    # On CPU bf16 is autocast over fp32 weights (optimizer and LoRA updates stay in full precision).
    return torch.bfloat16 if use_bf16(training) and has_cuda() else torch.float32


def inference_dtype() -> Any:
    """The dtype models are loaded in for generation: bf16 on a GPU that supports it and on a CPU that computes bf16
    natively (AVX512-BF16 / AMX), else fp32."""
    import torch

    if has_cuda():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_supports_bf16() else torch.float32


def eval_load_dtype(bf16: bool | None) -> Any:
    """The dtype `eval.bf16` asks saved models to load in: None = each model's default (saved_inference_dtype),
    false = fp32, true = bf16."""
    import torch

    return None if bf16 is None else (torch.bfloat16 if bf16 else torch.float32)


def quantized_device_map() -> dict[str, Any]:
    """Where a 4-bit model loads: this process's own GPU (LOCAL_RANK under DDP), else the CPU."""
    import os

    if not has_cuda():
        return {"": "cpu"}
    return {"": int(os.environ.get("LOCAL_RANK", "0") or 0)}


def attn_implementation(training: TrainingSettings) -> str | None:
    """The attention kernel to train with: as set; None = on CPU eager for short examples (max_len up to
    EAGER_MAX_LEN: its backward beat SDPA's CPU flash kernel by ~15% on 300-token batches, bench/sft_real_model.py)
    and SDPA for longer ones (full pages: SmolLM2, batches of 4 x 1,200 tokens, 2 cores: SDPA 394 tokens/s, eager
    96, its attention matrices growing with the square of the length); the model's own default on a GPU or with
    packing (the packed-attention kernel that keeps packed documents apart wraps SDPA)."""
    if training.attn_implementation:
        return training.attn_implementation
    if has_cuda() or training.packing:
        return None
    return "eager" if training.max_len <= EAGER_MAX_LEN else "sdpa"


EAGER_MAX_LEN = 512


def use_gradient_checkpointing(training: TrainingSettings) -> bool:
    """Gradient checkpointing as set; None = on for GPUs, off on CPU (where it only costs time)."""
    if training.gradient_checkpointing is not None:
        return bool(training.gradient_checkpointing)
    return has_cuda()
