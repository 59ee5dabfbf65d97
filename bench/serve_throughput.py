"""`llmops serve` throughput: dynamic batching against the same server forced to batch size 1, in the same run.

32 concurrent clients (the official openai client, one thread each) send chat completions (greedy, the same prompts
in both modes, so both do the same work) to a real uvicorn server on 127.0.0.1. Each mode prints completions/s,
p50/p95 latency and the error count; the ratio batched / batch-1 is the target (>= 2x). The model is the quickstart's
tiny Llama (hidden 128, 2 layers, byte BPE 512) built here from the IDP quickstart's synthetic documents, or
--model FOLDER. The modes alternate over --repeats to even out noise from other processes.

    python bench/serve_throughput.py [--clients 32] [--requests 4] [--max-tokens 32] [--batch 32] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def tiny_model(folder: Path) -> Path:
    """The quickstart-sized tiny model (random weights: throughput does not depend on them)."""
    from llmops.models.tiny import build_tiny_model
    from llmops.quickstart.idp_data import generate_idp_dataset, tokenizer_corpus

    data = generate_idp_dataset(folder / "data", n_train=400, n_eval_per_class=4, seed=0)
    return build_tiny_model(
        folder / "model",
        tokenizer_corpus(data, limit=400),
        vocab_size=512,
        hidden_size=128,
        num_layers=2,
        num_heads=2,
        seed=0,
    )


def prompts(folder: Path, n: int) -> list[str]:
    docs = sorted((folder / "data").glob("*.jsonl"))
    import json

    texts = [json.loads(line)["document"] for path in docs for line in path.read_text().splitlines() if line]
    return [f"Extract the fields as JSON.\n{texts[i % len(texts)][:400]}" for i in range(n)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real uvicorn server in a thread, serving `engine`."""

    def __init__(self, engine: Any) -> None:
        import uvicorn

        from llmops.serving.app import create_app

        self.port = _free_port()
        app = create_app(engine, max_tokens_limit=4096, served_name="tiny")
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def measure(model: Any, tokenizer: Any, batch: int, texts: list[str], clients: int, max_tokens: int) -> dict:
    """Completions/s, latency percentiles and errors for one server configuration."""
    import openai

    from llmops.serving.engine import Engine

    engine = Engine(model, tokenizer, max_batch_size=batch, max_queue=4 * len(texts), name="tiny")
    server = Server(engine)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="none", max_retries=0, timeout=600)
    latencies: list[float] = []
    errors = 0

    def one(text: str) -> None:
        nonlocal errors
        start = time.perf_counter()
        try:
            client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": text}], max_tokens=max_tokens, temperature=0
            )
            latencies.append(time.perf_counter() - start)
        except Exception:  # noqa: BLE001 - counted: the target is zero errors
            errors += 1

    one(texts[0])  # warm-up, not timed
    latencies.clear()
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, texts))
    seconds = time.perf_counter() - start
    server.stop()
    engine.close()
    sizes = engine.batch_sizes[1:]
    return {
        "per_s": len(latencies) / seconds,
        "p50": statistics.median(latencies),
        "p95": statistics.quantiles(latencies, n=20)[-1],
        "errors": errors,
        "mean_batch": statistics.mean(sizes) if sizes else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a saved model folder (default: a quickstart-sized tiny model)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=4, help="requests per client")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32, help="max batch size of the batched server")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="weights' dtype (auto: bf16 where the CPU computes it natively, as `llmops serve`)",
    )
    args = parser.parse_args()

    import torch

    from llmops.environment import quiet_libraries
    from llmops.models.loader import load_for_inference

    quiet_libraries()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model_dir = args.model or tiny_model(folder)
        texts = (
            prompts(folder, args.clients * args.requests)
            if args.model is None
            else [f"Write a short note number {i}." for i in range(args.clients * args.requests)]
        )
        dtype = None if args.dtype == "auto" else getattr(torch, args.dtype)
        model, tokenizer = load_for_inference(model_dir, dtype)
        print(
            f"model {model_dir} ({next(model.parameters()).dtype}), {args.clients} clients x {args.requests} "
            f"requests, max_tokens {args.max_tokens}",
            flush=True,
        )
        runs: dict[int, list[dict]] = {args.batch: [], 1: []}
        for repeat in range(args.repeats):
            for batch in (args.batch, 1) if repeat % 2 == 0 else (1, args.batch):
                result = measure(model, tokenizer, batch, texts, args.clients, args.max_tokens)
                runs[batch].append(result)
                print(
                    f"batch {batch:>3}: {result['per_s']:7.2f} completions/s  p50 {result['p50']:6.2f} s  "
                    f"p95 {result['p95']:6.2f} s  errors {result['errors']}  mean batch {result['mean_batch']:.1f}",
                    flush=True,
                )
    best = {b: statistics.median(r["per_s"] for r in rs) for b, rs in runs.items()}
    errors = sum(r["errors"] for rs in runs.values() for r in rs)
    print(
        f"\n{args.clients} clients x {args.requests} requests, max_tokens {args.max_tokens}: "
        f"batched (max {args.batch}) {best[args.batch]:.2f}/s vs batch 1 {best[1]:.2f}/s = "
        f"{best[args.batch] / best[1]:.2f}x (target >= 2x); errors {errors} (target 0)"
    )


if __name__ == "__main__":
    main()
