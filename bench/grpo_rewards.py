"""GRPO reward throughput: judging a batch of sampled CodeGen answers in the sandbox against generating them.

One GRPO generation batch (default 8 prompts x 8 answers = 64) is sampled by the model (SmolLM2-135M-Instruct by
default, or --model PATH: a quickstart's trained model gives more passing answers) on the quickstart's synthetic
training tasks, then judged with `CodeGenTask.rewards` (every answer's program run against its task's tests in the
warm sandbox pool, in parallel: what `methods/grpo.py` calls each step). Both are timed in the same run, repeated;
prints seconds per batch (median) and the ratio rewards / generation. Target: < 1 (rewards cost less than
generating the answers they judge).

    python bench/grpo_rewards.py [--model smollm2-135m-instruct] [--prompts 8] [--group 8] [--max-new-tokens 48]
                                 [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group", type=int, default=8, help="answers sampled per prompt (grpo.num_generations)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from llmops.evaluation.generate import sample
    from llmops.models.loader import load_for_inference
    from llmops.quickstart.codegen_data import generate_codegen_dataset
    from llmops.sandbox.programs import default_workers
    from llmops.tasks.codegen import CodeGenTask

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = generate_codegen_dataset(Path(tmp), n_train=max(args.prompts, 16), n_eval_per_class=1, seed=0)
        problems = [json.loads(line) for line in data.train_problems.read_text().splitlines()][: args.prompts]
    task = CodeGenTask()
    model, tokenizer = load_for_inference(args.model)
    prompts = [[{"role": "user", "content": task.build_prompt(problem["prompt"])}] for problem in problems]
    answers_per_batch = args.prompts * args.group
    generation, judging, rewards = [], [], []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        groups = sample(
            model,
            tokenizer,
            prompts,
            args.group,
            answers_per_batch,
            args.max_new_tokens,
            args.temperature,
            seed=repeat,
            desc="sampling",
        )
        generation.append(time.perf_counter() - start)
        answers = [answer for group in groups for answer in group]
        references = [problem for problem in problems for _ in range(args.group)]
        start = time.perf_counter()
        rewards = task.rewards(answers, references)
        judging.append(time.perf_counter() - start)
        print(
            f"repeat {repeat + 1}: generation {generation[-1]:.2f} s, rewards {judging[-1]:.2f} s "
            f"(mean reward {sum(rewards) / len(rewards):.3f})"
        )
    gen, judge = statistics.median(generation), statistics.median(judging)
    print(
        f"batch of {answers_per_batch} answers ({args.prompts} prompts x {args.group}, up to "
        f"{args.max_new_tokens} tokens; {args.model}; {args.threads} threads)"
    )
    print(f"generation: {gen:.2f} s/batch ({answers_per_batch / gen:.1f} answers/s)")
    print(
        f"rewards:    {judge:.2f} s/batch ({answers_per_batch / judge:.1f} answers/s, sandbox workers "
        f"{task.workers or default_workers()})"
    )
    print(f"rewards / generation: {judge / gen:.3f} (target < 1)")


if __name__ == "__main__":
    main()
