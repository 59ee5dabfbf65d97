"""Save a trained model: the LoRA adapter, and/or a standalone merged model, each written atomically."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmops.models.files import (
    FULL_PRECISION,
    PRECISION_FILE,
    QUANTIZATION_FILE,
    SCHEMA_FILE,
    write_folder_atomically,
)


def is_peft_model(model: Any) -> bool:
    """Whether `model` is a peft PeftModel (LoRA or QLoRA)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def _merged_from_adapter(adapter_dir: Path) -> Any:
    """The saved adapter merged into its base, loaded as training saw it: a QLoRA adapter's base is loaded in 4-bit
    NF4 again and dequantised to full precision before the merge, so the merged model computes what the adapter did
    (merging into a separately loaded full-precision copy would not: NF4 rounding moves every weight)."""
    from peft import PeftModel

    from llmops.models.loader import load_adapter_base

    base = load_adapter_base(adapter_dir)
    if getattr(base, "hf_quantizer", None) is not None:
        import torch

        base = base.dequantize(dtype=torch.float32)
        base.hf_quantizer = None
        base.is_quantized = False
        if hasattr(base.config, "quantization_config"):
            del base.config.quantization_config
    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()


def _quantization_of(model: Any) -> dict[str, Any] | None:
    config = getattr(model.get_base_model().config, "quantization_config", None)
    if config is None:
        return None
    return config if isinstance(config, dict) else config.to_dict()


def save_outputs(
    model: Any, tokenizer: Any, out_dir: str | Path, merge: bool, schema: dict[str, Any] | None = None
) -> dict[str, Path]:
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
        outputs["merged"] = write_folder_atomically(out_dir / "merged", save_with_tokenizer(model))
        return outputs
    quantization = _quantization_of(model)
    save_adapter = save_with_tokenizer(model)

    def write_adapter(folder: Path) -> None:
        save_adapter(folder)
        if quantization is not None:
            (folder / QUANTIZATION_FILE).write_text(json.dumps(quantization, indent=2, default=str))

    outputs["adapter"] = write_folder_atomically(out_dir / "adapter", write_adapter)
    if merge:
        merged = _merged_from_adapter(outputs["adapter"])
        save_merged = save_with_tokenizer(merged)

        def write_merged(folder: Path) -> None:
            save_merged(folder)
            if quantization is not None:
                (folder / PRECISION_FILE).write_text(json.dumps(FULL_PRECISION, indent=2))

        outputs["merged"] = write_folder_atomically(out_dir / "merged", write_merged)
    return outputs
