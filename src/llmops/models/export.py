"""Save a trained model: the LoRA adapter, and/or a standalone merged model, each written atomically."""

from __future__ import annotations

import json

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmops.errors import ModelError


def is_peft_model(model: Any) -> bool:
    """Whether `model` is a peft PeftModel (LoRA or QLoRA)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def _write_atomically(target: Path, write: Callable[[Path], None]) -> Path:
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


def _merged_from_adapter(adapter_dir: Path) -> Any:
    """Merge a saved adapter into a freshly loaded full-precision base (4-bit weights cannot take the merge)."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM

    from llmops.models.loader import resolve_model_path

    base_name = PeftConfig.from_pretrained(str(adapter_dir)).base_model_name_or_path
    if not base_name:
        raise ModelError(f"{adapter_dir}: the adapter does not name its base model; cannot merge")
    base = AutoModelForCausalLM.from_pretrained(resolve_model_path(base_name), dtype="auto")
    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()


SCHEMA_FILE = "llmops_schema.json"  # an IDP model's JSON Schema, beside its weights: `llmops serve` constrains to it


def save_outputs(model: Any, tokenizer: Any, out_dir: str | Path, merge: bool,
                 schema: dict[str, Any] | None = None) -> dict[str, Path]:
    """Save to out_dir/adapter (LoRA/QLoRA) and out_dir/merged (full, or LoRA when `merge`); returns the paths.

    With `schema` (IDP), each folder also holds it as llmops_schema.json.
    """
    out_dir = Path(out_dir)
    outputs: dict[str, Path] = {}

    def save_with_tokenizer(obj: Any) -> Callable[[Path], None]:
        def write(folder: Path) -> None:
            obj.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            if schema is not None:
                (folder / SCHEMA_FILE).write_text(json.dumps(schema, indent=2))

        return write

    if not is_peft_model(model):
        outputs["merged"] = _write_atomically(out_dir / "merged", save_with_tokenizer(model))
        return outputs
    outputs["adapter"] = _write_atomically(out_dir / "adapter", save_with_tokenizer(model))
    if merge:
        merged = _merged_from_adapter(outputs["adapter"])
        outputs["merged"] = _write_atomically(out_dir / "merged", save_with_tokenizer(merged))
    return outputs
