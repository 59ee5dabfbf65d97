"""Model registry and the promotion gate.

Convention (no MLmodel file): a registered version's source is `<run artifact root>/model`, which holds either
the saved Hugging Face folder (config.json, tokenizer files, *.safetensors: the merged model, or the adapter) or,
with `tracking.log_model: false`, one file `llmops_model_ref.json` = {"path": "<where the model folder lives>"}.
Versions are created with `MlflowClient.create_model_version` (MLflow 3's `register_model` insists on an MLmodel
file or a LoggedModel). `resolve_model("models:/NAME@ALIAS")` turns either form back into a local folder.

Aliases: every new version gets `challenger`; `champion` moves to it only when `eval/<gate metric>` (higher is
better) beats the champion's (read from the champion version's run), or, with no champion, the run's baseline.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.config import redact
from llmops.errors import TrackingError

CHAMPION = "champion"
CHALLENGER = "challenger"
REF_FILE = "llmops_model_ref.json"
MODEL_ARTIFACT_PATH = "model"
TAG = "llmops.gate."


@dataclass
class GateResult:
    """The gate's decision for one registered version."""

    promoted: bool
    version: str | None
    champion_version: str | None
    new_value: float | None
    reference_value: float | None
    reason: str
    metric: str = ""
    name: str | None = None


def decide(
    metric: str,
    new_value: float | None,
    champion_version: str | None,
    champion_value: float | None,
    baseline_value: float | None,
) -> tuple[bool, float | None, str]:
    """Pure gate rule: (promoted, reference value, reason). Strictly higher wins; ties keep the champion."""
    key = f"eval/{metric}"
    if new_value is None or math.isnan(new_value):
        return False, None, f"{key} was not measured: not promoted"
    if champion_version is not None and champion_value is not None:
        reference, label = champion_value, f"champion v{champion_version}"
    elif baseline_value is not None:
        reference, label = baseline_value, "baseline"
        if champion_version is not None:
            label = f"baseline (champion v{champion_version} has no {key})"
    elif champion_version is None:
        return True, None, f"no champion and no baseline/{metric}: first version becomes champion"
    else:
        return False, None, f"champion v{champion_version} has no {key} and there is no baseline: champion kept"
    if new_value > reference:
        return True, reference, f"{key} {new_value:.4f} > {label} {reference:.4f}"
    return False, reference, f"{key} {new_value:.4f} <= {label} {reference:.4f}: champion unchanged"


def _is_missing(err: Exception) -> bool:
    return getattr(err, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


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
    if value is None and mv.tags.get(TAG + "metric") == metric:
        raw = mv.tags.get(TAG + "value")
        value = float(raw) if raw not in (None, "", "None") else None
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


def create_version(
    client: Any, run_id: str, model_dir: Path, name: str, log_model: bool = True, tags: dict[str, str] | None = None
) -> str:
    """Log the model folder (or a reference to it) under the run's `model/` and register it as a new version."""
    from mlflow.exceptions import MlflowException

    _log_model_files(client, run_id, Path(model_dir), log_model)
    try:
        client.create_registered_model(name, description="Registered by llmops; aliases champion/challenger.")
    except MlflowException as e:
        if getattr(e, "error_code", "") not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    source = client.get_run(run_id).info.artifact_uri.rstrip("/") + "/" + MODEL_ARTIFACT_PATH
    all_tags = {"llmops.model_dir": str(model_dir), **(tags or {})}
    mv = client.create_model_version(name, source=source, run_id=run_id, tags=all_tags)
    client.set_registered_model_alias(name, CHALLENGER, mv.version)
    return str(mv.version)


def gate(
    client: Any, name: str, metric: str, new_value: float | None, baseline_value: float | None
) -> GateResult:
    """Decide whether a new version of `name` with `new_value` should become champion (version not yet set)."""
    champ_version, champ_value = current_champion(client, name, metric)
    promoted, reference, reason = decide(metric, new_value, champ_version, champ_value, baseline_value)
    return GateResult(promoted, None, champ_version, new_value, reference, reason, metric, name)


def gate_tags(result: GateResult) -> dict[str, str]:
    """The gate's decision as `llmops.gate.*` model-version tags."""
    values = {
        "metric": result.metric,
        "value": result.new_value,
        "reference": result.reference_value,
        "champion_before": result.champion_version,
        "promoted": str(result.promoted).lower(),
        "reason": result.reason,
    }
    return {TAG + k: "" if v is None else str(v) for k, v in values.items()}


def tag_version(client: Any, result: GateResult) -> None:
    """Rewrite the gate tags of an existing version (after the decision changed)."""
    for key, value in gate_tags(result).items():
        client.set_model_version_tag(result.name, result.version, key, value)


def promote(client: Any, result: GateResult, baseline_value: float | None) -> GateResult:
    """Move `champion` to the version if it still wins against the champion of now (another run may have won)."""
    champ_version, champ_value = current_champion(client, result.name, result.metric)
    if champ_version != result.champion_version:
        result.promoted, result.reference_value, result.reason = decide(
            result.metric, result.new_value, champ_version, champ_value, baseline_value
        )
        result.champion_version = champ_version
        tag_version(client, result)
    if result.promoted:
        client.set_registered_model_alias(result.name, CHAMPION, result.version)
    return result


def mark_failed(client: Any, result: GateResult) -> None:
    """Record that the run ended badly, so the version was never promoted."""
    result.promoted = False
    result.reason = "the run failed after registration: champion not moved"
    tag_version(client, result)


# ---------------------------------------------------------------- resolving models:/ URIs

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?$")


def _cache_dir(tracking_uri: str, name: str, version: str) -> Path:
    root = Path(os.environ.get("LLMOPS_CACHE") or Path.home() / ".cache" / "llmops") / "models"
    # Two registries may both hold "NAME version 1": keep their downloads apart.
    store = hashlib.sha1(tracking_uri.encode()).hexdigest()[:12]
    return root / store / name / version


_URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")


def error_summary(err: BaseException) -> str:
    """An error's first line with credentials in URLs masked, cut to a readable length."""
    lines = str(err).strip().splitlines()
    return _URL_CREDENTIALS.sub(r"\1***@", lines[0] if lines else type(err).__name__)[:240]


def _find_version(client: Any, uri: str, tracking_uri: str) -> Any:
    from mlflow.exceptions import MlflowException

    m = _MODEL_URI.match(uri)
    if not m:
        raise TrackingError(f"{uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    try:
        if m["alias"]:
            return client.get_model_version_by_alias(m["name"], m["alias"])
        return client.get_model_version(m["name"], m["version"])
    except MlflowException as e:
        raise TrackingError(
            f"{uri}: not found in the registry at {redact({'uri': tracking_uri})['uri']} ({error_summary(e)}); "
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

    from llmops.tracking.mlflow_tracker import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    mv = _find_version(MlflowClient(uri, registry_uri=uri), model, uri)
    dest = Path(cache_dir) if cache_dir else _cache_dir(uri, mv.name, str(mv.version))
    if not dest.is_dir():
        _download(mv.source, dest, uri, model)
    ref = dest / REF_FILE
    if ref.is_file():
        target = json.loads(ref.read_text())["path"]
        if "://" not in target and not Path(target).exists():
            raise TrackingError(f"{model}: version {mv.version} refers to {target}, which no longer exists")
        return target
    return str(dest)
