"""SFT throughput: llmops' train_sft against a plain TRL script, and padding-free packing against padding.

Both parts train the same tiny model on the same data for the same number of steps, in this process, alternating
the contenders and repeating to even out noise from other processes; each prints tokens/s (non-padding tokens
trained per second of `train()`) and the ratio. Targets: train_sft / plain TRL >= 0.95; packed / unpacked >= 1.3.

    python bench/sft_throughput.py [--steps 40] [--repeats 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BATCH = 8
LR = 2e-3


def make_examples(n: int, seed: int, min_lines: int, max_lines: int) -> list[dict]:
    """IDP-style prompt-completion examples; documents of min..max lines."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        fields = {
            "invoice_id": f"INV-{rng.randint(1000, 99999)}",
            "total": f"{rng.uniform(1, 9999):.2f}",
            "vendor": rng.choice(["Acme Ltd", "Globex", "Initech", "Umbrella Corp", "Hooli"]),
        }
        lines = [f"Invoice {fields['invoice_id']} from {fields['vendor']}"]
        lines += [
            f"item {i}: {rng.randint(1, 20)} x {rng.uniform(1, 99):.2f}"
            for i in range(rng.randint(min_lines, max_lines))
        ]
        lines.append(f"Total due: {fields['total']}")
        prompt = "Extract the fields from the document as JSON. Answer with JSON only.\nDocument:\n" + "\n".join(lines)
        examples.append(
            {
                "prompt": [{"role": "user", "content": prompt}],
                "completion": [{"role": "assistant", "content": json.dumps(fields)}],
            }
        )
    return examples


def texts_of(examples: list[dict]) -> list[str]:
    return [e["prompt"][0]["content"] + e["completion"][0]["content"] for e in examples]


def run_llmops(model_dir: Path, examples: list[dict], steps: int, out: Path, **training: object) -> float:
    """tokens/s of llmops.methods.sft.train_sft (full fine-tuning)."""
    from llmops.config import RunConfig
    from llmops.methods.sft import train_sft
    from llmops.models.loader import load_student

    settings = {
        "max_steps": steps,
        "per_device_train_batch_size": BATCH,
        "learning_rate": LR,
        "logging_steps": 10,
        "save_steps": 10 * steps,
        "max_len": 1024,
        "seed": 0,
        **training,
    }
    cfg = RunConfig.model_validate({"student": str(model_dir), "peft": {"method": "full"}, "training": settings})
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    return train_sft(model, tokenizer, examples, cfg, out).tokens_per_second


def run_plain_trl(model_dir: Path, examples: list[dict], steps: int, out: Path) -> float:
    """tokens/s of a minimal hand-written TRL SFT script with the same hyper-parameters."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "right"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=BATCH,
        learning_rate=LR,
        lr_scheduler_type="cosine",
        logging_steps=10,
        save_steps=10 * steps,
        max_length=1024,
        seed=0,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples), processing_class=tokenizer)
    start = time.perf_counter()
    trainer.train()
    return trainer._total_train_tokens / (time.perf_counter() - start)


def compare(name_a: str, fn_a, name_b: str, fn_b, repeats: int) -> float:
    """One untimed warm-up each, then alternate a and b `repeats` times; print medians, return median(a) / median(b)."""
    fn_a()
    fn_b()
    a, b = [], []
    for i in range(repeats):
        first, second = ((fn_a, a), (fn_b, b)) if i % 2 == 0 else ((fn_b, b), (fn_a, a))
        for fn, sink in (first, second):
            sink.append(fn())
    ratio = statistics.median(a) / statistics.median(b)
    print(f"  {name_a:<28} {statistics.median(a):>10,.0f} tok/s  runs {[round(x) for x in a]}")
    print(f"  {name_b:<28} {statistics.median(b):>10,.0f} tok/s  runs {[round(x) for x in b]}")
    print(f"  ratio {name_a} / {name_b}: {ratio:.3f}")
    return ratio


def main() -> None:
    """Run both comparisons and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1: steady numbers on a CPU shared with other processes)",
    )
    opts = parser.parse_args()

    import datasets
    import torch
    import transformers

    torch.set_num_threads(opts.threads)
    datasets.disable_progress_bars()

    from llmops.models.tiny import build_tiny_model

    transformers.logging.set_verbosity_error()
    uniform = make_examples(BATCH * opts.steps, seed=0, min_lines=3, max_lines=3)
    mixed = make_examples(BATCH * opts.steps, seed=1, min_lines=0, max_lines=24)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = build_tiny_model(work / "tiny", texts_of(uniform + mixed))
        print(f"train_sft vs plain TRL SFTTrainer ({opts.steps} steps, batch {BATCH}, full fine-tuning)")
        overhead = compare(
            "llmops train_sft",
            lambda: run_llmops(model_dir, uniform, opts.steps, work / "a"),
            "plain TRL script",
            lambda: run_plain_trl(model_dir, uniform, opts.steps, work / "b"),
            opts.repeats,
        )
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
        mean_len = statistics.mean(len(tok(t)["input_ids"]) for t in texts_of(mixed))
        pack_len = int(BATCH * mean_len)
        print(f"mixed lengths (mean {mean_len:.0f} tokens): packed rows of {pack_len} tokens vs batch {BATCH}")
        packed = compare(
            "train_sft packing",
            lambda: run_llmops(
                model_dir, mixed, opts.steps, work / "c", packing=True, max_len=pack_len, per_device_train_batch_size=1
            ),
            "train_sft padded",
            lambda: run_llmops(model_dir, mixed, opts.steps, work / "d"),
            opts.repeats,
        )
    print(json.dumps({"train_sft_over_trl": round(overhead, 3), "packed_over_padded": round(packed, 3)}))


if __name__ == "__main__":
    main()
