"""Warm sandboxes: one sandbox, many programs, nothing of one visible to the next."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from tests.sandbox.helpers import BWRAP, FAST, ROOT, assert_still_works, live_pids, run

from llmops.sandbox import ExecResult
from llmops.sandbox import warm as warm_pool
from llmops.sandbox.core import run_uid
from llmops.sandbox.warm import WarmSandbox

warm_only = pytest.mark.skipif(not (BWRAP and ROOT), reason="warm sandboxes need bubblewrap and a root evaluator")


@pytest.fixture
def warm() -> Iterator[WarmSandbox]:
    """One warm sandbox, so that consecutive runs certainly share it."""
    with run_uid() as uid:
        box = WarmSandbox(uid)
        yield box
        box.destroy()


def warm_run(box: WarmSandbox, code: str, **changes: object) -> ExecResult:
    result = box.run(textwrap.dedent(code), replace(FAST, **changes))
    assert result is not None and box.alive
    return result


@warm_only
def test_warm_files_left_behind_are_gone(warm: WarmSandbox) -> None:
    left = warm_run(
        warm,
        """
        import os, tempfile
        open("left.txt", "w").write("x")
        open("/tmp/left.txt", "w").write("x")
        os.mkdir("/tmp/locked")
        os.chmod("/tmp/locked", 0)
        print(tempfile.mkdtemp())
    """,
    )
    assert left.ok
    after = warm_run(
        warm,
        f"""
        import os
        print(os.getcwd(), os.listdir("."), os.listdir("/tmp"), os.path.exists({left.stdout.strip()!r}))
    """,
    )
    assert after.stdout == "/sandbox [] [] False\n"


@warm_only
def test_warm_globals_modules_and_environment_do_not_carry_over(warm: WarmSandbox) -> None:
    changed = warm_run(
        warm,
        """
        import builtins, collections, math, os, sys, typing
        LEFT = 1
        builtins.LEFT_BUILTIN = 2
        builtins.len = lambda x: -1
        math.pi = 3
        typing.List = None
        collections.Counter = None
        os.environ["LEFT_ENV"] = "3"
        sys.modules["json"] = None
        sys.path.insert(0, "/tmp")
        sys.setrecursionlimit(60)
    """,
    )
    assert changed.ok
    seen = warm_run(
        warm,
        """
        import builtins, collections, json, math, os, sys, typing
        print("LEFT" in globals(), hasattr(builtins, "LEFT_BUILTIN"), len([1, 2]), math.pi, typing.List,
              collections.Counter("aa")["a"], "LEFT_ENV" in os.environ, json.dumps(1), "/tmp" in sys.path,
              sys.getrecursionlimit())
    """,
    )
    assert seen.stdout == "False False 2 3.141592653589793 typing.List 2 False 1 False 1000\n"


@warm_only
def test_warm_daemons_are_dead_before_the_next_program(warm: WarmSandbox) -> None:
    nap = f"31.{secrets.randbelow(10**6):06d}"
    left = warm_run(
        warm,
        f"""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv("/bin/sleep", ["sleep", "{nap}"])
            if os.fork() == 0:
                time.sleep(0.3)
                open("/tmp/acted", "w").write("acted after the run")
            os._exit(0)
        time.sleep(0.1)
    """,
    )
    assert left.ok and live_pids(nap.encode()) == []
    seen = warm_run(
        warm,
        """
        import os, time
        time.sleep(0.5)
        mine = [p for p in os.listdir("/proc") if p.isdigit() and os.stat(f"/proc/{p}").st_uid == os.getuid()]
        print(mine == [str(os.getpid())], os.path.exists("/tmp/acted"))
    """,
    )
    assert seen.stdout == "True False\n"


@warm_only
def test_warm_a_program_that_attacks_its_server_does_not_break_the_next(warm: WarmSandbox) -> None:
    attack = warm_run(
        warm,
        """
        import os, signal
        for pid in (os.getppid(), 1):
            for sig in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    os.kill(pid, sig)
                    print("signalled", pid)
                except OSError as exc:
                    print(type(exc).__name__)
        os.kill(-1, signal.SIGKILL)  # every process it may signal but itself: none
    """,
    )
    assert (attack.status, attack.stdout) == ("ok", "PermissionError\n" * 4)
    assert_still_works_in(warm)


@warm_only
def test_warm_a_timeout_does_not_delay_the_next_program(warm: WarmSandbox) -> None:
    start = time.monotonic()
    stuck = warm_run(
        warm,
        """
        import os, signal
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        os.fork()
        while True:
            pass
    """,
        timeout=1.0,
    )
    assert stuck.status == "timeout" and time.monotonic() - start < 1.5
    start = time.monotonic()
    assert_still_works_in(warm)
    assert time.monotonic() - start < 0.5


@warm_only
def test_warm_sandbox_that_dies_mid_run_fails_that_run_only(warm: WarmSandbox) -> None:
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(warm_run_raw, warm, "import time\ntime.sleep(1)\nprint('done')")
        time.sleep(0.3)
        signal.pidfd_send_signal(warm.box.init_fd, signal.SIGKILL)  # its pid 1: all of it
        result = running.result()
    assert not result.ok and "done" not in result.stdout and not warm.alive
    assert_still_works("bwrap")  # the pool starts another


@warm_only
def test_warm_sandboxes_are_reused_across_thread_pools_and_closed_at_exit() -> None:
    with ThreadPoolExecutor(1) as pool:  # --die-with-parent must not fire when this pool's thread ends
        assert pool.submit(run, "pass", "bwrap").result().ok
    box = warm_pool._POOL.idle[-1]
    time.sleep(0.2)
    assert_still_works("bwrap")
    assert warm_pool._POOL.idle[-1] is box and box.alive
    before = set(live_pids(b"_serve("))
    code = "from llmops.sandbox import run_python; print(run_python('print(1)').stdout)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "1\n\n"
    assert set(live_pids(b"_serve(")) <= before


def warm_run_raw(box: WarmSandbox, code: str) -> ExecResult:
    result = box.run(code, FAST)
    assert result is not None
    return result


def assert_still_works_in(box: WarmSandbox) -> None:
    result = warm_run(box, "print(6 * 7)")
    assert (result.status, result.stdout) == ("ok", "42\n")
