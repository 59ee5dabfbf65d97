"""Offline teacher for distillation: the teacher's top-k log-probs on every answer token, computed once, on disk.

Layout of `<cache_dir>/<key>/`: `topk.safetensors` (`values` fp16 [rows, k], `ids` [rows, k] uint16 when the
vocabulary has at most 65536 tokens, else int32: one row per answer token, i.e. per position whose next-token
label is not -100), `index.json` (a hash of each example's token ids -> its first row and row count) and
`meta.json`. The key hashes the teacher (config and a fingerprint of its weights), every example's token ids and
answer mask, k and the temperature, so a folder is never stale: any change gives a new key, and a run whose key
exists reads it without running (or needing) a teacher forward.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmops.errors import ModelError
from llmops.methods.losses import topk_logprobs

log = logging.getLogger(__name__)

TENSORS, INDEX, META = "topk.safetensors", "index.json", "meta.json"
_SAMPLES_PER_TENSOR = 64


def row_key(input_ids: Sequence[int] | torch.Tensor) -> str:
    """Hash of one example's (unpadded) token ids: how its cached rows are found."""
    ids = torch.as_tensor(input_ids, dtype=torch.int64).cpu()
    return hashlib.blake2b(ids.numpy().tobytes(), digest_size=16).hexdigest()


