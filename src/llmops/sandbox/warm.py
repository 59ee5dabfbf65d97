"""Warm bwrap sandboxes: persistent sandboxes with a fork server inside, one run at a time each, reused.

A cold run starts bwrap and a fresh interpreter per program (~20 ms before the program's first line, most of it
interpreter start-up and imports). A warm sandbox is the same bwrap sandbox (namespaces, read-only file system view,
capabilities) started once, running `child._serve` as root-in-the-sandbox with common modules imported. Per
program the server forks a child that takes a new mount and IPC namespace with empty size-limited tmpfs at /tmp and
/sandbox, drops to the sandbox's unprivileged uid, sets the limits and runs the program through the same nonce
protocol; its stdin, stdout, stderr and report pipes come straight from the evaluator (passed over a socket), so
program text and output never pass through the server. At the end of a run (report, exit, timeout, output cap) the
server SIGKILLs every process in the sandbox but itself and pid 1 until none is left, then says "clean". If it does
not within a grace period, or its socket closes, the evaluator kills the whole sandbox (its pid namespace dies with
its pid 1) and the run is not ok. See `llmops.sandbox` for what this shares between runs and why it is safe.
"""

from __future__ import annotations

import atexit
import os
import queue
import secrets
import select
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TypeVar

from llmops.sandbox.bwrap import BwrapProcess, bwrap_base, child_source, python, python_binds
from llmops.sandbox.capture import Capture, exec_result, program_input
from llmops.sandbox.core import (
    BOX,
    FREE_SLOTS,
    SLOTS,
    TMPFS_FILES,
    ExecResult,
    Limits,
    program_env,
    rlimits,
    slot_uid,
)

_GRACE = 5.0  # seconds the server may take to clean up after a run
_MAX_WARM = SLOTS // 2  # warm sandboxes hold their uid slot; leave the rest to cold runs
_T = TypeVar("_T")


class WarmSandbox:
    """One persistent bwrap sandbox with a fork server inside, bound to one unprivileged uid."""

    def __init__(self, uid: int) -> None:
        self.uid, self.alive = uid, True
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        info_r, info_w = os.pipe()
        argv = _command(theirs.fileno(), info_w, uid)
        try:
            proc = _spawn(
                lambda: subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    env=program_env("bwrap", "/", "warm"),
                    start_new_session=True,
                    pass_fds=[theirs.fileno(), info_w],
                )
            )
        except BaseException:
            self.sock.close()
            os.close(info_r)
            raise
        finally:
            theirs.close()
            os.close(info_w)
        self.box = BwrapProcess(proc, info_r)
        said = self.sock.recv(256) if select.select([self.sock], [], [], 30.0)[0] else b"no answer in 30 s"
        if said != b"ready":
            self.destroy()
            raise OSError(f"the warm sandbox did not start: {said.decode(errors='replace') or 'it exited'}")
        self.box.pin()  # its pid 1 (written before the start)

    def run(self, code: str, limits: Limits, as_main: bool = True) -> ExecResult | None:
        """Run one program in a fresh child of the server; afterwards nothing of it is left in the sandbox.

        None when the sandbox was found dead before the program was handed over (it is then destroyed).
        """
        nonce = secrets.token_hex(16).encode()
        (code_r, code_w), (out_r, out_w), (err_r, err_w), (status_r, status_w) = (os.pipe() for _ in range(4))
        tmpfs = TMPFS_FILES * limits.max_file_mb << 20
        header = " ".join(map(str, (int(as_main), *rlimits(limits, limits.max_processes), tmpfs)))
        start = time.monotonic()
        server = _Server(self)
        try:
            socket.send_fds(self.sock, [header.encode()], [code_r, out_w, err_w, status_w])
        except OSError:
            for fd in (code_w, out_r, err_r, status_r):
                os.close(fd)
            self.destroy()
            return None
        finally:
            for fd in (code_r, out_w, err_w, status_w):
                os.close(fd)
        files = (open(out_r, "rb", buffering=0), open(err_r, "rb", buffering=0))  # noqa: SIM115 (capture closes)
        capture = Capture(files, status_r, nonce, limits.max_output_bytes)
        reason = capture.run(server, lambda: _feed(code_w, program_input(nonce, code)), start + limits.timeout)
        result = exec_result(reason, capture, server.returncode, time.monotonic() - start)
        if server.broken and result.ok:  # never happens unless the server failed after the report: still not ok
            result = ExecResult("error", "the sandbox failed", None, result.stdout, result.stderr, result.duration)
        return result

    def healthy(self) -> bool:
        """Whether an idle sandbox is still there (an idle server says nothing; its socket closes when it dies)."""
        if self.alive and select.select([self.sock], [], [], 0)[0]:
            self.destroy()
        return self.alive

    def destroy(self) -> None:
        """Kill the sandbox (its pid 1, so every process in it) and wait until it is gone."""
        if self.alive:
            self.alive = False
            self.sock.close()
            self.box.kill()


