"""SFT on the real embedded model (SmolLM2-135M-Instruct, LoRA r16 on every linear layer) on CPU.

Three comparisons on the quickstart's IDP examples, same data, seed and steps, in this process:

1. bf16 autocast against fp32: training tokens/s, and the loss curves (the mean of the last three logged losses
   must be within 2%). On a CPU without native bf16 (no AVX512-BF16 / AMX) llmops trains in fp32 anyway, and this
   part says so.
2. attention: PyTorch SDPA (the transformers default) against the eager implementation, both in bf16 autocast.
3. llmops `train_sft` against a plain TRL script (SFTTrainer + peft_config, same hyper-parameters): target >= 0.95.

The contenders alternate (a, b, b, a, ...) to even out noise from other processes; medians are printed.

    python bench/sft_real_model.py [--steps 12] [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BATCH = 4
LR = 3e-4
LORA = {"method": "lora", "r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}


def idp_examples(n: int, work: Path) -> list[dict]:
    """The quickstart's synthetic IDP training examples (prompt with the schema, JSON answer)."""
    from llmops.config import RunConfig
    from llmops.quickstart.idp_data import generate_idp_dataset
    from llmops.run_inputs import validate

    data = generate_idp_dataset(work / "data", n, 1, seed=0, mini_fraction=0.25)
    cfg = RunConfig.model_validate(
        {"student": "unused", "data": str(data.train), "eval_data": str(data.eval), "schema": str(data.schema)}
    )
    return validate(cfg).train[:n]


def run_llmops(
    model_dir: str, examples: list[dict], steps: int, out: Path, bf16: bool, attn: str | None = None
) -> tuple[float, list[float]]:
    """tokens/s and the loss curve of llmops.methods.sft.train_sft."""
    from llmops.config import RunConfig
    from llmops.methods.sft import train_sft
    from llmops.models.loader import load_student

    settings = {
        "max_steps": steps,
        "per_device_train_batch_size": BATCH,
        "learning_rate": LR,
        "logging_steps": 1,
        "save_steps": 10 * steps,
        "max_len": 768,
        "seed": 0,
        "bf16": bf16,
        "warmup_steps": 0,
        "lr_scheduler_type": "linear",
        "weight_decay": 0.0,
        "gradient_checkpointing": False,
        "num_threads": None,
        "attn_implementation": attn,
    }
    cfg = RunConfig.model_validate({"student": model_dir, "peft": LORA, "training": settings})
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    result = train_sft(model, tokenizer, examples, cfg, out)
    return result.tokens_per_second, [loss for _, loss in result.loss_history]


def run_plain_trl(model_dir: str, examples: list[dict], steps: int, out: Path) -> tuple[float, list[float]]:
    """tokens/s of a minimal hand-written TRL + PEFT SFT script with the same hyper-parameters (bf16 autocast)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=BATCH,
        learning_rate=LR,
        lr_scheduler_type="linear",
        logging_steps=1,
        save_steps=10 * steps,
        max_length=768,
        seed=0,
        bf16=True,
        gradient_checkpointing=False,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
    )
    peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    start = time.perf_counter()
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return trainer._total_train_tokens / (time.perf_counter() - start), losses


def compare(
    name_a: str,
    fn_a: Callable[[], tuple[float, list[float]]],
    name_b: str,
    fn_b: Callable[[], tuple[float, list[float]]],
    repeats: int,
) -> tuple[float, list[float], list[float]]:
    """Alternate a and b `repeats` times each; print median tokens/s; return the ratio and each one's last curve."""
    a: list[float] = []
    b: list[float] = []
    curves: dict[str, list[float]] = {}
    for i in range(repeats):
        order = ((name_a, fn_a, a), (name_b, fn_b, b)) if i % 2 == 0 else ((name_b, fn_b, b), (name_a, fn_a, a))
        for name, fn, sink in order:
            speed, curve = fn()
            sink.append(speed)
            curves[name] = curve
    ratio = statistics.median(a) / statistics.median(b)
    print(f"  {name_a:<26} {statistics.median(a):>8,.1f} tok/s  runs {[round(x, 1) for x in a]}")
    print(f"  {name_b:<26} {statistics.median(b):>8,.1f} tok/s  runs {[round(x, 1) for x in b]}")
    print(f"  ratio {name_a} / {name_b}: {ratio:.3f}")
    return ratio, curves[name_a], curves[name_b]


def end_of(curve: list[float]) -> float:
    return statistics.mean(curve[-3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--only", choices=["bf16", "attention", "trl"], action="append", help="run only these comparisons (repeatable)"
    )
    opts = parser.parse_args()

    import datasets
    import torch
    import transformers

    from llmops.models.builtin import resolve_builtin
    from llmops.models.device import cpu_supports_bf16

    torch.set_num_threads(opts.threads)
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    parts = opts.only or ["bf16", "attention", "trl"]
    model_dir = resolve_builtin("smollm2-135m-instruct")
    results: dict[str, Any] = {"steps": opts.steps, "batch": BATCH, "threads": opts.threads}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        examples = idp_examples(BATCH * opts.steps, work)
        print(
            f"SmolLM2-135M-Instruct, LoRA r16 all-linear, {opts.steps} steps x batch {BATCH}, "
            f"{len(examples)} IDP examples, {opts.threads} threads"
        )
        if "bf16" in parts:
            if not cpu_supports_bf16():
                print("bf16: this CPU has no native bf16 (AVX512-BF16/AMX); llmops trains in fp32 here")
            else:
                print("bf16 autocast vs fp32")
                ratio, bf16_curve, fp32_curve = compare(
                    "bf16 autocast",
                    lambda: run_llmops(model_dir, examples, opts.steps, work / "bf16", True),
                    "fp32",
                    lambda: run_llmops(model_dir, examples, opts.steps, work / "fp32", False),
                    opts.repeats,
                )
                gap = abs(end_of(bf16_curve) - end_of(fp32_curve)) / end_of(fp32_curve)
                print(
                    f"  loss (mean of last 3 logged): bf16 {end_of(bf16_curve):.4f}  fp32 {end_of(fp32_curve):.4f}"
                    f"  relative gap {gap:.1%} (target <= 2%)"
                )
                print(f"  curve bf16 {[round(x, 3) for x in bf16_curve]}")
                print(f"  curve fp32 {[round(x, 3) for x in fp32_curve]}")
                results.update(bf16_over_fp32=round(ratio, 3), bf16_loss_gap=round(gap, 4))
        if "attention" in parts:
            print("attention: eager vs sdpa (bf16 autocast)")
            ratio, _, _ = compare(
                "eager",
                lambda: run_llmops(model_dir, examples, opts.steps, work / "eager", True, "eager"),
                "sdpa",
                lambda: run_llmops(model_dir, examples, opts.steps, work / "sdpa", True, "sdpa"),
                opts.repeats,
            )
            results["eager_over_sdpa"] = round(ratio, 3)
        if "trl" in parts:
            print("llmops train_sft vs plain TRL + PEFT script (bf16 autocast)")
            ratio, _, _ = compare(
                "llmops train_sft",
                lambda: run_llmops(model_dir, examples, opts.steps, work / "llmops", True),
                "plain TRL script",
                lambda: run_plain_trl(model_dir, examples, opts.steps, work / "trl"),
                opts.repeats,
            )
            results["llmops_over_trl"] = round(ratio, 3)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
