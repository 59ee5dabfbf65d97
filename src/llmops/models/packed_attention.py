"""Padding-free attention on plain SDPA: each packed document attends only to itself, at per-document cost.

TRL's padding-free packing flattens a batch into one row with `position_ids` restarting at each document and
`cu_seq_lens_q` marking the boundaries. Stock SDPA then builds a block-diagonal (N x N) mask over the whole flattened
batch and attends over all of it: correct, but quadratic in the batch's token count, which on CPU makes packing
slower than padding. Here the attention regathers the flat row into (documents, longest document) and runs causal
SDPA on that, while every other layer keeps working on the unpadded tokens. Without `cu_seq_lens_q` it is SDPA.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "llmops_packed_sdpa"


def _doc_layout(cu_seq_lens: torch.Tensor, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather indices (docs, max_len) into the flat row, and which of them are real tokens."""
    lengths = cu_seq_lens.diff()
    offsets = torch.arange(max_len, device=cu_seq_lens.device)
    index = (cu_seq_lens[:-1, None] + offsets[None, :]).clamp(max=cu_seq_lens[-1] - 1)
    return index, offsets[None, :] < lengths[:, None]


def packed_sdpa_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA over each packed document separately; plain SDPA when the batch is not packed."""
    cu = kwargs.get("cu_seq_lens_q")
    if cu is None or query.shape[0] != 1 or attention_mask is not None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    cu = cu.to(query.device)
    max_len = kwargs.get("max_length_q") or int(cu.diff().max())
    index, valid = _doc_layout(cu, int(max_len))
    n_rep = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, n_rep), repeat_kv(value, n_rep)

    def per_doc(x: torch.Tensor) -> torch.Tensor:  # (1, heads, N, dim) -> (docs, heads, max_len, dim)
        return x[0][:, index].transpose(0, 1)

    # Padding sits after each document's last token, so the causal mask alone keeps real queries off it.
    out = torch.nn.functional.scaled_dot_product_attention(
        per_doc(query), per_doc(key), per_doc(value), dropout_p=dropout, scale=scaling, is_causal=True
    )
    return out.transpose(1, 2)[valid].unsqueeze(0), None


def _mask(*args: Any, **kwargs: Any) -> Any:
    # No mask at all for unpadded (packed) batches: boundaries come from cu_seq_lens, causality from is_causal.
    if kwargs.get("attention_mask") is None:
        return None
    return sdpa_mask(*args, **kwargs)


AttentionInterface.register(NAME, packed_sdpa_forward)
AttentionMaskInterface.register(NAME, _mask)


@contextlib.contextmanager
def packed_attention(model: Any) -> Iterator[None]:
    """Use the packed attention while the block runs, then restore the model's own attention implementation."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    previous = base.config._attn_implementation
    if previous not in ("sdpa", NAME):
        yield  # eager or flash kernels: leave them alone, TRL handles those itself
        return
    base.set_attn_implementation(NAME)
    try:
        yield
    finally:
        base.set_attn_implementation(previous)