def teacher_fingerprint(teacher: Any) -> str:
    """Identity of a teacher's weights and config without hashing every byte: per tensor its shape, dtype, sum,
    absolute sum and a strided sample of raw values (cheap even for billions of parameters, on any device)."""
    h = hashlib.blake2b(digest_size=16)
    config = {
        k: v for k, v in teacher.config.to_dict().items() if not k.startswith("_") and k != "transformers_version"
    }
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, tensor in [*teacher.named_parameters(), *teacher.named_buffers()]:
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // _SAMPLES_PER_TENSOR)
            values = flat.float()
            stats = torch.stack([values.sum(), values.abs().sum()]).cpu().tolist()
            sample = flat[::step][:_SAMPLES_PER_TENSOR].contiguous().cpu()
            h.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|{stats!r}|".encode())
            h.update(sample.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@dataclass
class TeacherCache:
    """The loaded cache: top-k log-probs and ids per answer token, found by example."""

    path: Path
    values: torch.Tensor
    ids: torch.Tensor
    index: dict[str, tuple[int, int]]
    k: int
    temperature: float
    built: bool = False
    build_seconds: float = 0.0

    @property
    def nbytes(self) -> int:
        """Bytes of the stored log-probs and ids."""
        return self.values.numel() * self.values.element_size() + self.ids.numel() * self.ids.element_size()

    @property
    def bytes_per_token(self) -> float:
        """Stored bytes per answer token: k * 4 (fp16 value + uint16 id), k * 6 with int32 ids."""
        return self.nbytes / max(1, self.values.shape[0])

    def lookup(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, answer_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher top-k log-probs and ids [batch, seq-1, k] for a batch; `answer_mask` [batch, seq-1] marks the
        positions whose rows are filled (others hold a uniform placeholder the loss masks out)."""
        batch, width = answer_mask.shape
        fill = -torch.log(torch.tensor(float(self.k + 1)))
        values = torch.full((batch, width, self.k), fill.item(), dtype=torch.float32)
        ids = torch.zeros((batch, width, self.k), dtype=torch.int64)
        ids[...] = torch.arange(self.k)
        mask_cpu, input_ids = answer_mask.cpu(), input_ids.cpu()
        attention_mask = None if attention_mask is None else attention_mask.cpu().bool()
        for b in range(batch):
            row = input_ids[b] if attention_mask is None else input_ids[b][attention_mask[b]]
            key = row_key(row)
            if key not in self.index:
                raise ModelError(
                    f"teacher cache {self.path}: an example is missing; the cache does not match the "
                    "training data (delete the folder to rebuild it)"
                )
            offset, count = self.index[key]
            positions = mask_cpu[b].nonzero().squeeze(-1)
            if positions.numel() != count:
                raise ModelError(
                    f"teacher cache {self.path}: {count} cached answer tokens for an example that has "
                    f"{positions.numel()}; delete the folder to rebuild it"
                )
            values[b, positions] = self.values[offset : offset + count].float()
            ids[b, positions] = self.ids[offset : offset + count].long()
        return values.to(answer_mask.device), ids.to(answer_mask.device)


def _rows(dataset: Any) -> list[dict]:
    keep = ("input_ids", "labels", "completion_mask", "assistant_masks")
    return [{k: row[k] for k in keep if k in row} for row in dataset]


def _answer_positions(batch: dict) -> torch.Tensor:
    """[batch, seq-1] mask of positions whose next-token label is trained on."""
    return batch["labels"][:, 1:] != -100


def cache_key(teacher_id: str, rows: list[dict], k: int, temperature: float) -> str:
    """The folder name: hash of the teacher identity, every tokenized example (ids and labels), k and T."""
    digests = {hashlib.blake2b(json.dumps(row, sort_keys=True).encode(), digest_size=16).hexdigest() for row in rows}
    h = hashlib.blake2b(digest_size=12)
    h.update(f"{teacher_id}|k={k}|T={temperature!r}|".encode())
    for digest in sorted(digests):
        h.update(digest.encode())
    return h.hexdigest()


def id_dtype_for(vocab_size: int) -> torch.dtype:
    """The smallest integer type that holds every token id: uint16 up to 65536 tokens (SmolLM2, Llama 2, Mistral:
    4 bytes per cached token and k), int32 above (Llama 3, Qwen)."""
    return torch.uint16 if vocab_size <= 1 << 16 else torch.int32


def _teacher_device(teacher: Any) -> torch.device:
    return next(teacher.parameters()).device


def _compute(
    teacher: Any,
    rows: list[dict],
    collate: Callable[[list[dict]], dict],
    k: int,
    temperature: float,
    vocab_size: int,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, tuple[int, int]]]:
    """Run the teacher over all examples (longest first, batched) and keep top-k at answer positions."""
    unique: dict[str, dict] = {}
    for row in rows:
        unique.setdefault(row_key(row["input_ids"]), row)
    order = sorted(unique, key=lambda key: -len(unique[key]["input_ids"]))
    device = _teacher_device(teacher)
    was_training = teacher.training
    teacher.eval()
    values, ids, index, offset = [], [], {}, 0
    id_dtype = id_dtype_for(vocab_size)
    try:
        for start in range(0, len(order), batch_size):
            keys = order[start : start + batch_size]
            batch = collate([unique[key] for key in keys])
            mask = _answer_positions(batch)
            columns = mask.any(dim=0).nonzero().flatten()
            keep = torch.arange(int(columns[0]), int(columns[-1]) + 1) if columns.numel() else torch.arange(1)
            with torch.no_grad():  # the head only over the answer positions: no [batch, seq, vocab] logits
                logits = teacher(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                    use_cache=False,
                    logits_to_keep=keep.to(device),
                ).logits
            top_values, top_ids = topk_logprobs(logits[..., :vocab_size][mask[:, keep].to(device)], k, temperature)
            values.append(top_values.to(torch.float16).cpu())
            ids.append(top_ids.to(id_dtype).cpu())
            for key, count in zip(keys, mask.sum(-1).tolist(), strict=True):
                index[key] = (offset, int(count))
                offset += int(count)
    finally:
        teacher.train(was_training)
    return torch.cat(values), torch.cat(ids), index


def _write(folder: Path, values: torch.Tensor, ids: torch.Tensor, index: dict, meta: dict) -> None:
    """Write into a temporary sibling folder, then rename it into place (readers never see a partial cache)."""
    from safetensors.torch import save_file

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_file({"values": values.contiguous(), "ids": ids.contiguous()}, str(tmp / TENSORS))
        (tmp / INDEX).write_text(json.dumps(index))
        (tmp / META).write_text(json.dumps(meta, indent=1))
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / META).is_file():  # not another process that finished the same cache first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _read(folder: Path, built: bool, seconds: float) -> TeacherCache:
    from safetensors.torch import load_file

    tensors = load_file(str(folder / TENSORS))
    meta = json.loads((folder / META).read_text())
    index = {key: (int(v[0]), int(v[1])) for key, v in json.loads((folder / INDEX).read_text()).items()}
    return TeacherCache(
        path=folder,
        values=tensors["values"],
        ids=tensors["ids"],
        index=index,
        k=int(meta["k"]),
        temperature=float(meta["temperature"]),
        built=built,
        build_seconds=seconds,
    )


def build_or_load(
    teacher: Any,
    dataset: Any,
    collate: Callable[[list[dict]], dict],
    cache_dir: Path,
    k: int,
    temperature: float,
    vocab_size: int,
    batch_size: int = 8,
) -> TeacherCache:
    """The cache for this teacher and tokenized dataset: read when its key exists, else computed and written."""
    start = time.perf_counter()
    rows = _rows(dataset)
    k = min(k, vocab_size)
    folder = Path(cache_dir) / cache_key(teacher_fingerprint(teacher), rows, k, temperature)
    if (folder / META).is_file():
        cache = _read(folder, built=False, seconds=time.perf_counter() - start)
        log.info(
            "teacher cache: reusing %s (%d answer tokens, %.0f B/token)",
            folder,
            cache.values.shape[0],
            cache.bytes_per_token,
        )
        return cache
    values, ids, index = _compute(teacher, rows, collate, k, temperature, vocab_size, batch_size)
    meta = {
        "k": k,
        "temperature": temperature,
        "examples": len(index),
        "tokens": int(values.shape[0]),
        "id_dtype": str(ids.dtype).removeprefix("torch."),
        "bytes_per_token": (values.numel() * values.element_size() + ids.numel() * ids.element_size())
        / max(1, values.shape[0]),
    }
    _write(folder, values, ids, index, meta)
    cache = _read(folder, built=True, seconds=time.perf_counter() - start)
    log.info(
        "teacher cache: built %s in %.1f s (%d answer tokens, %.0f B/token)",
        folder,
        cache.build_seconds,
        cache.values.shape[0],
        cache.bytes_per_token,
    )
    return cache
