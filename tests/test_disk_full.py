"""A full disk during a checkpoint save: a real `llmops run` writing to a small tmpfs (real ENOSPC).

One clear error naming the folder and the space it needs, no half-written checkpoint left, the previous one intact;
once there is space again, `--resume` goes on from it. Needs root to mount the tmpfs (skipped otherwise).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import llmops_cli


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root (CAP_SYS_ADMIN): {proc.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _resize(mount: Path, size_bytes: int) -> None:
    kib = max(1, size_bytes // 1024)
    subprocess.run(["mount", "-o", f"remount,size={kib}k", str(mount)], check=True, capture_output=True)


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


@pytest.mark.integration
def test_enospc_during_a_checkpoint_save_is_one_clear_error_and_resume_works(
    small_disk: Path, tmp_path: Path, tiny_run_args: Callable[..., list[str]]
) -> None:
    common = (
        "--set",
        "training.save_steps=5",
        "--set",
        "training.save_total_limit=1",
        "--set",
        "training.logging_steps=1",
        "--set",
        "eval.baseline=false",
        "--set",
        "eval.max_new_tokens=8",
        "--set",
        "tracking.register_model=false",
    )
    # How big one checkpoint of this run is (on the ordinary disk).
    probe = llmops_cli(tiny_run_args(tmp_path / "probe", "--max_steps", "5", *common), tmp_path)
    assert probe.returncode == 0, probe.stderr[-3000:]
    (probe_ckpt,) = (tmp_path / "probe").glob("*/checkpoints/checkpoint-5")
    one = _folder_bytes(probe_ckpt)

    # Room for the first checkpoint, not for the second beside it (the first goes only once the second is whole).
    _resize(small_disk, int(one * 1.6) + 64 * 1024)
    args = tiny_run_args(small_disk / "runs", "--max_steps", "20", *common)
    full = llmops_cli(args, tmp_path)
    assert full.returncode == 1, full.stderr[-3000:]
    assert "Traceback" not in full.stderr
    (run_dir,) = list((small_disk / "runs").iterdir())
    ckpts = run_dir / "checkpoints"
    message = full.stderr.strip().splitlines()[-1]
    assert "no space left on the device while saving" in message and str(ckpts / "checkpoint-10") in message
    assert "needs about" in message and "MB free" in message and "--resume" in message
    assert sorted(p.name for p in ckpts.glob("*checkpoint-*")) == ["checkpoint-5"]  # torn one removed, last whole
    assert (ckpts / "checkpoint-5" / "trainer_state.json").is_file()
    state = json.loads((run_dir / "state.json").read_text())
    assert "model_dir" not in state

    _resize(small_disk, 64 * 2**20)  # space again
    resumed = llmops_cli(["run", "--resume", str(run_dir)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = json.loads((run_dir / "state.json").read_text())
    assert state["train"]["steps"] == 20 and Path(state["model_dir"]).is_dir()
    steps = [int(m) for m in re.findall(r"step (\d+)/20", resumed.stdout)]
    assert steps and steps[0] == 6, resumed.stdout[-2000:]  # went on from checkpoint-5, not from the start
