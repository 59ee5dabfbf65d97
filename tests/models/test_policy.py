"""Untrusted model folders: no code from the folder runs, pickle weights are refused unless allowed, and nothing a
folder or a name points at may lie outside the place it names."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops.config import ModelsSettings
from llmops.errors import ModelError, TrackingError
from llmops.models import policy
from llmops.models.loader import load_for_inference


@pytest.fixture(autouse=True)
def default_policy() -> Iterator[None]:
    policy.set_policy(ModelsSettings())
    yield
    policy.set_policy(ModelsSettings())


def _pickle_only(tiny_model_dir: Path, folder: Path) -> Path:
    import torch
    from safetensors.torch import load_file

    shutil.copytree(tiny_model_dir, folder)
    state = {}
    for f in folder.glob("*.safetensors"):
        state.update(load_file(f))
        f.unlink()
    torch.save(state, folder / "pytorch_model.bin")  # the pre-safetensors format: a pickle
    assert (folder / "pytorch_model.bin").is_file() and not list(folder.glob("*.safetensors"))
    return folder


def test_a_pickle_only_folder_is_refused_unless_allowed(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _pickle_only(tiny_model_dir, tmp_path / "pickled")
    with pytest.raises(ModelError, match="models.allow_pickle") as err:
        load_for_inference(folder)
    assert "pytorch_model.bin" in str(err.value)
    policy.set_policy(ModelsSettings(allow_pickle=True))
    model, _ = load_for_inference(folder)
    assert model is not None


def test_the_cli_refuses_a_pickle_folder_in_one_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    folder = _pickle_only(tiny_model_dir, tmp_path / "pickled")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmops.cli",
            "predict",
            "--model",
            str(folder),
            "--document",
            "Invoice 1",
            "--max-new-tokens",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "models.allow_pickle" in proc.stderr


def _with_custom_code(tiny_model_dir: Path, folder: Path, marker: Path, model_type: str | None = None) -> Path:
    shutil.copytree(tiny_model_dir, folder)
    (folder / "modeling_evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import LlamaForCausalLM\nclass EvilForCausalLM(LlamaForCausalLM):\n    pass\n"
    )
    (folder / "configuration_evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import LlamaConfig\nclass EvilConfig(LlamaConfig):\n    pass\n"
    )
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {
        "AutoConfig": "configuration_evil.EvilConfig",
        "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM",
    }
    if model_type:
        cfg["model_type"] = model_type
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_custom_modelling_code_in_a_folder_is_not_executed(tiny_model_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    folder = _with_custom_code(tiny_model_dir, tmp_path / "custom", marker)
    model, _ = load_for_inference(folder)
    assert not marker.exists()
    assert type(model).__name__ == "LlamaForCausalLM"  # the library's own class for its model_type

    unknown = _with_custom_code(tiny_model_dir, tmp_path / "unknown", marker, model_type="evil-net")
    with pytest.raises(ModelError, match="trust_remote_code"):
        load_for_inference(unknown)
    assert not marker.exists()


def test_a_weight_file_linked_from_outside_the_folder_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "linked"
    shutil.copytree(tiny_model_dir, folder)
    weights = next(folder.glob("*.safetensors"))
    outside = tmp_path / "elsewhere.safetensors"
    weights.rename(outside)
    weights.symlink_to(outside)
    with pytest.raises(ModelError, match="links outside the model folder"):
        load_for_inference(folder)


def test_names_that_would_leave_their_folder_are_refused(tiny_model_dir: Path) -> None:
    from llmops.errors import ConfigError
    from llmops.serving.launch import _parse_adapters
    from llmops.tracking.resolve import find_version

    for bad in ("..", ".", "a/b", "../x"):
        with pytest.raises((ModelError, ConfigError)):
            _parse_adapters([f"{bad}={tiny_model_dir}"])
    assert _parse_adapters([f"ok-1={tiny_model_dir}"]) == {"ok-1": str(tiny_model_dir)}
    for uri in ("models:/../1", "models:/..@champion", "models:/x@.."):
        with pytest.raises(TrackingError, match="expected models:/NAME"):
            find_version(None, uri, "sqlite:///x.db")
