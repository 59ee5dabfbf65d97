"""SIGTERM to a real `llmops serve` process under load (Kubernetes' rolling update): requests in flight and open
streams finish, new requests get 503 + Retry-After, /health says not ready, and the process exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

openai = pytest.importorskip("openai")

from tests.conftest import free_port  # noqa: E402

PROMPT = [{"role": "user", "content": "Write the numbers from 1 to 300, separated by commas."}]


def _wait_healthy(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("server not healthy")


def _status(url: str) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


@pytest.mark.integration
def test_sigterm_drains_in_flight_requests_and_streams_then_exits_0(smollm2_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops.cli", "serve", str(smollm2_dir), "--port", str(port), "--drain-timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        _wait_healthy(url, proc)
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=120)
        results: dict[str, object] = {}
        started = threading.Event()

        def stream() -> None:
            chunks = client.chat.completions.create(
                model=str(smollm2_dir), messages=PROMPT, max_tokens=96, temperature=0, stream=True
            )
            text, finish = [], None
            for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    text.append(chunk.choices[0].delta.content)
                    started.set()
                if chunk.choices and chunk.choices[0].finish_reason:
                    finish = chunk.choices[0].finish_reason
            results["stream"] = ("".join(text), finish)

        def plain() -> None:
            out = client.chat.completions.create(model=str(smollm2_dir), messages=PROMPT, max_tokens=96, temperature=0)
            results["plain"] = (out.choices[0].message.content, out.choices[0].finish_reason)

        threads = [threading.Thread(target=stream), threading.Thread(target=plain)]
        for t in threads:
            t.start()
        assert started.wait(120), "the stream never started"
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)

        # Draining: not ready, and a new request is turned away with a hint to retry elsewhere.
        status, headers = _status(url + "/health")
        assert status == 503 and headers.get("retry-after", headers.get("Retry-After"))
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model=str(smollm2_dir), messages=PROMPT, max_tokens=4)
        assert refused.value.status_code == 503 and refused.value.response.headers.get("retry-after")

        for t in threads:
            t.join(timeout=120)
        for kind in ("stream", "plain"):  # both answered in full
            text, finish = results[kind]  # type: ignore[misc]
            assert finish == "length" and len(text) > 50, (kind, results[kind])
        assert proc.wait(timeout=60) == 0
        assert "draining" in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
