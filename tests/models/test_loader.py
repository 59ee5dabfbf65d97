"""load_student: full / LoRA / QLoRA adaptation, tokenizer set-up, and clear errors for models that are not there."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from llmops.config import PeftSettings, TrainingSettings
from llmops.errors import ModelError
from llmops.models.loader import load_student


def _load(model_dir: Path, method: str):
    return load_student(str(model_dir), PeftSettings(method=method, r=4, alpha=8), TrainingSettings())


def test_full_makes_every_parameter_trainable(tiny_model_dir: Path) -> None:
    model, _ = _load(tiny_model_dir, "full")
    assert all(p.requires_grad for p in model.parameters())


def test_lora_trains_only_adapters(tiny_model_dir: Path) -> None:
    model, _ = _load(tiny_model_dir, "lora")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("q_proj" in n for n in trainable) and any("down_proj" in n for n in trainable)


def test_qlora_quantizes_linear_layers_to_nf4(tiny_model_dir: Path) -> None:
    import bitsandbytes as bnb

    model, _ = _load(tiny_model_dir, "qlora")
    base = model.get_base_model()
    q_proj = base.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj.base_layer, bnb.nn.Linear4bit)
    assert q_proj.base_layer.weight.quant_type == "nf4"
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    assert not base.is_activation_checkpointing  # CPU: off unless asked for


def test_tokenizer_pads_right_with_a_pad_token(tiny_model_dir: Path) -> None:
    _, tokenizer = _load(tiny_model_dir, "full")
    assert tokenizer.padding_side == "right"
    assert tokenizer.pad_token is not None and tokenizer.eos_token == "<|end|>"


def _bare_copy(tiny_model_dir: Path, folder: Path) -> Path:
    """The tiny model without its chat template and with pad = EOS (as SmolLM2's GGUF tokenizer has it)."""
    shutil.copytree(tiny_model_dir, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    cfg_file = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg.pop("chat_template", None)
    cfg["pad_token"] = cfg["eos_token"]
    cfg_file.write_text(json.dumps(cfg))
    return folder


def test_model_without_chat_template_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _bare_copy(tiny_model_dir, tmp_path / "bare")
    with pytest.raises(ModelError, match=r"model '.*bare' has no chat template; set training.chat_template"):
        _load(folder, "full")


def test_chat_template_key_supplies_one_and_pad_is_not_eos(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _bare_copy(tiny_model_dir, tmp_path / "bare")
    template = tmp_path / "chat.jinja"
    template.write_text(
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{{ eos_token }}{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    model, tokenizer = load_student(
        str(folder), PeftSettings(method="full"), TrainingSettings(chat_template=str(template))
    )
    assert tokenizer.pad_token_id != tokenizer.eos_token_id and tokenizer.pad_token == "<|pad|>"
    assert model.config.pad_token_id == tokenizer.pad_token_id
    messages = [{"role": "user", "content": "hi"}]
    assert (
        tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        == "user: hi<|end|>assistant: "
    )


def test_hub_id_while_offline_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    with pytest.raises(ModelError, match="not a local folder and the hub is offline"):
        load_student("llmops-test/no-such-model", PeftSettings(), TrainingSettings())
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("path", ["./no/such/model", "/no/such/model"])
def test_missing_local_folder_is_a_model_error(path: str) -> None:
    with pytest.raises(ModelError, match="no such folder"):
        load_student(path, PeftSettings(), TrainingSettings())


def test_qlora_under_ddp_loads_on_the_ranks_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """No GPU here: `has_cuda` is patched to say there is one, to check the device map a QLoRA load asks for."""
    from llmops.models import device

    monkeypatch.setattr(device, "has_cuda", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert device.quantized_device_map() == {"": 3}
    monkeypatch.delenv("LOCAL_RANK")
    assert device.quantized_device_map() == {"": 0}
    monkeypatch.setattr(device, "has_cuda", lambda: False)
    assert device.quantized_device_map() == {"": "cpu"}


def test_lora_on_the_top_layers_only_leaves_the_lower_layers_without_gradients(tiny_model_dir: Path) -> None:
    import torch

    model, _ = load_student(str(tiny_model_dir), PeftSettings(method="lora", top_layers=1), TrainingSettings())
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".layers.1." in n and "lora_" in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }  # all-linear, spelt out
    # The lower layer's activations need no gradient: the backward pass stops at the first adapted layer.
    seen = []
    layer0 = model.base_model.model.model.layers[0]
    layer0.register_forward_hook(lambda mod, inp, out: seen.append(out[0] if isinstance(out, tuple) else out))
    model(input_ids=torch.tensor([[1, 2, 3]])).logits.sum().backward()
    assert not seen[0].requires_grad


def test_attention_kernel_follows_the_example_length() -> None:
    from llmops.models.device import EAGER_MAX_LEN, attn_implementation

    assert attn_implementation(TrainingSettings(max_len=EAGER_MAX_LEN)) == "eager"
    assert attn_implementation(TrainingSettings(max_len=EAGER_MAX_LEN + 1)) == "sdpa"
    assert attn_implementation(TrainingSettings(max_len=2048, attn_implementation="eager")) == "eager"
