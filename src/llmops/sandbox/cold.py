"""A cold run: one fresh wrapper process per program, inside a fresh bwrap sandbox or under the rlimits fallback.

See `llmops.sandbox` for what each backend protects against and what it does not.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from contextlib import nullcontext, suppress

from llmops.sandbox.bwrap import BwrapProcess, bwrap_base, child_source, python, python_binds
from llmops.sandbox.capture import Capture, exec_result, program_input
from llmops.sandbox.core import BOX, TMPFS_FILES, ExecResult, Limits, program_env, rlimits
from llmops.sandbox.fallback import ProcessTree, processes, workdir, world_readable


def run_cold(code: str, limits: Limits, backend: str, uid: int | None, as_main: bool = True) -> ExecResult:
    """Start the wrapper ("bwrap" or "rlimits" backend), feed it the program, collect until the end, kill every
    process of the run, report."""
    nonce, marker = secrets.token_hex(16).encode(), secrets.token_hex(8)
    with workdir(uid) if backend == "rlimits" else nullcontext("/") as cwd:  # bwrap: a tmpfs inside
        status_r, status_w = os.pipe()
        info_r, info_w = os.pipe() if backend == "bwrap" else (-1, -1)
        argv = _command(backend, info_w, limits) + _wrapper_args(backend, status_w, uid, limits, as_main)
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=program_env(backend, cwd, marker),
                start_new_session=True,
                pass_fds=[fd for fd in (status_w, info_w) if fd >= 0],
            )
        except BaseException:
            for fd in (status_r, info_r):
                if fd >= 0:
                    os.close(fd)
            raise
        finally:
            for fd in (status_w, info_w):
                if fd >= 0:
                    os.close(fd)
        tree = BwrapProcess(proc, info_r) if backend == "bwrap" else ProcessTree(proc, uid, marker)
        capture = Capture((proc.stdout, proc.stderr), status_r, nonce, limits.max_output_bytes)
        reason = capture.run(tree, lambda: _feed(proc, program_input(nonce, code)), start + limits.timeout)
        return exec_result(reason, capture, proc.returncode, time.monotonic() - start)


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    """Write nonce and program to the wrapper's stdin, which it reads to the end before anything else."""
    with suppress(OSError):  # it died first (bwrap could not start): the pump sees it exit
        proc.stdin.write(data)
        proc.stdin.close()


def _command(backend: str, info_w: int, limits: Limits) -> list[str]:
    """The argv that starts the wrapper: the interpreter, inside bwrap for that backend."""
    interpreter = [python(), "-I", "-S", "-B", "-c", child_source() + "\n_main(*map(int, sys.argv[1:]))"]
    if backend == "rlimits":
        return interpreter
    size = str(TMPFS_FILES * limits.max_file_mb << 20)
    tmpfs = [
        "--perms",
        "1777",
        "--size",
        size,
        "--tmpfs",
        "/tmp",
        "--perms",
        "1777",
        "--size",
        size,
        "--tmpfs",
        BOX,
        "--chdir",
        BOX,
    ]
    return [*bwrap_base(), "--json-status-fd", str(info_w), *tmpfs, *python_binds(), "--", *interpreter]


def _wrapper_args(backend: str, status_w: int, uid: int | None, limits: Limits, as_main: bool) -> list[str]:
    """The wrapper's arguments: report fd, uid, mode, as_main, RLIMIT_AS, RLIMIT_CPU, RLIMIT_NPROC, RLIMIT_FSIZE."""
    mode = -1 if backend == "bwrap" else int(uid is not None and not world_readable(python()))
    nproc = limits.max_processes
    if uid is None and backend == "rlimits":  # there RLIMIT_NPROC counts all of the user's processes
        nproc += sum(int(f["Uid"].split()[0]) == os.getuid() for _, f in processes())
    values = (status_w, -1 if uid is None else uid, mode, int(as_main), *rlimits(limits, nproc))
    return [str(v) for v in values]
