"""The rlimits fallback's process bookkeeping: find and kill every process of a run without namespaces.

See `llmops.sandbox` for what this backend protects against and what it does not.
"""

from __future__ import annotations

import ctypes
import functools
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from llmops.sandbox.core import MARKER


class ProcessTree:
    """The fallback's run: the wrapper, its process group, and every other process of the run's uid or marker."""

    def __init__(self, proc: subprocess.Popen, uid: int | None, marker: str) -> None:
        self.proc, self.uid, self.marker = proc, uid, f"{MARKER}={marker}".encode()
        self.pidfd = os.pidfd_open(proc.pid)

    def watch(self, selector: selectors.BaseSelector) -> None:
        """Wake the pump when the wrapper exits."""
        selector.register(self.pidfd, selectors.EVENT_READ)

    def on_ready(self, selector: selectors.BaseSelector, fd: int) -> bool:
        """The wrapper has exited."""
        return True

    def kill(self) -> None:
        """Kill the process group, then every other process of the run until none is left; reap our orphans."""
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while self._kill_round() and time.monotonic() < deadline:
            time.sleep(0.001)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.pidfd)

    def _kill_round(self) -> bool:
        """SIGKILL the run's live processes, reap its zombies that are our children. True while any remain."""
        me, pending = os.getpid(), False
        for pid, ppid, state in self._members():
            if state != "Z":
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                pending = True
            elif ppid == me:
                pending = True
                with suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
        return pending

    def _members(self) -> Iterator[tuple[int, int, str]]:
        """(pid, ppid, state) of the run's processes other than the wrapper (the Popen object reaps that one)."""
        for pid, fields in processes():
            if pid not in (self.proc.pid, os.getpid()) and self._belongs(pid, fields):
                yield pid, int(fields["PPid"]), fields["State"][:1]

    def _belongs(self, pid: int, fields: dict[str, str]) -> bool:
        uid = int(fields["Uid"].split()[0])
        if self.uid is not None or uid != os.getuid():
            return uid == self.uid
        if str(self.proc.pid) in (fields["NSsid"].split()[0], fields["NSpgid"].split()[0]):
            return True
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                return self.marker + b"\0" in f.read()
        except OSError:
            return False


def processes() -> Iterator[tuple[int, dict[str, str]]]:
    """Every process and the fields of its /proc/PID/status."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status", encoding="utf-8", errors="replace") as f:
                    text = f.read()
            except OSError:  # gone meanwhile
                continue
            yield int(name), dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


@contextmanager
def workdir(uid: int | None) -> Iterator[str]:
    """A fresh directory for the run, owned by its uid and removed afterwards."""
    path = tempfile.mkdtemp(prefix="llmops-sandbox-")
    try:
        if uid is not None:
            os.chown(path, uid, uid)
        yield path
    finally:
        for root, dirs, _ in os.walk(path):  # the program may have made directories unreadable
            for name in dirs:
                with suppress(OSError):
                    os.chmod(os.path.join(root, name), 0o700)
        shutil.rmtree(path, ignore_errors=True)


@functools.cache
def become_subreaper() -> None:
    """Make this process the child subreaper: a run's orphaned daemons are reparented here, found and reaped."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


@functools.cache
def world_readable(path: str) -> bool:
    """Whether others may traverse every directory above `path` (so an unprivileged uid can run it)."""
    parts = path.strip("/").split("/")
    try:
        return all(os.stat("/" + "/".join(parts[:i])).st_mode & 0o001 for i in range(len(parts)))
    except OSError:
        return False
