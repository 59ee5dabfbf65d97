"""Riding out a tracking outage (the MLflow server restarting, a network blip) without ending the run.

- Metrics never wait on the server: each batch is sent once, quickly (no MLflow-internal retries, a short
  timeout); when that fails it is appended to the run folder's spool (`tracking-spool.jsonl`, one batch per line,
  each metric with its own timestamp) and training goes on. Later batches queue behind it (order is kept), and the
  spool is sent again at most every few seconds, when the run ends its training, and by `--resume`.
- Sending twice never duplicates: every metric keeps the timestamp it was logged with, and MLflow's store ignores a
  metric row it already has (same key, step, timestamp and value).
- Every other call (params, tags, artifacts, the registry) is retried with backoff for `tracking.retry_s`; after
  that the run ends with one TrackingError, the trained model stays on disk and nothing is registered half-way
  (registration comes after the spool is sent).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from llmops.errors import TrackingError
from llmops.tracking.uri import display_uri, error_summary, fast_requests

log = logging.getLogger(__name__)

T = TypeVar("T")
SPOOL_FILE = "tracking-spool.jsonl"
RESEND_EVERY_S = 5.0


def unreachable(error: BaseException) -> bool:
    """An error that says the server did not answer (or answered 5xx / 429), not that the request was wrong."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(error, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
        return True
    if isinstance(error, MlflowException):
        code = getattr(error, "error_code", "")
        text = str(error)
        return code in ("TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR", "REQUEST_LIMIT_EXCEEDED") or any(
            k in text
            for k in (
                "Max retries exceeded",
                "Connection refused",
                "Read timed out",
                "503",
                "502",
                "504",
                "ConnectionError",
                "NewConnectionError",
                "RemoteDisconnected",
            )
        )
    return False


def call_fast(fn: Callable[[], T]) -> T:
    """One attempt, no MLflow-internal retries, a short timeout."""
    with fast_requests():
        return fn()


def retrying(fn: Callable[[], T], what: str, uri: str, budget_s: float, hint: str = "") -> T:
    """`fn()` retried with exponential backoff (0.5 s doubling to 8 s, jittered) while the server is unreachable,
    for at most `budget_s`; then TrackingError naming the server and `what`."""
    deadline = time.monotonic() + budget_s
    delay = 0.5
    warned = False
    while True:
        try:
            return call_fast(fn)
        except Exception as e:
            if not unreachable(e):
                raise
            if time.monotonic() + delay > deadline:
                raise TrackingError(
                    f"MLflow at {display_uri(uri)} did not answer for {budget_s:.0f} s "
                    f"(tracking.retry_s) while {what}: {error_summary(e)}{hint}"
                ) from None
            if not warned:
                log.warning(
                    "MLflow at %s does not answer (%s); retrying for up to %.0f s",
                    display_uri(uri),
                    error_summary(e),
                    budget_s,
                )
                warned = True
            time.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 8.0)


class Spool:
    """Metric batches MLflow has not taken yet, on disk, in the order they were logged."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.memory: list[dict[str, Any]] = []  # before the run folder is known
        self.last_try = 0.0

    def attach(self, path: Path) -> None:
        """Keep batches in `path` from now on (with any already kept in memory)."""
        self.path = Path(path)
        for batch in self.memory:
            self._append(batch)
        self.memory = []

    def _append(self, batch: dict[str, Any]) -> None:
        assert self.path is not None
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(batch) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def add(self, run_id: str, metrics: list[tuple[str, float, int, int]]) -> None:
        """Keep one batch: (key, value, timestamp ms, step) each."""
        batch = {"run_id": run_id, "metrics": metrics}
        if self.path is None:
            self.memory.append(batch)
        else:
            self._append(batch)

    def batches(self) -> list[dict[str, Any]]:
        if self.path is None:
            return list(self.memory)
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut short by a kill: its metrics were never acknowledged either
                log.warning("%s: skipping a half-written line", self.path)
        return out

    def __bool__(self) -> bool:
        return bool(self.memory) or (self.path is not None and self.path.is_file() and self.path.stat().st_size > 0)

    def keep_only(self, batches: list[dict[str, Any]]) -> None:
        """Rewrite the spool with the batches not sent yet (atomically)."""
        if self.path is None:
            self.memory = batches
            return
        if not batches:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(b) + "\n" for b in batches), encoding="utf-8")
        os.replace(tmp, self.path)

    def send(self, send_batch: Callable[[dict[str, Any]], None]) -> int:
        """Send kept batches in order until one fails (it and later ones stay); the number sent."""
        self.last_try = time.monotonic()
        batches = self.batches()
        sent = 0
        try:
            for batch in batches:
                call_fast(lambda b=batch: send_batch(b))
                sent += 1
        finally:
            if sent:
                self.keep_only(batches[sent:])
        return sent

    def due(self) -> bool:
        return time.monotonic() - self.last_try >= RESEND_EVERY_S
