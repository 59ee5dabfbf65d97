"""What loading a model folder may do: a model folder is data, not code.

- No code from the folder runs: `trust_remote_code` stays off unless `models.trust_remote_code: true` (then with a
  warning). A folder whose config.json names custom modelling code (`auto_map`) loads with the library's own class
  for its `model_type`, or is refused when there is none.
- Weights load from safetensors only: a folder with only pickle weights (`pytorch_model.bin`, `*.pt`, `*.pth`,
  `adapter_model.bin`) is refused, naming the `models.allow_pickle` escape hatch (pickle can run code on load).
- Files a folder names (weight shards, an adapter's weights) must lie inside it: a symlink out of the folder is
  refused.

The policy is process-wide (`set_policy`, from the run's `models:` section); loaders ask `check_folder` and pass
`load_kwargs()` to `from_pretrained`.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from llmops.config import ModelsSettings
from llmops.errors import ModelError

log = logging.getLogger(__name__)

_POLICY = ModelsSettings()
_PICKLE = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def set_policy(settings: ModelsSettings) -> None:
    """Use these settings for every model this process loads from now on."""
    global _POLICY
    _POLICY = settings
    if settings.trust_remote_code:
        log.warning(
            "models.trust_remote_code is on: code inside model folders and hub repos will run when they "
            "load; use it only for models you trust"
        )
    if settings.allow_pickle:
        log.warning("models.allow_pickle is on: pickle weight files (.bin/.pt) can run code when they load")


def policy() -> ModelsSettings:
    return _POLICY


def load_kwargs() -> dict[str, Any]:
    """`from_pretrained` arguments that carry the policy (safetensors only unless pickle is allowed)."""
    kwargs: dict[str, Any] = {"trust_remote_code": _POLICY.trust_remote_code}
    if not _POLICY.allow_pickle:
        kwargs["use_safetensors"] = True
    return kwargs


def safe_name(name: str, what: str) -> str:
    """A name used as a folder or adapter name: letters, digits, `_.-`, not `.` or `..`."""
    if not _SAFE_NAME.match(name) or set(name) <= {"."}:
        raise ModelError(f"{what} '{name}': use letters, digits, '_', '.' and '-' only (it names a folder)")
    return name


def _inside(folder: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def check_folder(folder: str | Path) -> None:
    """Refuse a local model or adapter folder that would run code or read outside itself (see the module doc).
    Hub ids (not a local folder) pass: `load_kwargs` holds them to the same rules."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    files = [p for p in folder.rglob("*") if p.is_file() or p.is_symlink()]
    outside = [p for p in files if not _inside(folder, p)]
    if outside:
        raise ModelError(
            f"{folder}: {outside[0].relative_to(folder)} links outside the model folder "
            f"(to {outside[0].resolve()}); copy the file into the folder instead"
        )
    weights = [p for p in files if p.suffix == ".safetensors"]
    pickles = [p for p in files if any(p.match(g) for g in _PICKLE) and p.name != "training_args.bin"]
    if pickles and not weights and not _POLICY.allow_pickle:
        raise ModelError(
            f"{folder}: only pickle weights ({pickles[0].name}), which can run code when loaded; "
            "convert them to safetensors, or set models.allow_pickle=true for a folder you trust"
        )
    _check_remote_code(folder)


def _check_remote_code(folder: Path) -> None:
    config = folder / "config.json"
    try:
        data = json.loads(config.read_text()) if config.is_file() else {}
    except ValueError:
        return  # transformers reports the broken config itself
    if not isinstance(data, dict) or not data.get("auto_map") or _POLICY.trust_remote_code:
        return
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    model_type = data.get("model_type")
    if model_type not in CONFIG_MAPPING_NAMES:
        raise ModelError(
            f"{config}: custom modelling code (auto_map) for model_type '{model_type}', which "
            "transformers does not know; it is not run. Set models.trust_remote_code=true only for "
            "a model you trust"
        )
    log.warning(
        "%s: custom modelling code (auto_map) is not run; loading transformers' own '%s' class", config, model_type
    )
