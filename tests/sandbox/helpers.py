"""What the sandbox tests share: whether bwrap and root are here, and running a program with short limits."""

from __future__ import annotations

import os
import textwrap
from dataclasses import replace

import pytest

from llmops.sandbox import ExecResult, Limits, run_python
from llmops.sandbox.run import bwrap_usable

BWRAP = bwrap_usable()
ROOT = os.geteuid() == 0
FAST = Limits(timeout=2.0)

bwrap_only = pytest.mark.skipif(not BWRAP, reason="bubblewrap is not usable here (install it: make test does)")


def run(code: str, backend: str, limits: Limits = FAST, **changes: object) -> ExecResult:
    return run_python(textwrap.dedent(code), replace(limits, **changes), backend=backend)


def live_pids(needle: bytes) -> list[int]:
    """Processes whose command line or name contains `needle`."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f, open(f"/proc/{name}/comm", "rb") as g:
                    text = f.read() + b" " + g.read()
                with open(f"/proc/{name}/stat", "rb") as f:
                    zombie = f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
            except OSError:
                continue
            if needle in text and not zombie:
                found.append(int(name))
    return found


def assert_still_works(backend: str) -> None:
    result = run("print(6 * 7)", backend)
    assert (result.status, result.stdout) == ("ok", "42\n")
