"""What a saved model folder holds beside its weights (llmops' own files), and writing a folder atomically."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

SCHEMA_FILE = "llmops_schema.json"  # an IDP model's JSON Schema, beside its weights: `llmops serve` constrains to it
QUANTIZATION_FILE = "llmops_quantization.json"  # a QLoRA adapter's base quantisation (bitsandbytes config)
PRECISION_FILE = "llmops_precision.json"  # the dtype a saved model generates in when none is asked for
# A model merged from a QLoRA adapter holds dequantised NF4 weights plus the LoRA delta: rounding those to bf16
# changed greedy answers on a third of an eval set where fp32 (and the adapter itself) agree on all of them.
FULL_PRECISION = {
    "dtype": "float32",
    "reason": "merged from a 4-bit QLoRA adapter: bf16 rounding of the merged "
    "weights changes its greedy answers; fp32 keeps them equal to the adapter's",
}


def write_folder_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """Write a folder into a temp sibling, then swap it into place so readers never see half a model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    old = target.with_name(f".{target.name}.old")
    try:
        write(tmp)
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return target
