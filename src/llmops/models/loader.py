"""Load the student (full, LoRA or QLoRA, ready to train) and saved models for inference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmops.config import PeftSettings, TrainingSettings
from llmops.errors import ModelError
from llmops.models.device import has_cuda, model_dtype, use_gradient_checkpointing

ADAPTER_CONFIG = "adapter_config.json"

# Used only for tokenizers that ship without a chat template (base models): the assistant turn ends with EOS, and
# the prompt rendered with add_generation_prompt is a prefix of the prompt rendered with the answer.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1 or name.endswith("/")


def resolve_model_path(name_or_path: str) -> str:
    """A local folder as-is, or a hub id that can be loaded now; ModelError otherwise (fast, no network wait)."""
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return str(local.resolve())  # absolute, so a saved adapter still finds its base from another directory
    if local.exists() or _looks_like_path(name_or_path):
        raise ModelError(f"model '{name_or_path}': no such folder; pass the folder that holds config.json")
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.is_offline_mode():
        cached = try_to_load_from_cache(name_or_path, "config.json")
        if not isinstance(cached, str):
            raise ModelError(
                f"model '{name_or_path}' is not a local folder and the hub is offline; "
                "pass a local path or unset HF_HUB_OFFLINE"
            )
    return name_or_path


def _load_error(name: str, err: Exception) -> ModelError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ModelError(f"model '{name}': cannot be loaded ({first})")


def load_tokenizer(path: str, *, padding_side: str = "right") -> Any:
    """The tokenizer with a pad token (EOS when it has none) and a chat template."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise _load_error(path, e) from None
    if tokenizer.eos_token is None:
        raise ModelError(f"model '{path}': the tokenizer has no EOS token; set eos_token in tokenizer_config.json")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    tokenizer.padding_side = padding_side
    return tokenizer


def _bnb_config(training: TrainingSettings) -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelError("peft.method qlora needs bitsandbytes: pip install 'llmops[qlora]'") from None
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if model_dtype(training) == torch.bfloat16 else torch.float32,
    )


def _load_model(path: str, training: TrainingSettings, quantized: bool) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": model_dtype(training)}
    if quantized:
        kwargs["quantization_config"] = _bnb_config(training)
        kwargs["device_map"] = {"": 0} if has_cuda() else {"": "cpu"}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise _load_error(path, e) from None
    if not quantized and has_cuda():
        model = model.to("cuda")
    return model


def lora_config(peft: PeftSettings) -> Any:
    """The peft LoraConfig for these settings."""
    from peft import LoraConfig

    return LoraConfig(
        r=peft.r,
        lora_alpha=peft.alpha,
        lora_dropout=peft.dropout,
        target_modules=peft.target_modules,
        task_type="CAUSAL_LM",
    )


def _apply_peft(model: Any, peft: PeftSettings, training: TrainingSettings) -> Any:
    if peft.method == "full":
        for param in model.parameters():
            param.requires_grad_(True)
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import set_seed

    set_seed(training.seed)  # LoRA A matrices are initialised randomly: seeded runs must start alike
    if peft.method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=use_gradient_checkpointing(training)
        )
    try:
        return get_peft_model(model, lora_config(peft))
    except ValueError as e:
        raise ModelError(f"peft.target_modules {peft.target_modules!r}: {e}") from None


def load_student(name_or_path: str, peft: PeftSettings, training: TrainingSettings) -> tuple[Any, Any]:
    """The student model and tokenizer, with full, LoRA or QLoRA adaptation applied, ready to train."""
    path = resolve_model_path(name_or_path)
    tokenizer = load_tokenizer(path)
    model = _load_model(path, training, quantized=peft.method == "qlora")
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return _apply_peft(model, peft, training), tokenizer


def load_for_inference(path: str | Path) -> tuple[Any, Any]:
    """A saved model for generation: a full/merged model folder, or a PEFT adapter folder (base loaded first)."""
    from transformers import AutoModelForCausalLM

    folder = resolve_model_path(str(path))
    adapter_file = Path(folder) / ADAPTER_CONFIG
    dtype = model_dtype(TrainingSettings())
    if not adapter_file.is_file():
        tokenizer = load_tokenizer(folder, padding_side="left")
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        except (OSError, ValueError) as e:
            raise _load_error(folder, e) from None
    else:
        from peft import PeftModel

        base = json.loads(adapter_file.read_text()).get("base_model_name_or_path")
        if not base:
            raise ModelError(f"{adapter_file}: no base_model_name_or_path; cannot tell which base model to load")
        base_path = resolve_model_path(base)
        has_tok = any((Path(folder) / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
        tokenizer = load_tokenizer(folder if has_tok else base_path, padding_side="left")
        try:
            model = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
            model = PeftModel.from_pretrained(model, folder)
        except (OSError, ValueError) as e:
            raise _load_error(folder, e) from None
    if has_cuda():
        model = model.to("cuda")
    return model.eval(), tokenizer
