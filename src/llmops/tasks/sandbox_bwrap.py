"""The bubblewrap side of the sandbox: the interpreter, the code run inside, and bwrap's namespaces and mounts."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path

BOX = "/sandbox"  # the working directory inside bwrap
TMPFS_FILES = 4  # each bwrap tmpfs holds this many files of the maximum size


def child_source() -> str:
    """The code that runs inside the sandbox (sandbox_child.py), given to the interpreter with -c."""
    return (Path(__file__).parent / "sandbox_child.py").read_text(encoding="utf-8")


@functools.cache
def python() -> str:
    """The evaluator's interpreter, symlinks resolved (for a venv: its base interpreter)."""
    return os.path.realpath(sys.executable)


@functools.cache
def bwrap_base() -> tuple[str, ...]:
    """bwrap with its namespaces, session and read-only system mounts (the same for every run)."""
    if os.geteuid() == 0:  # no user namespace: the wrapper drops to the run's uid, so RLIMIT_NPROC holds
        ns = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
              "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
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
