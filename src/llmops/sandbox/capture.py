"""A run's output as the evaluator collects it: stdout, stderr and the wrapper's report, capped, into an ExecResult.

The wrapper (`llmops.sandbox.child`) reports `NONCE STATUS LENGTH\\nMESSAGE` on its own pipe once the program ran to
its end; without that report, with the random nonce of the run, a run is never "ok".
"""

from __future__ import annotations

import os
import selectors
import signal
import time
from collections.abc import Callable
from contextlib import suppress
from typing import IO, Protocol

from llmops.sandbox.core import ExecResult


class Watched(Protocol):
    """What a run's output is pumped against: its processes (cold bwrap, fallback) or its warm sandbox's server."""

    def watch(self, selector: selectors.BaseSelector) -> None: ...
    def on_ready(self, selector: selectors.BaseSelector, fd: int) -> bool: ...
    def kill(self) -> None: ...


class Capture:
    """Reads stdout, stderr and the report pipe; enforces the output cap; finds the wrapper's report."""

    def __init__(self, files: tuple[IO[bytes], IO[bytes]], status_r: int, nonce: bytes, cap: int) -> None:
        self.nonce, self.cap, self.total, self.status_r = nonce, cap, 0, status_r
        self.out = {1: bytearray(), 2: bytearray(), 3: bytearray()}
        self.report: tuple[str, str] | None = None
        self.files = files
        self.streams = {files[0].fileno(): 1, files[1].fileno(): 2, status_r: 3}
        self.selector = selectors.DefaultSelector()
        for fd in self.streams:
            self.selector.register(fd, selectors.EVENT_READ)

    def run(self, tree: Watched, feed: Callable[[], None], deadline: float) -> str:
        """Feed the program, pump until the run ends, kill every process of it, drain the pipes; why it ended."""
        try:
            feed()
            return self.pump(tree, deadline)
        finally:
            tree.kill()
            self.close()

    def pump(self, tree: Watched, deadline: float) -> str:
        """Read until a report or the program's exit ("exited"), the deadline ("timeout") or the cap."""
        tree.watch(self.selector)
        while (remaining := deadline - time.monotonic()) > 0:
            for key, _ in self.selector.select(remaining):
                if key.fd not in self.streams:
                    if tree.on_ready(self.selector, key.fd):
                        self._read_available(self.status_r)  # a report written before the exit is in the pipe
                        return "exited"
                elif self._read(key.fd) and self.total > self.cap:
                    return "output_limit"
                elif self.report:
                    return "exited"
        return "timeout"

    def close(self) -> None:
        """After the kill: read what is left in the pipes (bounded in time) and close them."""
        deadline = time.monotonic() + 2.0
        while self.streams and time.monotonic() < deadline:
            for key, _ in self.selector.select(0.1):
                if key.fd in self.streams:
                    self._read(key.fd)
        self.selector.close()
        os.close(self.status_r)
        for f in self.files:
            f.close()

    def text(self, stream: int) -> str:
        """Captured stdout (1) or stderr (2), decoded."""
        return self.out[stream].decode("utf-8", "replace")

    def _read_available(self, fd: int) -> None:
        os.set_blocking(fd, False)
        with suppress(BlockingIOError):
            while fd in self.streams and self._read(fd):
                pass

    def _read(self, fd: int) -> bool:
        """Read one chunk into its buffer; False (and stop watching the fd) at end of file."""
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            self.selector.unregister(fd)
            del self.streams[fd]
            return False
        if self.streams[fd] == 3:  # the report channel: keep a bounded tail, look for the nonce
            self.out[3] = (self.out[3] + chunk)[-(1 << 16) :]
            self.report = self.report or _parse_report(bytes(self.out[3]), self.nonce)
            return True
        self.out[self.streams[fd]] += chunk[: max(0, self.cap - self.total)]
        self.total += len(chunk)
        return True


def program_input(nonce: bytes, code: str) -> bytes:
    """What the wrapper reads on its stdin before anything else: the run's nonce, a newline, the program."""
    return nonce + b"\n" + code.encode("utf-8", "surrogateescape")


def _parse_report(data: bytes, nonce: bytes) -> tuple[str, str] | None:
    """(status, message) from a complete `NONCE STATUS LENGTH\\nMESSAGE`, else None."""
    at = data.find(nonce + b" ")
    if at < 0:
        return None
    header, newline, rest = data[at + len(nonce) + 1 :].partition(b"\n")
    status, _, length = header.partition(b" ")
    if not newline or status not in (b"ok", b"error", b"memory") or not length.isdigit() or len(rest) < int(length):
        return None
    return status.decode(), rest[: int(length)].decode("utf-8", "replace")


def exec_result(reason: str, capture: Capture, returncode: int | None, duration: float) -> ExecResult:
    """The ExecResult from why the run ended, the wrapper's report and the output."""
    status, message = reason, ""
    if reason == "exited" and capture.report:
        status, message = capture.report
    elif reason == "exited" and returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        status = "timeout"  # RLIMIT_CPU
    if status in ("timeout", "output_limit"):
        returncode = None
    elif capture.report:
        returncode = 0  # the wrapper reported and waited to be killed
    return ExecResult(status, message, returncode, capture.text(1), capture.text(2), duration)
