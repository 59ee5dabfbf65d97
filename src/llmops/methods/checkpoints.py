"""Checkpoint folders that survive kills and full disks.

The HF Trainer writes `checkpoint-N` in place and its trainer_state.json last, and removes older checkpoints (the
`save_total_limit` rotation) only after that: so a folder without a readable trainer_state.json is one a kill or a
full disk cut short, and the checkpoint before it is intact. Resume takes the newest complete folder; torn ones are
renamed `torn-checkpoint-N` (outside the Trainer's `checkpoint-*` glob, so neither resume nor rotation touch them
again). A save that runs out of space becomes one `DiskFullError` naming the folder, the space it needs and the space
there is, and the torn folder is removed (nothing half-written stays behind; the space goes back).

No torch or transformers here: the pipeline asks about checkpoints before it loads anything.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from llmops.errors import DiskFullError

log = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
STATE_NAME = "trainer_state.json"  # written last into a checkpoint folder by the HF Trainer
# How torch, safetensors and the OS word "no space left" (torch's stream writer drops the errno).
_FULL = ("no space left", "storagefull", "storage full", "file write failed", "errno 28", "enospc")


def is_complete(folder: Path) -> bool:
    """A checkpoint the Trainer finished writing: its trainer_state.json (written last) parses."""
    try:
        json.loads((Path(folder) / STATE_NAME).read_text())
    except (OSError, ValueError):
        return False
    return True


def _numbered(output_dir: Path) -> list[tuple[int, Path]]:
    found = [
        (int(m.group(1)), p)
        for p in Path(output_dir).glob("checkpoint-*")
        if (m := _CHECKPOINT.match(p.name)) and p.is_dir()
    ]
    return sorted(found, key=lambda t: t[0])


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """The complete `checkpoint-N` folders, oldest first; torn ones are set aside as `torn-checkpoint-N`."""
    complete = []
    for _, path in _numbered(output_dir):
        if is_complete(path):
            complete.append(path)
            continue
        torn = path.with_name("torn-" + path.name)
        with contextlib.suppress(OSError):
            shutil.rmtree(torn, ignore_errors=True)
            path.rename(torn)
        log.warning(
            "%s: half-written (no %s: a kill or a full disk during the save); skipped, kept as %s",
            path,
            STATE_NAME,
            torn.name,
        )
    return complete


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def is_disk_full(error: BaseException, where: Path | None = None) -> bool:
    """ENOSPC from the OS, or torch's / safetensors' wording of it, anywhere in the exception chain; or, with
    `where`, a torch writer error on a file system with (almost) nothing left."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(k in str(seen).lower() for k in _FULL):
            return True
        seen = seen.__cause__ or seen.__context__
    if where is not None and isinstance(error, RuntimeError) and "unexpected pos" in str(error):
        return _free_bytes(where) < 1 << 20
    return False


def _free_bytes(path: Path) -> int:
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def disk_full(target: Path, needed: int, error: BaseException) -> DiskFullError:
    """The one message: which folder, how much it needs, how much there is, what to do."""
    free = _free_bytes(Path(target))
    return DiskFullError(
        f"{target}: no space left on the device while saving (needs about {_mb(needed)}, "
        f"{_mb(free)} free); free space there (or lower training.save_total_limit), then "
        f"continue with `llmops run --resume RUN_DIR` ({type(error).__name__}: "
        f"{str(error).splitlines()[0][:160] if str(error) else 'ENOSPC'})"
    )


@contextlib.contextmanager
def checkpoint_saves_are_clear(output_dir: Path) -> Iterator[None]:
    """A checkpoint save that runs out of space -> DiskFullError; the torn folder is removed, the previous
    checkpoint stays."""
    output_dir = Path(output_dir)
    try:
        yield
    except Exception as e:
        if not is_disk_full(e, output_dir):
            raise
        numbered = _numbered(output_dir)
        torn = [p for _, p in numbered if not is_complete(p)]
        complete = [p for _, p in numbered if is_complete(p)]
        written = sum(folder_bytes(p) for p in torn)
        needed = folder_bytes(complete[-1]) if complete else written
        for path in torn:
            shutil.rmtree(path, ignore_errors=True)
        target = torn[-1] if torn else output_dir
        raise disk_full(target, max(needed, written), e) from None


@contextlib.contextmanager
def model_save_is_clear(target: Path, needed: int) -> Iterator[None]:
    """A model save (written to a temp folder, then renamed: nothing half-written) that runs out of space ->
    DiskFullError naming the folder."""
    try:
        yield
    except Exception as e:
        if not is_disk_full(e, Path(target).parent):
            raise
        raise disk_full(Path(target), needed, e) from None
