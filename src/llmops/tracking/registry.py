"""Registering model versions and moving their aliases by the gate's decision (`gate` decides, this applies).

Convention (no MLmodel file): a registered version's source is `<run artifact root>/model`, which holds either
the saved Hugging Face folder (config.json, tokenizer files, *.safetensors: the merged model, or the adapter) or,
with `tracking.log_model: false`, one file `llmops_model_ref.json` = {"path": "<where the model folder lives>"}.
Versions are created with `MlflowClient.create_model_version` (MLflow 3's `register_model` insists on an MLmodel
file or a LoggedModel); `resolve.resolve_model` turns either form back into a local folder.

Aliases: every new version gets `challenger`; `champion` moves to it only when `eval/<gate metric>` (higher is
better) beats the champion's (read from the champion version's run), or, with no champion, the run's baseline.
Runs that finish together take turns (`champion_lock`): each re-decides against the champion of now.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmops.errors import TrackingError
from llmops.tracking.gate import (
    CHALLENGER,
    CHAMPION,
    GateResult,
    evaluate,
    failed_run,
    gate_tags,
    recheck,
    tagged_value,
)

log = logging.getLogger(__name__)

REF_FILE = "llmops_model_ref.json"
LOCK_SUFFIX = ".champion-lock"
LOCK_HOLDER_TAG = "llmops.lock.holder"
MODEL_ARTIFACT_PATH = "model"


def _is_missing(err: Exception) -> bool:
    return getattr(err, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def already_exists(err: Exception) -> bool:
    return getattr(err, "error_code", "") in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")


def current_champion(client: Any, name: str, metric: str) -> tuple[str | None, float | None]:
    """The champion's version and its `eval/<metric>` (from its run; else its gate tag); (None, None) if none."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_registered_model(name).aliases.get(CHAMPION)
    except MlflowException as e:
        if _is_missing(e):
            return None, None
        raise
    if version is None:
        return None, None
    mv = client.get_model_version(name, str(version))
    value: float | None = None
    if mv.run_id:
        try:
            value = client.get_run(mv.run_id).data.metrics.get(f"eval/{metric}")
        except MlflowException as e:
            if not _is_missing(e):
                raise
    if value is None:
        value = tagged_value(mv.tags, metric)
    return str(version), value


def _log_model_files(client: Any, run_id: str, model_dir: Path, log_model: bool) -> None:
    if not model_dir.is_dir():
        raise TrackingError(f"{model_dir}: model folder not found; nothing to register")
    if log_model:
        client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT_PATH)
        return
    with tempfile.TemporaryDirectory(prefix="llmops-ref-") as tmp:
        ref = Path(tmp) / REF_FILE
        ref.write_text(json.dumps({"path": str(model_dir.resolve())}))
        client.log_artifact(run_id, str(ref), MODEL_ARTIFACT_PATH)


def _version_of_run(client: Any, name: str, run_id: str, source: str) -> Any | None:
    """The version this run already registered, if any: a run registers one version, so a retry after a lost
    response (the server made it, the answer never came) or a resume after a crash reuses it."""
    for mv in client.search_model_versions(f"name='{name}' and run_id='{run_id}'"):
        if mv.source == source:
            return mv
    return None


def create_version(
    client: Any, run_id: str, model_dir: Path, name: str, log_model: bool = True, tags: dict[str, str] | None = None
) -> str:
    """Log the model folder (or a reference to it) under the run's `model/` and register it as a new version."""
    from mlflow.exceptions import MlflowException

    _log_model_files(client, run_id, Path(model_dir), log_model)
    try:
        client.create_registered_model(name, description="Registered by llmops; aliases champion/challenger.")
    except MlflowException as e:
        if not already_exists(e):
            raise
    source = client.get_run(run_id).info.artifact_uri.rstrip("/") + "/" + MODEL_ARTIFACT_PATH
    mv = _version_of_run(client, name, run_id, source)
    if mv is None:
        all_tags = {"llmops.model_dir": str(model_dir), **(tags or {})}
        mv = client.create_model_version(name, source=source, run_id=run_id, tags=all_tags)
    _set_alias_racing(client, name, CHALLENGER, mv.version)
    return str(mv.version)


