"""Depth pruning: a smaller student made from a model by dropping its least important decoder layers.

Importance is measured on calibration texts (from the training set) in one of two ways:

- `cosine` (ShortGPT's block influence, https://arxiv.org/abs/2403.03853): 1 - cosine similarity of a layer's
  input and output hidden states, averaged over real tokens. A layer that barely turns the residual stream is one
  the model can do without. One forward pass.
- `loss`: how much the calibration loss rises when the layer is skipped (its output replaced by its input). One
  forward pass per layer; closer to what pruning costs, slower.
- `block` (Gromov et al., "The Unreasonable Ineffectiveness of the Deeper Layers", https://arxiv.org/abs/2403.17887):
  one contiguous block of layers goes, the block whose input and output hidden states are closest (mean angular
  distance over real tokens): the residual stream the next layer receives is then the one it nearly had. One
  forward pass; the per-layer cosine importance is reported beside it.

The kept layers keep their order and weights; embeddings, final norm, LM head, tokenizer and chat template are kept
as they are. The pruned folder is an ordinary Hugging Face model (safetensors) plus `llmops_pruned.json`: the source,
the kept and removed layers and their importance, so a run can log them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmops.errors import ConfigError, ModelError
from llmops.models.files import write_folder_atomically

log = logging.getLogger(__name__)

PRUNE_FILE = "llmops_pruned.json"
Importance = Literal["cosine", "loss", "block"]
IMPORTANCE = ("cosine", "loss", "block")
# Calibration when no data is given: a few plain texts of the kinds a chat model sees (weaker than the task's data).
GENERIC_TEXTS = [
    "Invoice INV-20931 from Acme Ltd, dated 2024-05-02. Items: 3 x widgets at 12.50, 1 x service fee 40.00. "
    "Total due: 77.50 EUR, payable within 30 days.",
    "def moving_average(values, window):\n    if window <= 0:\n        raise ValueError('window must be positive')\n"
    "    return [sum(values[i:i + window]) / window for i in range(len(values) - window + 1)]",
    "The committee met on Tuesday to review the budget. After a long discussion, members agreed to postpone the "
    "decision until the auditors deliver their report next month.",
    '{"name": "Jane Doe", "email": "jane@example.com", "orders": [{"id": 17, "total": 12.5}]}',
    "Question: What is the capital of France? Answer: The capital of France is Paris, on the Seine.",
    "To reset your password, open Settings, choose Account, then Security, and follow the instructions sent to "
    "your email address.",
    "SELECT customer_id, SUM(amount) AS total FROM payments WHERE paid_at >= '2024-01-01' GROUP BY customer_id;",
    "Photosynthesis converts light energy into chemical energy: plants take in carbon dioxide and water and "
    "release oxygen.",
]


@dataclass
class PruneReport:
    """What a pruning kept and why; written beside the pruned weights as PRUNE_FILE."""

    source: str
    layers_before: int
    kept: list[int]
    removed: list[int]
    importance: list[float]  # per layer of the source, in its order
    method: str
    calibration_texts: int
    parameters_before: int
    parameters_after: int
    seconds: float = 0.0
    output: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def decoder_layers(model: Any) -> Any:
    """(owner, its ModuleList of decoder layers): Llama, Mistral, Qwen, Gemma, Phi-3 and most decoder-only models."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for owner in (getattr(base, "model", None), getattr(base, "transformer", None), base):
        layers = getattr(owner, "layers", None) if owner is not None else None
        if isinstance(layers, torch.nn.ModuleList) and len(layers) > 0:
            return owner, layers
    raise ModelError(
        f"{type(base).__name__}: no list of decoder layers (model.layers) found; depth pruning "
        "supports decoder-only models such as Llama, Mistral, Qwen and SmolLM"
    )


def resolve_keep(requested: int | float, total: int) -> int:
    """How many layers to keep: an int count, or a fraction (0 < x < 1) of `total`, at least one."""
    if isinstance(requested, bool) or requested <= 0:
        raise ConfigError(f"layers to keep must be a count >= 1 or a fraction in (0, 1), got {requested}")
    count = round(requested * total) if isinstance(requested, float) and requested < 1 else int(requested)
    if count > total:
        raise ConfigError(f"cannot keep {count} decoder layers: the model has {total}")
    return max(1, count)


def _batches(tokenizer: Any, texts: Sequence[str], max_len: int, batch_size: int) -> list[dict[str, Any]]:
    import torch

    out = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        enc = tokenizer(chunk, add_special_tokens=False, truncation=True, max_length=max_len)
        width = max(len(ids) for ids in enc["input_ids"])
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, row_ids in enumerate(enc["input_ids"]):
            ids[row, : len(row_ids)] = torch.tensor(row_ids)
            mask[row, : len(row_ids)] = 1
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def _hidden(value: Any) -> Any:
    return value[0] if isinstance(value, tuple) else value


