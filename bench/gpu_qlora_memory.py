"""QLoRA on a CUDA GPU: SmolLM2 SFT in bf16 with gradient checkpointing, and the peak memory of a 3B QLoRA step.

Part 1 trains the embedded SmolLM2-135M-Instruct with llmops (QLoRA NF4, bf16, gradient checkpointing) for a few
steps and prints tokens/s and the loss. Part 2 builds a randomly initialised model with Qwen2.5-3B-Instruct's
architecture (the config is written here: no download; random weights take the same memory as trained ones),
quantises it to NF4 as llmops does, wraps it in LoRA r16 on every linear layer, and runs one training step on a
batch of 1 x 1024 tokens, printing `torch.cuda.max_memory_allocated`. The original project's claim was "a 3B model
on an 8 GB GPU".

Needs a CUDA GPU and bitsandbytes; exits with a message otherwise.

    python bench/gpu_qlora_memory.py [--steps 8] [--seq 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Qwen2.5-3B-Instruct's config.json (architecture only).
QWEN25_3B = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 2048,
    "intermediate_size": 11008,
    "num_hidden_layers": 36,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "sliding_window": 32768,
    "max_window_layers": 70,
    "use_sliding_window": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}


def smollm2_qlora(steps: int) -> dict:
    """llmops QLoRA SFT of SmolLM2 on the GPU (bf16, gradient checkpointing): tokens/s and final loss."""
    from llmops.config import RunConfig
    from llmops.methods.sft import train_sft
    from llmops.models.loader import load_student

    sys.path.insert(0, str(Path(__file__).parent))
    from sft_real_model import idp_examples

    with tempfile.TemporaryDirectory() as tmp:
        examples = idp_examples(4 * steps, Path(tmp))
        cfg = RunConfig.model_validate(
            {
                "student": "smollm2-135m-instruct",
                "peft": {"method": "qlora", "r": 16, "alpha": 32, "target_modules": "all-linear"},
                "training": {
                    "max_steps": steps,
                    "per_device_train_batch_size": 4,
                    "learning_rate": 3e-4,
                    "logging_steps": 1,
                    "save_steps": 10 * steps,
                    "bf16": True,
                    "gradient_checkpointing": True,
                },
            }
        )
        model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
        kinds = {type(m).__name__ for m in model.modules()}
        result = train_sft(model, tokenizer, examples, cfg, Path(tmp) / "out")
    return {
        "tokens_per_second": round(result.tokens_per_second, 1),
        "final_loss": round(result.final_loss, 4),
        "linear4bit": "Linear4bit" in kinds,
        "device": str(next(model.parameters()).device),
    }


def qwen3b_step_memory(seq: int) -> dict:
    """Peak GPU memory of one QLoRA training step of a random Qwen2.5-3B-shaped model, batch 1 x `seq`."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(QWEN25_3B))
        config = AutoConfig.from_pretrained(tmp)
    bnb = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    torch.manual_seed(0)
    # Build the bf16 model on the CPU, save it, and load it 4-bit onto the GPU the way llmops loads a student.
    with tempfile.TemporaryDirectory() as tmp:
        AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(tmp)
        torch.cuda.reset_peak_memory_stats()
        model = AutoModelForCausalLM.from_pretrained(
            tmp, quantization_config=bnb, dtype=torch.bfloat16, device_map={"": 0}
        )
    loaded = torch.cuda.memory_allocated()
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, config.vocab_size, (1, seq), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    gib = 1024**3
    return {
        "weights_gib": round(loaded / gib, 2),
        "peak_step_gib": round(torch.cuda.max_memory_allocated() / gib, 2),
        "step_seconds": round(time.perf_counter() - start, 2),
        "seq": seq,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--seq", type=int, default=1024)
    opts = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("bench/gpu_qlora_memory.py needs a CUDA GPU (none found); nothing measured")
    out = {
        "gpu": torch.cuda.get_device_name(0),
        "smollm2_qlora": smollm2_qlora(opts.steps),
        "qwen2.5_3b_qlora_step": qwen3b_step_memory(opts.seq),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
