"""Preemption: SIGTERM (Kubernetes evicting a pod, a spot node going, a drain) or SIGINT during training.

The Kubernetes contract is SIGTERM, then SIGKILL after the grace period (30 s by default). On the first signal the
training loop finishes the step it is in, writes a checkpoint, and stops; `fit` then raises `Interrupted` (exit
143), which the pipeline records (state.json `interrupted`, MLflow run KILLED with an `llmops.interrupted` tag) so
`llmops run --resume RUN_DIR` or the Kubeflow step's retry goes on from that checkpoint. When the step and the save
do not end within `training.preempt_grace_s`, the process exits 143 at once: the previous checkpoint is intact
(a checkpoint folder is complete only once its trainer_state.json is written, and the older one is removed only
after that), and the half-written one is skipped on resume (`llmops.methods.checkpoints`). A second signal exits
at once. Under several processes (torchrun, a TrainJob) they agree each step on whether any was signalled, so all
stop and save at the same step.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from llmops.errors import Interrupted
from llmops.methods.checkpoints import is_complete

EXIT_CODE = Interrupted.exit_code


class Preemption(TrainerCallback):
    """Turns the first SIGTERM/SIGINT into "save at the end of this step and stop", with a hard deadline."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.signum: int | None = None
        self.received_at = 0.0
        self._deadline: threading.Timer | None = None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def handle(self, signum: int, frame: Any = None) -> None:
        if self.signum is not None:  # a second signal: the user (or the kubelet) does not want to wait
            os._exit(EXIT_CODE)
        self.signum = signum
        self.received_at = time.monotonic()
        sys.stderr.write(
            f"llmops: {signal.Signals(signum).name}: finishing this step and writing a checkpoint "
            f"(at most {self.grace_s:g} s; send it again to stop now)\n"
        )
        self._deadline = threading.Timer(self.grace_s, self._out_of_time)
        self._deadline.daemon = True
        self._deadline.start()

    def _out_of_time(self) -> None:
        sys.stderr.write(
            f"llmops: {self.signal_name}: the step and its checkpoint did not end within "
            f"training.preempt_grace_s={self.grace_s:g}; exiting now (resume uses the last complete "
            "checkpoint)\n"
        )
        sys.stderr.flush()
        os._exit(EXIT_CODE)

    def cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._peer_signalled(args) and self.signum is None:
            self.signum = signal.SIGTERM  # another process of this job got it: all stop at the same step
            self.received_at = time.monotonic()
        if self.signum is not None:
            control.should_save = True
            control.should_training_stop = True
            control.should_log = True

    def _peer_signalled(self, args: Any) -> bool:
        """Under several processes, whether any of them was signalled (one all-reduce per step: they must stop
        and save together, or the collective save would hang)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return False
        import torch

        flag = torch.tensor([0 if self.signum is None else 1], device=args.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


@contextlib.contextmanager
def signals_to(preemption: Preemption) -> Iterator[None]:
    """SIGTERM and SIGINT go to `preemption` while the block runs (main thread only: elsewhere Python cannot set
    handlers, and the process's main thread keeps its own)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in previous:
        signal.signal(s, preemption.handle)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def interrupted(preemption: Preemption, trainer: Any, output_dir: Path) -> Interrupted:
    """The error `fit` raises once training stopped on a signal."""
    preemption.cancel_deadline()
    step = int(trainer.state.global_step)
    checkpoint = output_dir / f"checkpoint-{step}"
    where = str(checkpoint) if is_complete(checkpoint) else None
    took = time.monotonic() - preemption.received_at
    message = (
        f"training interrupted by {preemption.signal_name} at step {step}"
        + (f"; checkpoint written to {where} in {took:.1f} s" if where else "; no checkpoint written")
        + "; continue with `llmops run --resume RUN_DIR`"
    )
    return Interrupted(message, preemption.signal_name, step, where)
