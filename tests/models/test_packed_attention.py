"""Packed (padding-free) attention: each document sees only itself, exactly as if run alone."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from llmops.models.packed_attention import NAME, packed_attention


def _packed_inputs(docs: list[torch.Tensor]) -> dict:
    lengths = [len(d) for d in docs]
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    return {
        "input_ids": torch.cat(docs)[None],
        "position_ids": torch.cat([torch.arange(n) for n in lengths])[None],
        "cu_seq_lens_q": cu,
        "cu_seq_lens_k": cu,
        "max_length_q": max(lengths),
        "max_length_k": max(lengths),
        "use_cache": False,
    }


def test_packed_logits_and_gradients_match_separate_documents(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    torch.manual_seed(0)
    docs = [torch.randint(5, 250, (n,)) for n in (7, 13, 1, 4)]
    separate = torch.cat([model(input_ids=d[None]).logits[0] for d in docs])
    separate.sum().backward()
    grad_separate = model.model.layers[0].self_attn.q_proj.weight.grad.clone()
    model.zero_grad()
    with packed_attention(model):
        assert model.config._attn_implementation == NAME
        packed = model(**_packed_inputs(docs)).logits[0]
    assert model.config._attn_implementation == "sdpa"  # restored
    torch.testing.assert_close(packed, separate, atol=1e-5, rtol=1e-5)
    packed.sum().backward()
    torch.testing.assert_close(model.model.layers[0].self_attn.q_proj.weight.grad, grad_separate, atol=1e-4, rtol=1e-4)


def test_padded_batches_still_work_under_the_packed_implementation(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    ids = torch.randint(5, 250, (2, 9))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    expected = model(input_ids=ids, attention_mask=mask).logits
    with packed_attention(model):
        got = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(got[0, :6], expected[0, :6])
    torch.testing.assert_close(got[1], expected[1])
