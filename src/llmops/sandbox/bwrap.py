"""The bubblewrap side of the sandbox: the interpreter, the code run inside, bwrap's namespaces and mounts, and the
bwrap process whose pid namespace holds a run (or a warm sandbox)."""

from __future__ import annotations

import functools
import os
import select
import selectors
import shutil
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path


def child_source() -> str:
    """The code that runs inside the sandbox (child.py), given to the interpreter with -c."""
    return (Path(__file__).parent / "child.py").read_text(encoding="utf-8")


@functools.cache
def python() -> str:
    """The evaluator's interpreter, symlinks resolved (for a venv: its base interpreter)."""
    return os.path.realpath(sys.executable)


@functools.cache
def bwrap_base() -> tuple[str, ...]:
    """bwrap with its namespaces, session and read-only system mounts (the same for every run)."""
    if os.geteuid() == 0:  # no user namespace: the wrapper drops to the run's uid, so RLIMIT_NPROC holds
        ns = [
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CAP_SETUID",
            "--cap-add",
            "CAP_SETGID",
        ]
    else:
        ns = ["--unshare-all"]
    mounts = ["--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev"]
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(name):
            mounts += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            mounts += ["--ro-bind", name, name]
    return (shutil.which("bwrap") or "bwrap", *ns, "--die-with-parent", "--new-session", *mounts)


@functools.cache
def python_binds() -> tuple[str, ...]:
    """Read-only binds of the Python installation, below world-traversable parents (e.g. under /root)."""
    roots = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix, os.path.dirname(python()))}
    args: list[str] = []
    made: set[str] = set()
    for root in sorted(roots):
        if any(root.startswith(other.rstrip("/") + "/") for other in roots | {"/usr"}):
            continue  # inside another bound directory
        parts = root.strip("/").split("/")
        for i in range(1, len(parts)):
            parent = "/" + "/".join(parts[:i])
            if parent not in made:
                made.add(parent)
                args += ["--perms", "0755", "--dir", parent]
        args += ["--ro-bind", root, root]
    return tuple(args)


class BwrapProcess:
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

    def pin(self) -> None:
        """Read bwrap's status until the sandbox's pid 1 is pinned (or bwrap said all it will)."""
        while self.init_fd is None and self._read_info():
            pass

    def kill(self) -> None:
        """SIGKILL the sandbox's pid 1 and wait for its death, after which no process of the run is left."""
        self.pin()
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