def _set_alias_racing(client: Any, name: str, alias: str, version: str, tries: int = 4) -> None:
    """Set an alias other runs may be setting at the same moment (challenger: outside the lock). The store reads,
    then inserts or updates; two first-time inserts collide on the alias's unique key and the loser gets an
    integrity error (BAD_REQUEST): set it again, last writer wins."""
    from mlflow.exceptions import MlflowException

    for attempt in range(tries):
        try:
            client.set_registered_model_alias(name, alias, version)
            return
        except MlflowException as e:
            collided = already_exists(e) or any(
                k in str(e) for k in ("UNIQUE constraint", "IntegrityError", "duplicate key", "Duplicate entry")
            )
            if not collided or attempt == tries - 1:
                raise
            time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))


def gate_new_version(
    client: Any, name: str, metric: str, new_value: float | None, baseline_value: float | None
) -> GateResult:
    """Decide whether a new version of `name` with `new_value` should become champion (version not yet set)."""
    return evaluate(name, metric, new_value, current_champion(client, name, metric), baseline_value)


def tag_version(client: Any, result: GateResult) -> None:
    """Rewrite the gate tags of an existing version (after the decision changed)."""
    for key, value in gate_tags(result).items():
        client.set_model_version_tag(result.name, result.version, key, value)


def lock_name(name: str) -> str:
    return f"{name}{LOCK_SUFFIX}"


@contextmanager
def champion_lock(client: Any, name: str, timeout_s: float = 120.0, stale_s: float = 300.0) -> Iterator[None]:
    """Hold the champion of `name` while the gate re-decides and the alias moves: two runs finishing together must
    not both read the old champion and both win. MLflow has no compare-and-set on aliases, but creating a
    registered model is atomic (its name is unique in the store: the second create fails with
    RESOURCE_ALREADY_EXISTS), so the lock is a registered model `<name>.champion-lock`, deleted on release. A lock
    older than `stale_s` (its holder died) is taken over."""
    from mlflow.exceptions import MlflowException

    lock = lock_name(name)
    holder = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.create_registered_model(
                lock, tags={LOCK_HOLDER_TAG: holder}, description=f"llmops: held while the champion of {name} moves"
            )
            break
        except MlflowException as e:
            # Held: RESOURCE_ALREADY_EXISTS. Released just as we asked: the store's insert failed on the holder's
            # row, and its reading of that row (for the message) found it deleted: RESOURCE_DOES_NOT_EXIST.
            if not (already_exists(e) or _is_missing(e)):
                raise
        _take_over_if_stale(client, lock, stale_s)
        if time.monotonic() > deadline:
            raise TrackingError(
                f"registry: the champion lock of '{name}' ({lock}) stayed held for {timeout_s:.0f} s;"
                f" if no run is registering '{name}' now, delete the registered model {lock}"
            )
        time.sleep(random.uniform(0.05, 0.3))
    try:
        yield
    finally:
        _release(client, lock)


def _release(client: Any, lock: str, tries: int = 5) -> None:
    """Delete the lock, again if the store was busy: a lock left behind stalls every other run's gate until it
    is stale."""
    from mlflow.exceptions import MlflowException

    for attempt in range(tries):
        try:
            client.delete_registered_model(lock)
            return
        except MlflowException as e:
            if _is_missing(e):
                return  # taken over as stale meanwhile
            if attempt == tries - 1:
                log.warning("registry: could not release the champion lock %s: %s", lock, e)
                return
            time.sleep(0.2 * 2**attempt)


def _take_over_if_stale(client: Any, lock: str, stale_s: float) -> None:
    from mlflow.exceptions import MlflowException

    try:
        held = client.get_registered_model(lock)
    except MlflowException:
        return  # released meanwhile
    age = time.time() - held.creation_timestamp / 1000
    if age > stale_s:
        log.warning(
            "registry: champion lock %s held by %s for %.0f s; taking it over",
            lock,
            held.tags.get(LOCK_HOLDER_TAG, "?"),
            age,
        )
        with contextlib.suppress(MlflowException):
            client.delete_registered_model(lock)


def promote(client: Any, result: GateResult, baseline_value: float | None) -> GateResult:
    """Move `champion` to the version if it still wins against the champion of now (another run may have won),
    under the champion lock: the decision tagged on the version is the one that was applied."""
    with champion_lock(client, result.name):
        if recheck(result, current_champion(client, result.name, result.metric), baseline_value):
            tag_version(client, result)
        if result.promoted:
            client.set_registered_model_alias(result.name, CHAMPION, result.version)
    return result


def mark_failed(client: Any, result: GateResult) -> None:
    """Record that the run ended badly, so the version was never promoted."""
    tag_version(client, failed_run(result))
