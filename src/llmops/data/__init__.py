"""Data layer: fsspec I/O, record formats, validation and deterministic splits."""

from __future__ import annotations

from llmops.data.formats import (
    detect_format,
    to_idp_eval_examples,
    to_preference_examples,
    to_sft_examples,
)
from llmops.data.io import exists, read_records, read_text
from llmops.data.splits import select_per_class, train_eval_split
from llmops.data.validate import validate_file, validate_records

__all__ = [
    "detect_format",
    "exists",
    "read_records",
    "read_text",
    "select_per_class",
    "to_idp_eval_examples",
    "to_preference_examples",
    "to_sft_examples",
    "train_eval_split",
    "validate_file",
    "validate_records",
]