def cosine_importance(model: Any, batches: list[dict[str, Any]]) -> list[float]:
    """Per layer: mean over real tokens of 1 - cos(input hidden state, output hidden state)."""
    import torch

    _, layers = decoder_layers(model)
    totals = [0.0] * len(layers)
    count = 0
    current: dict[str, Any] = {}

    def hook(index: int) -> Any:
        def fn(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
            inp = args[0] if args else kwargs["hidden_states"]
            cos = torch.nn.functional.cosine_similarity(inp.float(), _hidden(output).float(), dim=-1)
            totals[index] += float(((1 - cos) * current["mask"]).sum())

        return fn

    handles = [layer.register_forward_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)]
    try:
        with torch.no_grad():
            for batch in batches:
                current["mask"] = batch["attention_mask"].float()
                model(**batch, use_cache=False)
                count += int(batch["attention_mask"].sum())
    finally:
        for handle in handles:
            handle.remove()
    return [t / max(count, 1) for t in totals]


def block_distances(model: Any, batches: list[dict[str, Any]], size: int) -> tuple[list[float], list[float]]:
    """Per start layer s: mean angular distance (arccos of the cosine, / pi) over real tokens between the hidden
    state entering layer s and the one leaving layer s + size - 1; and per layer the cosine importance."""
    import math

    import torch

    _, layers = decoder_layers(model)
    total = len(layers)
    starts = total - size + 1
    distances, per_layer = [0.0] * starts, [0.0] * total
    count = 0
    states: dict[int, Any] = {}

    def hook(index: int) -> Any:
        def fn(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
            if index == 0:
                states[0] = (args[0] if args else kwargs["hidden_states"]).float()
            states[index + 1] = _hidden(output).float()

        return fn

    handles = [layer.register_forward_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)]
    try:
        with torch.no_grad():
            for batch in batches:
                mask = batch["attention_mask"].float()
                model(**batch, use_cache=False)
                for s in range(starts):
                    cos = torch.nn.functional.cosine_similarity(states[s], states[s + size], dim=-1)
                    distances[s] += float((torch.arccos(cos.clamp(-1.0, 1.0)) / math.pi * mask).sum())
                for i in range(total):
                    cos = torch.nn.functional.cosine_similarity(states[i], states[i + 1], dim=-1)
                    per_layer[i] += float(((1 - cos) * mask).sum())
                count += int(mask.sum())
                states.clear()
    finally:
        for handle in handles:
            handle.remove()
    return [d / max(count, 1) for d in distances], [p / max(count, 1) for p in per_layer]


def choose_block(distances: Sequence[float], size: int, total: int) -> list[int]:
    """Every layer but the block of `size` starting where the distance is smallest (ties: the earlier start)."""
    start = min(range(len(distances)), key=lambda s: (distances[s], s))
    return [i for i in range(total) if not start <= i < start + size]


def _calibration_loss(model: Any, batches: list[dict[str, Any]]) -> float:
    import torch

    total, tokens = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
            n = int((labels[:, 1:] != -100).sum())
            total += float(model(**batch, labels=labels, use_cache=False).loss) * n
            tokens += n
    return total / max(tokens, 1)


def loss_importance(model: Any, batches: list[dict[str, Any]]) -> list[float]:
    """Per layer: calibration loss with the layer skipped minus the loss of the whole model."""
    _, layers = decoder_layers(model)
    full = _calibration_loss(model, batches)
    scores = []
    for layer in layers:

        def skip(module: Any, args: tuple, kwargs: dict, output: Any) -> Any:
            inp = args[0] if args else kwargs["hidden_states"]
            return (inp, *output[1:]) if isinstance(output, tuple) else inp

        handle = layer.register_forward_hook(skip, with_kwargs=True)
        try:
            scores.append(_calibration_loss(model, batches) - full)
        finally:
            handle.remove()
    return scores


def choose_layers(importance: Sequence[float], keep: int) -> list[int]:
    """The `keep` most important layers, in their original order (ties: the earlier layer)."""
    ranked = sorted(range(len(importance)), key=lambda i: (-importance[i], i))
    return sorted(ranked[:keep])


