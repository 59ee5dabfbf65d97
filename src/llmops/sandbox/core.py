"""What every way of running a program shares: its limits, its result, its environment and its uid.

See `llmops.sandbox` for what the sandbox protects against and what it does not.
"""

from __future__ import annotations

import math
import os
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

BACKENDS = ("bwrap", "bwrap-cold", "rlimits")
BOX = "/sandbox"  # the working directory inside bwrap
TMPFS_FILES = 4  # each bwrap tmpfs holds this many files of the maximum size
MARKER = "LLMOPS_SANDBOX_RUN"  # in a fallback run's environment, when it shares the evaluator's uid
SLOTS = 128  # distinct uids per evaluator process


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run."""

    timeout: float = 3.0  # wall-clock seconds for the whole program (all its processes)
    memory_mb: int = 1024  # RLIMIT_AS per process
    max_processes: int = 32  # processes/threads the program may have at once
    max_output_bytes: int = 1 << 20  # stdout+stderr captured; beyond this the program is killed
    max_file_mb: int = 16  # RLIMIT_FSIZE


@dataclass(frozen=True)
class ExecResult:
    """How one run ended (status ok/error/timeout/exited/output_limit/memory) and what it printed."""

    status: str
    message: str
    returncode: int | None
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        """True only when the program ran to its last statement and returned normally."""
        return self.status == "ok"


def rlimits(limits: Limits, nproc: int) -> tuple[int, int, int, int]:
    """RLIMIT_AS, RLIMIT_CPU, RLIMIT_NPROC and RLIMIT_FSIZE of a run."""
    return limits.memory_mb << 20, math.ceil(limits.timeout) + 1, nproc, limits.max_file_mb << 20


def program_env(backend: str, workdir: str, marker: str) -> dict[str, str]:
    """The program's whole environment: nothing of the evaluator's."""
    home, tmp = (BOX, "/tmp") if backend == "bwrap" else (workdir, workdir)
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        MARKER: marker,
    }


@contextmanager
def run_uid() -> Iterator[int | None]:
    """A uid of the run's own when the evaluator is root (so RLIMIT_NPROC is enforced), else None."""
    if os.geteuid() != 0:
        yield None
        return
    index = FREE_SLOTS.get()  # waits while SLOTS runs (or warm sandboxes) are under way
    try:
        yield slot_uid(index)
    finally:
        FREE_SLOTS.put(index)


def slot_uid(index: int) -> int:
    """The uid of a slot, offset by the evaluator's pid so that concurrent evaluators use different uids."""
    return 1_000_000 + (os.getpid() % 30_000) * SLOTS + index


FREE_SLOTS: queue.SimpleQueue[int] = queue.SimpleQueue()  # uid slots not held by a run or a warm sandbox
for _index in range(SLOTS):
    FREE_SLOTS.put(_index)
