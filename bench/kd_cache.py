"""Distillation with the offline teacher cache against the online teacher: time per epoch, same run.

A tiny student and a tiny teacher several times its size train on the same data for the same epochs through
llmops.methods.kd.train_kd's trainer, once with the teacher running on every batch (online) and once reading its
top-k log-probs from the cache (offline); the contenders alternate and repeat to even out noise from other processes.
Building the cache (one teacher pass over the data, before training) is timed and reported on its own; a second
offline run reuses the folder. Prints seconds per epoch, the offline/online ratio from the second epoch on (target
<= 0.6) and the cache size in bytes per token (DistillKit's published figure: ~300 B/token).

    python bench/kd_cache.py [--epochs 3] [--examples 96] [--repeats 2] [--threads 1] [--teacher-layers 2]
    python bench/kd_cache.py --real [--teacher smollm2-135m-instruct] [--layers 18] [--top-k 32] --threads 2

The default teacher (hidden 128, 2 layers) has ~3.7x the student's parameters; --teacher-layers 4 gives ~7x.
`--real`: the teacher is SmolLM2-135M-Instruct (49k vocabulary; or --teacher PATH) and the student is that teacher
depth-pruned to --layers decoder layers (llmops.models.prune), trained with LoRA r16 as the quickstart does.
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

STUDENT = {"hidden_size": 64, "num_layers": 2}
TEACHER = {"hidden_size": 128, "num_layers": 2}


def make_examples(n: int, seed: int) -> list[dict]:
    """IDP-style prompt-completion examples: a short invoice and its fields as JSON."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        fields = {
            "invoice_id": f"INV-{rng.randint(1000, 99999)}",
            "total": f"{rng.uniform(1, 9999):.2f}",
            "vendor": rng.choice(["Acme Ltd", "Globex", "Initech", "Umbrella Corp", "Hooli"]),
        }
        lines = [f"Invoice {fields['invoice_id']} from {fields['vendor']}"]
        lines += [f"item {i}: {rng.randint(1, 20)} x {rng.uniform(1, 99):.2f}" for i in range(rng.randint(2, 8))]
        lines.append(f"Total due: {fields['total']}")
        out.append(
            {
                "prompt": [{"role": "user", "content": "Extract the fields as JSON.\n" + "\n".join(lines)}],
                "completion": [{"role": "assistant", "content": json.dumps(fields)}],
            }
        )
    return out


def build_models(root: Path, examples: list[dict], teacher_layers: int) -> tuple[Path, Path]:
    """Student and teacher folders around one tokenizer (random weights: timing does not depend on them)."""
    import torch

    from llmops.models.tiny import _model, train_tokenizer

    tokenizer = train_tokenizer([e["prompt"][0]["content"] + e["completion"][0]["content"] for e in examples], 512)
    paths = []
    for name, size in (("student", STUDENT), ("teacher", {**TEACHER, "num_layers": teacher_layers})):
        torch.manual_seed(0)
        model = _model(tokenizer, size["hidden_size"], size["num_layers"], 2, None, 2048)
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        paths.append(root / name)
    return paths[0], paths[1]


def real_models(root: Path, examples: list[dict], teacher: str, layers: int) -> tuple[Path, str]:
    """The pruned student folder (importance on the bench examples) and the teacher it came from."""
    from llmops.models.prune import prune_to_folder

    report = prune_to_folder(teacher, layers, root / "student", records=examples)
    print(
        f"student: {teacher} pruned to layers {report.kept} ({report.parameters_after / 1e6:.1f}M of "
        f"{report.parameters_before / 1e6:.1f}M parameters)"
    )
    return root / "student", teacher


