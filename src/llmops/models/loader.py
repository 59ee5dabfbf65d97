"""Load the student (full, LoRA or QLoRA, ready to train) and saved models for inference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmops.config import PeftSettings, TrainingSettings
from llmops.errors import ModelError
from llmops.models import policy
from llmops.models.device import (
    attn_implementation,
    has_cuda,
    inference_dtype,
    model_dtype,
    quantized_device_map,
    use_gradient_checkpointing,
)

ADAPTER_CONFIG = "adapter_config.json"


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1 or name.endswith("/")


def resolve_model_path(name_or_path: str) -> str:
    """A built-in name or `.gguf` file (converted, cached), a local folder as-is, or a hub id that can be loaded now;
    ModelError otherwise (fast, no network wait)."""
    from llmops.models.builtin import TINY, resolve_builtin

    if name_or_path.lower() == TINY:
        raise ModelError("model 'tiny' is built from a run's training data; use it as `student:` of `llmops run`")
    converted = resolve_builtin(name_or_path)
    if converted is not None:
        return converted
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


def load_tokenizer(
    path: str, *, padding_side: str = "right", chat_template: str | None = None, name: str | None = None
) -> Any:
    """The tokenizer with a pad token other than EOS and a chat template (`chat_template` replaces the model's)."""
    from transformers import AutoTokenizer

    from llmops.models.builtin import set_distinct_pad

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=policy.policy().trust_remote_code)
    except (OSError, ValueError) as e:
        raise _load_error(path, e) from None
    if tokenizer.eos_token is None:
        raise ModelError(f"model '{path}': the tokenizer has no EOS token; set eos_token in tokenizer_config.json")
    set_distinct_pad(tokenizer)
    if chat_template:
        tokenizer.chat_template = read_chat_template(chat_template)
    if not tokenizer.chat_template:
        raise ModelError(
            f"model '{name or path}' has no chat template; set training.chat_template to a Jinja "
            "template (text or a .jinja file) whose assistant turn ends with the EOS token"
        )
    tokenizer.padding_side = padding_side
    return tokenizer


def read_chat_template(value: str) -> str:
    """A chat template given inline or as a path to a .jinja file."""
    if value.endswith((".jinja", ".j2", ".txt")) and "{" not in value:
        path = Path(value).expanduser()
        if not path.is_file():
            raise ModelError(f"training.chat_template {value}: no such file")
        return path.read_text(encoding="utf-8")
    return value


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


def same_4bit_math_everywhere(model: Any) -> Any:
    """Keep bitsandbytes' 4-bit layers on one code path in training and inference. On CPUs with AVX512-BF16 a
    Linear4bit in eval mode repacks its weights, in place, for a bf16 kernel: evaluation (and a baseline before
    training) would then compute something else than training did and than the merged model does (and it fails
    on layers narrower than a quantisation block)."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    return model


def _load_model(path: str, training: TrainingSettings, quantized: bool) -> Any:
    from transformers import AutoModelForCausalLM

    policy.check_folder(path)
    kwargs: dict[str, Any] = {"dtype": model_dtype(training), **policy.load_kwargs()}
    if attn_implementation(training):
        kwargs["attn_implementation"] = attn_implementation(training)
    if quantized:
        kwargs["quantization_config"] = _bnb_config(training)
        kwargs["device_map"] = quantized_device_map()
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise _load_error(path, e) from None
    if quantized:
        same_4bit_math_everywhere(model)
    elif has_cuda():
        model = model.to("cuda")
    return model


def _linear_names(model: Any) -> list[str]:
    """The names of the decoder's linear layers ("all-linear" spelt out: peft needs a list with layer indices)."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head and ".layers." in f".{name}"
    }
    return sorted(names)


def lora_config(peft: PeftSettings, model: Any = None) -> Any:
    """The peft LoraConfig for these settings (`model`: the model it applies to, for peft.top_layers)."""
    from peft import LoraConfig

    layers, targets = None, peft.target_modules
    depth = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if peft.top_layers is not None and depth:
        layers = list(range(max(0, depth - peft.top_layers), depth))
        if targets == "all-linear":
            targets = _linear_names(model)
    return LoraConfig(
        r=peft.r,
        lora_alpha=peft.alpha,
        lora_dropout=peft.dropout,
        target_modules=targets,
        layers_to_transform=layers,
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
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=use_gradient_checkpointing(training))
    try:
        return get_peft_model(model, lora_config(peft, model))
    except ValueError as e:
        raise ModelError(f"peft.target_modules {peft.target_modules!r}: {e}") from None


def load_student(name_or_path: str, peft: PeftSettings, training: TrainingSettings) -> tuple[Any, Any]:
    """The student model and tokenizer, with full, LoRA or QLoRA adaptation applied, ready to train."""
    from llmops.models.builtin import end_generation_on_eos

    path = resolve_model_path(name_or_path)
    tokenizer = load_tokenizer(path, chat_template=training.chat_template, name=name_or_path)
    model = _load_model(path, training, quantized=peft.method == "qlora")
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))  # a pad token was added
    model.config.pad_token_id = tokenizer.pad_token_id
    end_generation_on_eos(tokenizer, model)
    return _apply_peft(model, peft, training), tokenizer