def keep_layers(model: Any, kept: Sequence[int]) -> Any:
    """Drop every decoder layer not in `kept` (in place): renumber the layers' cache slots, update the config."""
    import torch

    owner, layers = decoder_layers(model)
    if not kept or any(not 0 <= i < len(layers) for i in kept) or len(set(kept)) != len(kept):
        raise ConfigError(f"layers to keep {list(kept)}: need distinct indices in 0..{len(layers) - 1}")
    kept = sorted(kept)
    owner.layers = torch.nn.ModuleList([layers[i] for i in kept])
    for new_index, layer in enumerate(owner.layers):
        for module in layer.modules():  # attention modules index the KV cache by their layer number
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    config = model.config
    config.num_hidden_layers = len(kept)
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == len(layers):
        config.layer_types = [layer_types[i] for i in kept]
    return model


def _parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def prune(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    keep: int | float,
    *,
    method: Importance = "cosine",
    max_len: int = 512,
    batch_size: int = 4,
    source: str = "",
) -> PruneReport:
    """Measure layer importance on `texts` and prune `model` in place to its `keep` most important layers."""
    if not texts:
        raise ConfigError("pruning needs calibration texts: pass calibration data (training examples)")
    start = time.perf_counter()
    _, layers = decoder_layers(model)
    total = len(layers)
    count = resolve_keep(keep, total)
    before = _parameters(model)
    was_training = model.training
    model.eval()
    batches = _batches(tokenizer, texts, max_len, batch_size)
    extra: dict[str, Any] = {}
    if method == "cosine":
        scores = cosine_importance(model, batches)
        kept = choose_layers(scores, count)
    elif method == "loss":
        scores = loss_importance(model, batches)
        kept = choose_layers(scores, count)
    elif method == "block" and count == total:
        scores, kept = cosine_importance(model, batches), list(range(total))
    elif method == "block":
        distances, scores = block_distances(model, batches, total - count)
        kept = choose_block(distances, total - count, total)
        extra["block_distance"] = [round(d, 6) for d in distances]
    else:
        raise ConfigError(f"importance '{method}': use {', '.join(IMPORTANCE)}")
    keep_layers(model, kept)
    model.train(was_training)
    return PruneReport(
        source=source,
        layers_before=total,
        kept=kept,
        removed=[i for i in range(total) if i not in kept],
        importance=[round(s, 6) for s in scores],
        method=method,
        calibration_texts=len(texts),
        parameters_before=before,
        parameters_after=_parameters(model),
        seconds=time.perf_counter() - start,
        extra=extra,
    )


def calibration_texts(tokenizer: Any, records: Sequence[dict[str, Any]], limit: int = 64) -> list[str]:
    """Texts to measure importance on: chat records (prompt + completion, or messages) through the chat template,
    `text` records as they are, any other record as its JSON."""
    texts = []
    for record in list(records)[:limit]:
        messages = None
        if isinstance(record.get("prompt"), list) and isinstance(record.get("completion"), list):
            messages = record["prompt"] + record["completion"]
        elif isinstance(record.get("messages"), list):
            messages = record["messages"]
        if messages and getattr(tokenizer, "chat_template", None):
            texts.append(tokenizer.apply_chat_template(messages, tokenize=False))
        elif isinstance(record.get("text"), str):
            texts.append(record["text"])
        else:
            texts.append(json.dumps(record, ensure_ascii=False))
    return texts


def read_report(folder: str | Path) -> dict[str, Any] | None:
    """A pruned folder's PRUNE_FILE, or None for a model that was not pruned here."""
    path = Path(folder) / PRUNE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise ModelError(f"{path}: not valid JSON; delete the folder and prune again") from None


def prune_to_folder(
    source: str,
    keep: int | float,
    output: str | Path,
    texts: Sequence[str] | None = None,
    records: Sequence[dict[str, Any]] | None = None,
    *,
    method: Importance = "cosine",
    max_len: int = 512,
    calibration: int = 64,
) -> PruneReport:
    """Load `source`, prune it on calibration `texts` (or `records`), write a loadable model folder atomically."""
    import torch

    from llmops.models.loader import load_for_inference

    model, tokenizer = load_for_inference(source, torch.float32)
    if hasattr(model, "merge_and_unload"):  # an adapter folder: prune the merged model
        model = model.merge_and_unload()
    tokenizer.padding_side = "right"
    if texts is None:
        texts = calibration_texts(tokenizer, records or [], calibration)
    report = prune(model, tokenizer, list(texts)[:calibration], keep, method=method, max_len=max_len, source=source)
    report.output = str(output)

    def write(folder: Path) -> None:
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.padding_side = "left"
        tokenizer.save_pretrained(folder)
        (folder / PRUNE_FILE).write_text(json.dumps(asdict(report), indent=1))

    write_folder_atomically(Path(output), write)
    log.info(
        "pruned %s: kept %d of %d layers %s -> %s", source, len(report.kept), report.layers_before, report.kept, output
    )
    return report
