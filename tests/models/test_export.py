"""save_outputs + load_for_inference: adapter and merged model give the same logits; writes are atomic."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llmops.config import PeftSettings, TrainingSettings
from llmops.models.export import save_outputs
from llmops.models.files import QUANTIZATION_FILE
from llmops.models.loader import load_for_inference, load_student


def _logits(model, tokenizer) -> torch.Tensor:
    batch = tokenizer(["Invoice 123 total 45", "line 7"], return_tensors="pt", padding=True)
    with torch.no_grad():  # padding positions zeroed: attention kernels differ only in what they put there
        return model(**batch).logits.float() * batch["attention_mask"][..., None]


def _perturb_adapters(model) -> None:
    """Non-zero LoRA B matrices, so the adapter changes the output (fresh LoRA B is zero)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param) * 0.5)


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_adapter_and_merged_give_the_same_logits(tiny_model_dir: Path, tmp_path: Path, method: str) -> None:
    model, tokenizer = load_student(str(tiny_model_dir), PeftSettings(method=method, r=4, alpha=8), TrainingSettings())
    _perturb_adapters(model)
    outputs = save_outputs(model, tokenizer, tmp_path / "out", merge=True)
    assert set(outputs) == {"adapter", "merged"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["adapter", "merged"]  # no temp leftovers
    assert (outputs["adapter"] / "adapter_config.json").is_file()
    assert not (outputs["merged"] / "adapter_config.json").exists()

    adapter_model, tok = load_for_inference(outputs["adapter"], torch.float32)
    merged_model, _ = load_for_inference(outputs["merged"], torch.float32)
    base_model, _ = load_for_inference(tiny_model_dir, torch.float32)
    from_adapter, from_merged = _logits(adapter_model, tok), _logits(merged_model, tok)
    torch.testing.assert_close(from_merged, from_adapter, atol=1e-4, rtol=1e-4)
    assert (from_adapter - _logits(base_model, tok)).abs().max() > 1e-2  # the adapter really is applied
    # Both compute what the model computed in training: for QLoRA that is the NF4 base (reloaded in 4-bit for the
    # adapter, dequantised for the merge), not the full-precision weights it was quantised from.
    torch.testing.assert_close(from_merged, _logits(model.eval(), tok), atol=1e-4, rtol=1e-4)
    assert (outputs["adapter"] / QUANTIZATION_FILE).is_file() == (method == "qlora")
    if method == "qlora":
        assert type(adapter_model.get_base_model().model.layers[0].mlp.down_proj.base_layer).__name__ == "Linear4bit"


def test_full_model_saves_merged_only_and_reloads_identically(tiny_model_dir: Path, tmp_path: Path) -> None:
    model, tokenizer = load_student(str(tiny_model_dir), PeftSettings(method="full"), TrainingSettings())
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.mul_(2.0)
    outputs = save_outputs(model, tokenizer, tmp_path / "out", merge=False)
    assert set(outputs) == {"merged"}
    reloaded, tok = load_for_inference(outputs["merged"], torch.float32)
    assert tok.padding_side == "left"  # ready for batched generation
    torch.testing.assert_close(_logits(reloaded, tok), _logits(model.eval(), tok))


def test_saving_twice_replaces_the_previous_output(tiny_model_dir: Path, tmp_path: Path) -> None:
    model, tokenizer = load_student(str(tiny_model_dir), PeftSettings(method="lora", r=4), TrainingSettings())
    save_outputs(model, tokenizer, tmp_path / "out", merge=False)
    (tmp_path / "out" / "adapter" / "stale.txt").write_text("old")
    outputs = save_outputs(model, tokenizer, tmp_path / "out", merge=False)
    assert not (outputs["adapter"] / "stale.txt").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["adapter"]


def test_inference_loads_in_bf16_where_the_cpu_has_it(tiny_model_dir: Path) -> None:
    from llmops.models.device import cpu_supports_bf16, inference_dtype

    model, _ = load_for_inference(tiny_model_dir)
    expected = torch.bfloat16 if cpu_supports_bf16() else torch.float32
    assert inference_dtype() == expected and next(model.parameters()).dtype == expected


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_models_computed_from_4bit_weights_generate_in_fp32_by_default(
    tiny_model_dir: Path, tmp_path: Path, method: str
) -> None:
    """A merged QLoRA model is dequantised NF4 + the LoRA delta: loaded in bf16 its greedy answers drift from the
    adapter's (measured on SmolLM2), so both load in fp32 and generation does not autocast them back to bf16."""
    from llmops.evaluation.generate import generate, generation_autocast
    from llmops.models.device import inference_dtype
    from llmops.models.files import PRECISION_FILE

    model, tokenizer = load_student(str(tiny_model_dir), PeftSettings(method=method, r=4, alpha=8), TrainingSettings())
    _perturb_adapters(model)
    outputs = save_outputs(model, tokenizer, tmp_path / "out", merge=True)
    assert (outputs["merged"] / PRECISION_FILE).is_file() == (method == "qlora")
    adapter_model, tok = load_for_inference(outputs["adapter"])
    merged_model, _ = load_for_inference(outputs["merged"])
    expected = torch.float32 if method == "qlora" else inference_dtype()
    assert merged_model.dtype == expected
    if method == "qlora":
        for loaded in (adapter_model, merged_model):
            with generation_autocast(loaded):
                assert not torch.is_autocast_cpu_enabled()
        prompts = [[{"role": "user", "content": f"Invoice {i} total {i * 7}"}] for i in range(6)]
        assert generate(adapter_model, tok, prompts, 3, 12) == generate(merged_model, tok, prompts, 3, 12)


def test_a_broken_precision_file_is_one_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from llmops.errors import ModelError
    from llmops.models.files import PRECISION_FILE

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / PRECISION_FILE).write_text('{"dtype": "float33"}')
    with pytest.raises(ModelError, match="float33"):
        load_for_inference(folder)