class _Server:
    """A warm run as the capture sees it: it ends when the server says the child exited; kill = ask, or destroy."""

    def __init__(self, sandbox: WarmSandbox) -> None:
        self.sandbox, self.returncode, self.broken = sandbox, None, False

    def watch(self, selector: selectors.BaseSelector) -> None:
        """Wake the pump when the server speaks (the child exited) or goes away."""
        selector.register(self.sandbox.sock, selectors.EVENT_READ)

    def on_ready(self, selector: selectors.BaseSelector, fd: int) -> bool:
        """The child exited (b"exited CODE"), or the server is gone (broken)."""
        selector.unregister(fd)
        self._hear(self.sandbox.sock.recv(64))
        return True

    def kill(self) -> None:
        """Have the server kill every process of the run and clean up; failing that, destroy the sandbox."""
        deadline = time.monotonic() + _GRACE
        with suppress(OSError):
            if not self.broken:
                self.sandbox.sock.send(b"kill")
            sock = self.sandbox.sock
            while not self.broken and select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
                if self._hear(sock.recv(64)):
                    return
        self.broken = True
        self.sandbox.destroy()

    def _hear(self, msg: bytes) -> bool:
        """Take in one message of the server; True for "clean"."""
        if msg.startswith(b"exited "):
            self.returncode = int(msg.split()[1])
        elif msg != b"clean":
            self.broken = True  # b"": the server is gone
        return msg == b"clean"


def run_warm(code: str, limits: Limits, as_main: bool) -> ExecResult | None:
    """Run `code` in a warm sandbox of the pool; None when none can be had (not root, failed to start, too many)."""
    for _ in range(2):  # an idle sandbox found dead on hand-over: once more in another (a new one)
        if (sandbox := _POOL.acquire()) is None:
            return None
        try:
            result = sandbox.run(code, limits, as_main)
        finally:
            _POOL.release(sandbox)
        if result is not None:
            return result
    return None


class _Pool:
    """Idle warm sandboxes of this process; one more is started when a run finds none idle."""

    def __init__(self) -> None:
        self.lock, self.idle, self.slots, self.pid = threading.Lock(), [], {}, os.getpid()
        self.failure: str | None = None

    def acquire(self) -> WarmSandbox | None:
        """An idle sandbox, or a new one, or None."""
        with self.lock:
            if os.getpid() != self.pid:  # a forked evaluator: those sandboxes are its parent's
                self.idle, self.slots, self.pid = [], {}, os.getpid()
            while self.idle:
                sandbox = self.idle.pop()
                if sandbox.healthy():
                    return sandbox
                FREE_SLOTS.put(self.slots.pop(sandbox))
            if os.geteuid() != 0 or self.failure or len(self.slots) >= _MAX_WARM:
                return None  # not root: the server and its programs would share a uid
            try:
                index = FREE_SLOTS.get_nowait()
            except queue.Empty:
                return None
        try:
            sandbox = WarmSandbox(slot_uid(index))
        except OSError as exc:
            FREE_SLOTS.put(index)
            self.failure = str(exc)
            return None
        with self.lock:
            self.slots[sandbox] = index
        return sandbox

    def release(self, sandbox: WarmSandbox) -> None:
        """Back to the idle list, or, when it was destroyed, its uid slot back to the free ones."""
        with self.lock:
            if sandbox.alive and sandbox in self.slots:
                self.idle.append(sandbox)
            elif sandbox in self.slots:
                FREE_SLOTS.put(self.slots.pop(sandbox))

    def close(self) -> None:
        """Destroy every idle sandbox (at interpreter exit)."""
        with self.lock:
            idle, self.idle = self.idle, []
        for sandbox in idle:
            sandbox.destroy()
            self.release(sandbox)


_POOL = _Pool()
atexit.register(_POOL.close)


def _command(sock_fd: int, info_w: int, uid: int) -> list[str]:
    """bwrap as for a cold run, plus the server's capabilities, and the server."""
    mounts = [arg for path in ("/tmp", BOX) for arg in ("--perms", "0755", "--size", "65536", "--tmpfs", path)]
    # CAP_SYS_ADMIN: each child's new mount and IPC namespaces; CAP_KILL: the server kills the run's processes.
    # The child loses every capability when it drops to `uid`, before any of the program runs.
    return [
        *bwrap_base(),
        "--cap-add",
        "CAP_SYS_ADMIN",
        "--cap-add",
        "CAP_KILL",
        "--json-status-fd",
        str(info_w),
        *mounts,
        "--chdir",
        "/",
        *python_binds(),
        "--",
        python(),
        "-I",
        "-S",
        "-B",
        "-c",
        child_source() + "\n_serve(*map(int, sys.argv[1:]))",
        str(sock_fd),
        str(uid),
    ]


def _feed(fd: int, data: bytes) -> None:
    """Write nonce and program into the child's stdin pipe and close it."""
    with suppress(OSError):  # the child is gone already: the run ends as "exited"
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    os.close(fd)


_SPAWNS: queue.SimpleQueue[tuple[Callable[[], object], queue.SimpleQueue[tuple[bool, object]]]] = queue.SimpleQueue()
_SPAWNER = threading.Lock()


def _spawn(start: Callable[[], _T]) -> _T:
    """Call `start` in one long-lived thread: bwrap's --die-with-parent fires when the thread that started it ends,
    and the threads of a ThreadPoolExecutor end with their pool, long before a warm sandbox should."""
    if _SPAWNER.acquire(blocking=False):
        threading.Thread(target=_spawner, name="llmops-sandbox-spawner", daemon=True).start()
    done: queue.SimpleQueue[tuple[bool, object]] = queue.SimpleQueue()
    _SPAWNS.put((start, done))
    ok, value = done.get()
    if not ok:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]


def _spawner() -> None:
    while True:
        start, done = _SPAWNS.get()
        try:
            done.put((True, start()))
        except BaseException as exc:  # noqa: BLE001 (raised again in the caller's thread)
            done.put((False, exc))