def _adapter_base_path(adapter_file: Path) -> str:
    base = json.loads(adapter_file.read_text()).get("base_model_name_or_path")
    if not base:
        raise ModelError(f"{adapter_file}: no base_model_name_or_path; cannot tell which base model to load")
    return resolve_model_path(base)


def load_adapter_base(adapter_dir: str | Path, tokenizer_size: int | None = None, dtype: Any = None) -> Any:
    """The base model of a saved adapter, as it was trained on: in 4-bit NF4 again for a QLoRA adapter (its
    llmops_quantization.json, computing in `dtype`), else in `dtype` (default fp32); embeddings resized when
    training added a pad token."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from llmops.models.files import QUANTIZATION_FILE

    adapter_dir = Path(adapter_dir)
    base_path = _adapter_base_path(adapter_dir / ADAPTER_CONFIG)
    dtype = dtype or torch.float32
    policy.check_folder(adapter_dir)
    policy.check_folder(base_path)
    kwargs: dict[str, Any] = {"dtype": dtype, **policy.load_kwargs()}
    quant_file = adapter_dir / QUANTIZATION_FILE
    if quant_file.is_file():
        _bnb_config(TrainingSettings())  # the clear error when bitsandbytes is missing
        quantization = BitsAndBytesConfig.from_dict(json.loads(quant_file.read_text()))
        quantization.bnb_4bit_compute_dtype = dtype
        kwargs["quantization_config"] = quantization
        kwargs["device_map"] = quantized_device_map()
    try:
        model = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
    except (OSError, ValueError) as e:
        raise _load_error(base_path, e) from None
    same_4bit_math_everywhere(model)
    if tokenizer_size is None:
        tokenizer_size = len(
            load_tokenizer(str(adapter_dir) if (adapter_dir / "tokenizer_config.json").is_file() else base_path)
        )
    if tokenizer_size > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(tokenizer_size)
    return model


def saved_inference_dtype(folder: str | Path) -> Any:
    """The dtype a saved model generates in by default: fp32 for one computed from 4-bit weights (a QLoRA adapter,
    or a model merged from one: its llmops_precision.json), so the merged model answers as the adapter does; else
    bf16 where it is native (a GPU that has it, a CPU with AVX512-BF16 / AMX: measured 1.45x faster greedy decoding
    than bf16 autocast over fp32 weights, 2.3x faster than fp32), else fp32."""
    import torch

    from llmops.models.files import PRECISION_FILE, QUANTIZATION_FILE

    folder = Path(folder)
    if (folder / QUANTIZATION_FILE).is_file():
        return torch.float32
    precision = folder / PRECISION_FILE
    if precision.is_file():
        try:
            name = json.loads(precision.read_text()).get("dtype", "")
        except (ValueError, AttributeError):
            raise ModelError(f'{precision}: not a JSON object; delete it or write {{"dtype": "float32"}}') from None
        dtype = getattr(torch, str(name), None)
        if not isinstance(dtype, torch.dtype):
            raise ModelError(f"{precision}: dtype '{name}' is not a torch dtype (float32, bfloat16, float16)")
        return dtype
    return inference_dtype()


def load_for_inference(path: str | Path, dtype: Any = None) -> tuple[Any, Any]:
    """A saved model for generation: a full/merged model folder, or a PEFT adapter folder (base loaded first), in
    `dtype` (default: saved_inference_dtype). A model kept in fp32 on purpose is marked `llmops_full_precision`,
    so generation does not autocast it to bf16 either."""
    from transformers import AutoModelForCausalLM

    folder = resolve_model_path(str(path))
    policy.check_folder(folder)
    adapter_file = Path(folder) / ADAPTER_CONFIG
    saved = saved_inference_dtype(folder) if dtype is None else None
    keep_precision = saved is not None and saved != inference_dtype()
    dtype = dtype or saved
    if not adapter_file.is_file():
        tokenizer = load_tokenizer(folder, padding_side="left")
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **policy.load_kwargs())
        except (OSError, ValueError) as e:
            raise _load_error(folder, e) from None
    else:
        from peft import PeftModel

        base_path = _adapter_base_path(adapter_file)
        has_tok = any((Path(folder) / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
        tokenizer = load_tokenizer(folder if has_tok else base_path, padding_side="left")
        model = load_adapter_base(folder, tokenizer_size=len(tokenizer), dtype=dtype)
        try:
            model = PeftModel.from_pretrained(model, folder)
        except (OSError, ValueError) as e:
            raise _load_error(folder, e) from None
    model.llmops_full_precision = keep_precision
    if getattr(model, "is_loaded_in_4bit", False):
        return model.eval(), tokenizer  # already on its device
    if has_cuda():
        model = model.to("cuda")
    return model.eval(), tokenizer
