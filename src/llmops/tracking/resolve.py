"""`models:/NAME@ALIAS` and `models:/NAME/VERSION` turned into a local model folder, downloaded once per version.

A version's source holds the model folder or a reference file to it (see `registry`); other model values (paths,
hub ids) pass through unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from llmops.errors import TrackingError
from llmops.tracking.registry import REF_FILE
from llmops.tracking.uri import display_uri, error_summary, resolve_tracking_uri

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?$")


def _cache_dir(tracking_uri: str, name: str, version: str) -> Path:
    root = Path(os.environ.get("LLMOPS_CACHE") or Path.home() / ".cache" / "llmops") / "models"
    # Two registries may both hold "NAME version 1": keep their downloads apart.
    store = hashlib.sha1(tracking_uri.encode()).hexdigest()[:12]
    return root / store / name / version


def find_version(client: Any, uri: str, tracking_uri: str) -> Any:
    """The registry's ModelVersion for `models:/NAME@ALIAS` or `models:/NAME/VERSION`; TrackingError if none."""
    from mlflow.exceptions import MlflowException

    m = _MODEL_URI.match(uri)
    if not m or set(m["name"]) <= {"."} or (m["alias"] and set(m["alias"]) <= {"."}):
        raise TrackingError(f"{uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    try:
        if m["alias"]:
            return client.get_model_version_by_alias(m["name"], m["alias"])
        return client.get_model_version(m["name"], m["version"])
    except MlflowException as e:
        raise TrackingError(
            f"{uri}: not found in the registry at {display_uri(tracking_uri)} ({error_summary(e)}); "
            "check the name and alias, or point MLFLOW_TRACKING_URI at the right server"
        ) from None


def _download(source: str, dest: Path, tracking_uri: str, model: str) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp), tracking_uri=tracking_uri)
        os.replace(local if Path(local).is_dir() else tmp, dest)
    except (MlflowException, OSError) as e:
        if not dest.is_dir():  # else another process finished the same download first
            raise TrackingError(f"{model}: downloading {source} failed ({error_summary(e)})") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_model(model: str, cache_dir: str | Path | None = None, tracking_uri: str | None = None) -> str:
    """A local folder for `models:/NAME@ALIAS` or `models:/NAME/VERSION` (downloaded once); other values as given."""
    if not model.startswith("models:/"):
        return model
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    mv = find_version(MlflowClient(uri, registry_uri=uri), model, uri)
    dest = Path(cache_dir) if cache_dir else _cache_dir(uri, mv.name, str(mv.version))
    root = Path(cache_dir) if cache_dir else _cache_dir(uri, "x", "0").parent.parent
    if not dest.resolve().is_relative_to(root.resolve()):  # a registry name like '..' must not leave the cache
        raise TrackingError(f"{model}: registered model name '{mv.name}' does not name a folder inside {root}")
    if not dest.is_dir():
        _download(mv.source, dest, uri, model)
    ref = dest / REF_FILE
    if ref.is_file():
        target = json.loads(ref.read_text())["path"]
        if "://" not in target and not Path(target).exists():
            raise TrackingError(f"{model}: version {mv.version} refers to {target}, which no longer exists")
        return target
    return str(dest)
