"""A soak of a real `llmops serve` process with the official openai client: 32 clients for LLMOPS_SOAK_S seconds
(default 300) of mixed traffic: plain and streamed chat, streams cancelled after their first event, json_schema
requests, malformed and oversized bodies. No 5xx, resident memory growth under 10% after warm-up, p99 latency
reported. Slow (`make test-slow`)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

openai = pytest.importorskip("openai")

from tests.conftest import free_port  # noqa: E402

CLIENTS = 32
SOAK_S = float(os.environ.get("LLMOPS_SOAK_S", "300"))
SCHEMA = {
    "type": "object",
    "properties": {"invoice_id": {"type": "string", "maxLength": 12}, "total": {"type": "number"}},
    "required": ["invoice_id", "total"],
    "additionalProperties": False,
}
MAX_BODY = 16384


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _raw(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(SOAK_S + 900)  # the soak (LLMOPS_SOAK_S), the start and the last answers
def test_soak_mixed_traffic_no_5xx_bounded_memory(tiny_idp: dict[str, Path]) -> None:
    duration = SOAK_S
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmops.cli",
            "serve",
            str(tiny_idp["model"]),
            "--port",
            str(port),
            "--max-body-bytes",
            str(MAX_BODY),
            "--max-queue",
            "256",
            "--max-tokens-limit",
            "256",
            "--served-name",
            "tiny",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            try:
                with urllib.request.urlopen(url + "/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=120)
        statuses: Counter[str] = Counter()
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + duration

        def one(rng: random.Random) -> tuple[str, int]:
            kind = rng.choice(["plain", "plain", "stream", "cancel", "schema", "malformed", "oversized"])
            text = f"Extract: Invoice INV-{rng.randint(1, 999)} total {rng.randint(1, 99)}"
            msg = [{"role": "user", "content": text}]
            if kind == "plain":
                start = time.perf_counter()
                client.chat.completions.create(model="tiny", messages=msg, max_tokens=24, temperature=0)
                with lock:
                    latencies.append(time.perf_counter() - start)
                return kind, 200
            if kind in ("stream", "cancel"):
                chunks = client.chat.completions.create(model="tiny", messages=msg, max_tokens=32, stream=True)
                for _ in chunks:
                    if kind == "cancel":
                        break  # the client goes away mid-stream
                chunks.close()
                return kind, 200
            if kind == "schema":
                out = client.chat.completions.create(
                    model="tiny",
                    messages=msg,
                    max_tokens=64,
                    temperature=0,
                    response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}},
                )
                if out.choices[0].finish_reason == "stop":
                    json.loads(out.choices[0].message.content)
                return kind, 200
            if kind == "malformed":
                return kind, _raw(url + "/v1/chat/completions", b'{"messages": [')
            return kind, _raw(
                url + "/v1/chat/completions",
                json.dumps({"messages": [{"role": "user", "content": "x" * (MAX_BODY * 2)}]}).encode(),
            )

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < stop_at:
                try:
                    kind, status = one(rng)
                except openai.APIStatusError as e:
                    kind, status = "error", e.status_code
                except Exception as e:  # noqa: BLE001 - a connection error is a failure too
                    with lock:
                        errors.append(f"{type(e).__name__}: {e}")
                    continue
                with lock:
                    statuses[f"{kind}:{status}"] += 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(min(30.0, duration / 5))  # warm-up: caches, grammar compilation, allocator pools
        warm = _rss_kib(proc.pid)
        for t in threads:
            t.join(timeout=duration + 300)
        end = _rss_kib(proc.pid)
        latencies.sort()
        p50 = latencies[len(latencies) // 2]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"\nsoak {duration:.0f} s, {CLIENTS} clients: {sum(statuses.values())} requests "
            f"{dict(sorted(statuses.items()))}; plain chat p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; "
            f"RSS {warm / 1024:.0f} -> {end / 1024:.0f} MiB ({(end / warm - 1) * 100:+.1f}%)"
        )
        assert not errors, errors[:5]
        assert not [k for k in statuses if int(k.split(":")[1]) >= 500], statuses
        assert statuses["malformed:400"] and statuses["oversized:413"] and statuses["cancel:200"]
        assert end < warm * 1.10, (warm, end)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=60)
