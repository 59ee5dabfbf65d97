"""Batched greedy or sampled generation with a chat template: left padding, length-sorted batches, progress."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from typing import Any

from llmops.errors import ModelError
from llmops.evaluation.stops import eos_ids
from llmops.progress import progress_bar


def _encode(
    tokenizer: Any, prompts: list[list[dict[str, str]]], limit: int | None = None, names: list[str] | None = None
) -> list[list[int]]:
    """Token ids of each prompt rendered by the chat template, ready for the assistant's answer; a prompt longer
    than `limit` tokens has its document cut to fit, with a warning (llmops.evaluation.context)."""
    from llmops.evaluation.context import shorten_messages

    if not getattr(tokenizer, "chat_template", None):
        raise ModelError("the tokenizer has no chat template; use an instruct/chat model or set one")
    encoded = []
    for i, messages in enumerate(prompts):
        ids = _render(tokenizer, messages)
        if limit is not None and len(ids) > limit:
            what = f"document {names[i]!r}" if names else f"prompt {i + 1} of {len(prompts)}"
            ids = _render(tokenizer, shorten_messages(tokenizer, messages, len(ids), limit, what))[-limit:]
        encoded.append(ids)
    return encoded


def _render(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # The template already writes any BOS it wants; adding special tokens again would double it.
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _positions(model: Any) -> int | None:
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return int(positions) if positions else None


def prompt_limit(model: Any, max_new_tokens: int) -> int | None:
    """The longest prompt that leaves room for `max_new_tokens` in the model's context (None: unknown); an answer
    budget over half the context (a schema's bound) keeps at least half of it for the prompt, and is itself cut
    to what the prompt leaves (`_generate_ids`)."""
    positions = _positions(model)
    return positions - min(max_new_tokens, positions // 2) if positions else None


def _left_pad(batch: list[list[int]], pad_id: int, device: Any) -> tuple[Any, Any]:
    """Input ids and attention mask of a batch, padded on the left."""
    import torch

    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        if ids:
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[row, width - len(ids) :] = 1
    return input_ids.to(device), attention.to(device)


def _until_eos(ids: list[int], eos_ids: list[int]) -> list[int]:
    """The generated ids before the first EOS."""
    for i, token in enumerate(ids):
        if token in eos_ids:
            return ids[:i]
    return ids


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[list[dict[str, str]]],
    batch_size: int,
    max_new_tokens: int,
    desc: str = "generating",
    bf16: bool | None = None,
    grammar: Any = None,
    names: list[str] | None = None,
) -> list[str]:
    """Greedy completions (special tokens skipped) of chat `prompts`, in input order. `bf16`: autocast (None = on
    GPUs, and on CPUs that compute bf16 natively, for a model in fp32). `grammar`: a compiled JSON grammar
    (`llmops.evaluation.constrained`) every answer is decoded under; an answer still open at `max_new_tokens` is
    closed by the grammar (`constrained.close_answer`), so it parses and validates. `names` (e.g. document ids)
    name a prompt that is too long for the context in the warning."""
    if not prompts:
        return []
    encoded = _encode(tokenizer, prompts, prompt_limit(model, max_new_tokens), names)
    with generation_model(model, bf16) as model:
        options = {"max_new_tokens": max_new_tokens, "do_sample": False}
        return _generate_ids(model, tokenizer, encoded, batch_size, desc, options, bf16, grammar, close=True)


def sample(
    model: Any,
    tokenizer: Any,
    prompts: list[list[dict[str, str]]],
    n: int,
    batch_size: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    seed: int = 0,
    desc: str = "sampling",
    bf16: bool | None = None,
    grammar: Any = None,
) -> list[list[str]]:
    """`n` sampled completions of each chat prompt (seeded), in input order; under `grammar` when given."""
    import torch

    if not prompts:
        return []
    torch.manual_seed(seed)
    encoded = [ids for ids in _encode(tokenizer, prompts, prompt_limit(model, max_new_tokens)) for _ in range(n)]
    options: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": True,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": 0,
    }
    if grammar is not None:  # the grammar processor masks first, then applies temperature and top-p itself
        options.update(temperature=1.0, top_p=1.0, llmops_sampling=(temperature, top_p))
    with generation_model(model, bf16) as model:
        flat = _generate_ids(model, tokenizer, encoded, batch_size, desc, options, bf16, grammar)
    return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]


def generation_autocast(model: Any, bf16: bool | None = None) -> Any:
    """bf16 autocast for generating with `model` (fp32 weights) where it pays: asked for, or (None) on a GPU or a
    CPU with native bf16 (AVX512-BF16 / AMX), unless the model computes from 4-bit weights or was loaded in fp32
    on purpose (load_for_inference); else a no-op context."""
    import torch

    from llmops.models.device import autocast, cpu_supports_bf16

    param = next(model.parameters(), None)
    if param is None or param.dtype != torch.float32 or bf16 is False:
        return autocast(False)
    if bf16 is None and (getattr(model, "is_loaded_in_4bit", False) or getattr(model, "llmops_full_precision", False)):
        return autocast(False)
    if param.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 or cpu_supports_bf16() else autocast(False)


# Models up to this many parameters are copied for generation (below); a larger one generates as it is.
GENERATION_COPY_MAX_PARAMS = 2_000_000_000


@contextmanager
def generation_model(model: Any, bf16: bool | None = None) -> Iterator[Any]:
    """The model to generate with: on a CPU that computes bf16 natively, a model held in fp32 for training (LoRA
    adapters, autocast) generates from a bf16 copy with its adapters merged, made for the occasion and dropped after.

    Measured on 2 cores (SmolLM2, 8 documents x 96 tokens): 2.2x faster than the training model under autocast,
    which casts every frozen weight again at every step. GPUs, other CPUs, 4-bit models, models already in bf16,
    `bf16=False` and models over GENERATION_COPY_MAX_PARAMS are used as they are."""
    import torch

    from llmops.models.device import cpu_supports_bf16

    param = next(model.parameters(), None)
    usable = (
        param is not None
        and param.device.type == "cpu"
        and param.dtype == torch.float32
        and bf16 is not False
        and not getattr(model, "is_loaded_in_4bit", False)
        and not getattr(model, "llmops_full_precision", False)
        and sum(p.numel() for p in model.parameters()) <= GENERATION_COPY_MAX_PARAMS
        and cpu_supports_bf16()
    )
    if not usable:
        yield model
        return
    copy = deepcopy(model)
    if hasattr(copy, "merge_and_unload"):  # a PEFT model: its adapters folded into the weights
        copy = copy.merge_and_unload()
    copy.to(torch.bfloat16).eval()
    try:
        yield copy
    finally:
        del copy


def _grammar_options(grammar: Any, rows: int, model: Any, options: dict[str, Any]) -> dict[str, Any]:
    """`generate` keyword arguments for one batch: a fresh grammar processor per batch when constrained."""
    options = dict(options)
    sampling = options.pop("llmops_sampling", None)
    if grammar is None:
        return options
    from transformers import LogitsProcessorList

    from llmops.evaluation.constrained import GrammarProcessor

    vocab = int(getattr(model.config, "vocab_size", 0) or 0)
    temperatures = [sampling[0]] * rows if sampling else None
    top_ps = [sampling[1]] * rows if sampling else None
    options["logits_processor"] = LogitsProcessorList([GrammarProcessor([grammar] * rows, vocab, temperatures, top_ps)])
    return options


def _generate_ids(
    model: Any,
    tokenizer: Any,
    encoded: list[list[int]],
    batch_size: int,
    desc: str,
    options: dict[str, Any],
    bf16: bool | None = None,
    grammar: Any = None,
    close: bool = False,
) -> list[str]:
    """Decoded answers to already-encoded prompts, batched longest first, in input order; with `grammar` and
    `close`, an answer the limit left open is completed by the grammar."""
    import torch

    from llmops.evaluation.constrained import close_answer

    eos = eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    # Longest first: similar lengths share a batch (little padding) and an out-of-memory shows up at once.
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    outputs: list[str] = [""] * len(encoded)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), generation_autocast(model, bf16), progress_bar() as progress:
            bar = progress.add_task(desc, total=len(order))
            for start in range(0, len(order), batch_size):
                indices = order[start : start + batch_size]
                input_ids, attention = _left_pad([encoded[i] for i in indices], pad_id, model.device)
                batch_options = dict(options)
                room = _positions(model)
                if room and "max_new_tokens" in options:  # never past the context
                    batch_options["max_new_tokens"] = max(1, min(options["max_new_tokens"], room - input_ids.shape[1]))
                generated = model.generate(
                    input_ids=input_ids,
                    attention_mask=attention,
                    eos_token_id=eos,
                    pad_token_id=pad_id,
                    **_grammar_options(grammar, len(indices), model, batch_options),
                )
                for row, i in enumerate(indices):
                    raw = generated[row, input_ids.shape[1] :].tolist()
                    new_ids = _until_eos(raw, eos)
                    if grammar is not None and close and len(new_ids) == len(raw):  # stopped by the limit
                        new_ids += close_answer(grammar, new_ids)
                    outputs[i] = tokenizer.decode(new_ids, skip_special_tokens=True)
                progress.advance(bar, len(indices))
    finally:
        model.train(was_training)
    return outputs


def generation_speed(
    model: Any,
    tokenizer: Any,
    prompts: list[list[dict[str, str]]],
    batch_size: int,
    new_tokens: int,
    bf16: bool | None = None,
    repeats: int = 1,
) -> float:
    """Greedy generation tokens/s on the first `batch_size` prompts, every row made to generate exactly
    `new_tokens` (no early EOS), after a short warm-up: what comparing two models' speed needs. With `repeats`,
    the fastest of that many timed runs (what the machine can do; slower runs measure other processes)."""
    import time

    encoded = _encode(tokenizer, prompts[:batch_size])
    options = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False}
    _generate_ids(
        model, tokenizer, encoded[:1], 1, "warm-up", {**options, "max_new_tokens": 2, "min_new_tokens": 2}, bf16
    )
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        _generate_ids(model, tokenizer, encoded, len(encoded), "timing generation", options, bf16)
        best = min(best, time.perf_counter() - start)
    return len(encoded) * new_tokens / best