def run(
    student: Path,
    teacher_dir: Path | str,
    examples: list[dict],
    cache: bool,
    epochs: int,
    out: Path,
    cache_dir: Path,
    top_k: int = 64,
    real: bool = False,
) -> dict:
    """Seconds per epoch of one KD run, and what the cache cost."""
    from transformers import TrainerCallback

    from llmops.config import RunConfig
    from llmops.methods.kd import make_kd_trainer
    from llmops.models.loader import load_student

    training = {
        "per_device_train_batch_size": 8,
        "learning_rate": 2e-3,
        "logging_steps": 1000,
        "save_steps": 100_000,
        "max_len": 1024,
        "seed": 0,
    }
    peft = {"method": "full"}
    if real:  # the quickstart's recipe: LoRA r16 on every linear layer, batch 4
        training.update(per_device_train_batch_size=4, learning_rate=3e-4, bf16=True)
        peft = {"method": "lora", "r": 16, "alpha": 32, "target_modules": "all-linear"}
    cfg = RunConfig.model_validate(
        {
            "student": str(student),
            "peft": peft,
            "epochs": epochs,
            "training": training,
            "kd": {"cache": cache, "cache_dir": str(cache_dir), "cache_top_k": top_k, "alpha": 0.5},
        }
    )
    model, tokenizer = load_student(cfg.student, cfg.peft, cfg.training)
    teacher, _ = load_student(str(teacher_dir), cfg.peft.model_copy(update={"method": "full"}), cfg.training)
    start = time.perf_counter()
    trainer = make_kd_trainer(model, tokenizer, teacher, examples, cfg, out)
    setup = time.perf_counter() - start
    epoch_times: list[float] = []

    class EpochTimer(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs) -> None:
            epoch_times.append(time.perf_counter() - self.start)

    trainer.add_callback(EpochTimer())
    trainer.train()
    c = trainer.cache
    tokens = sum(len(r["input_ids"]) for r in trainer.train_dataset)
    return {
        "epochs": epoch_times,
        "setup": setup,
        "built": bool(c and c.built),
        "cache_seconds": c.build_seconds if c else 0.0,
        "bytes_per_answer_token": c.bytes_per_token if c else 0,
        "bytes_per_token": c.nbytes / tokens if c else 0,
        "steps": trainer.state.global_step,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--examples", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--teacher-layers", type=int, default=TEACHER["num_layers"])
    parser.add_argument("--real", action="store_true", help="SmolLM2 teacher, its pruned copy as the student")
    parser.add_argument("--teacher", default="smollm2-135m-instruct", help="--real: the teacher model")
    parser.add_argument("--layers", type=int, default=18, help="--real: decoder layers the student keeps")
    parser.add_argument("--top-k", type=int, default=None, help="k cached per token (default: 32 real, 64 tiny)")
    args = parser.parse_args()
    top_k = args.top_k or (32 if args.real else 64)

    import torch

    torch.set_num_threads(args.threads)
    examples = make_examples(args.examples, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.real:
            student, teacher = real_models(root, examples, args.teacher, args.layers)
        else:
            student, teacher = build_models(root, examples, args.teacher_layers)
        results: dict[str, list[dict]] = {"online": [], "offline": []}
        order = ["online", "offline"]
        for rep in range(args.repeats):
            for mode in order if rep % 2 == 0 else order[::-1]:
                res = run(
                    student,
                    teacher,
                    examples,
                    mode == "offline",
                    args.epochs,
                    root / f"{mode}-{rep}",
                    root / "kd-cache",
                    top_k,
                    args.real,
                )
                results[mode].append(res)
                note = (
                    f" (cache {'built' if res['built'] else 'reused'} in {res['cache_seconds']:.2f} s)"
                    if mode == "offline"
                    else ""
                )
                print(f"rep {rep} {mode:7s}: epochs " + " ".join(f"{t:.2f}" for t in res["epochs"]) + f" s{note}")
        report(results, student, teacher, top_k)


def report(results: dict[str, list[dict]], student: Path, teacher: Path | str, top_k: int) -> None:
    """Medians of the later epochs, the ratio, the cache build time and size."""
    from transformers import AutoModelForCausalLM

    from llmops.models.loader import resolve_model_path

    sizes = {
        name: sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(resolve_model_path(str(path))).parameters())
        for name, path in (("student", student), ("teacher", teacher))
    }
    later = {mode: statistics.median(t for r in runs for t in r["epochs"][1:]) for mode, runs in results.items()}
    first = {mode: statistics.median(r["epochs"][0] for r in runs) for mode, runs in results.items()}
    built = [r for r in results["offline"] if r["built"]]
    cache = results["offline"][0]
    print(
        f"student {sizes['student'] / 1e6:.2f}M params, teacher {sizes['teacher'] / 1e6:.2f}M "
        f"({sizes['teacher'] / sizes['student']:.1f}x); {cache['steps']} steps per run"
    )
    print(f"epoch 1: online {first['online']:.2f} s, offline {first['offline']:.2f} s")
    print(
        f"epochs 2+: online {later['online']:.2f} s/epoch, offline {later['offline']:.2f} s/epoch, "
        f"ratio {later['offline'] / later['online']:.2f}x (target <= 0.6x)"
    )
    if built:
        print(f"cache build (one teacher pass, before training): {built[0]['cache_seconds']:.2f} s")
    print(
        f"cache size: {cache['bytes_per_answer_token']:.0f} B per answer token (k={top_k}: fp16 value + uint16 id; "
        f"target <= 130 at k=32), {cache['bytes_per_token']:.0f} B per training token (DistillKit: ~300 B/token)"
    )


if __name__ == "__main__":
    main()
