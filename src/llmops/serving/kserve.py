"""Serve a registered model on KServe: an InferenceService on the Hugging Face serving runtime with vLLM.

`deploy_kserve("models:/NAME@champion")` resolves the registered version, builds the manifest (`kserve_manifest`),
optionally writes it as YAML and optionally applies it to the cluster (used by `llmops deploy kserve` and the Kubeflow
deploy step). A merged (or fully fine-tuned) model is served from its artifact location (or the path in
`llmops_model_ref.json`); an adapter as a LoRA module on its base model.

Nothing here needs a cluster except `apply`, which loads the in-cluster config or the kubeconfig.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError, LlmopsError, TrackingError
from llmops.serving.kserve_manifest import (
    GROUP,
    PLURAL,
    VERSION,
    base_uri,
    inference_service,
    is_uri,
    service_name,
    validate_name,
)

ADAPTER_CONFIG = "adapter_config.json"
REF_FILE = "llmops_model_ref.json"


# ---------------------------------------------------------------- registered versions


def _read_artifact_json(uri: str, tracking_uri: str) -> dict[str, Any]:
    import mlflow
    from mlflow.exceptions import MlflowException

    from llmops.tracking.uri import error_summary

    try:
        with tempfile.TemporaryDirectory(prefix="llmops-kserve-") as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri)
            return json.loads(Path(local).read_text())
    except (MlflowException, OSError, ValueError) as e:
        raise TrackingError(f"kserve: reading {uri} failed ({error_summary(e)})") from e


def _list_names(uri: str, tracking_uri: str) -> set[str]:
    import mlflow
    from mlflow.exceptions import MlflowException

    from llmops.tracking.uri import error_summary

    try:
        infos = mlflow.artifacts.list_artifacts(artifact_uri=uri, tracking_uri=tracking_uri)
    except (MlflowException, OSError) as e:
        raise TrackingError(f"kserve: listing {uri} failed ({error_summary(e)})") from e
    return {Path(f.path).name for f in infos or ()}


def _model_location(source: str, tracking_uri: str) -> tuple[str, dict[str, Any] | None]:
    """(where the model folder lives, its adapter_config.json or None) for a registered version's source."""
    names = _list_names(source, tracking_uri)
    if REF_FILE in names and ADAPTER_CONFIG not in names and "config.json" not in names:
        target = str(_read_artifact_json(f"{source.rstrip('/')}/{REF_FILE}", tracking_uri).get("path", ""))
        if not target:
            raise TrackingError(f"kserve: {source}/{REF_FILE} has no 'path'")
        if is_uri(target):
            try:
                names = _list_names(target, tracking_uri)
            except TrackingError:
                names = set()  # a store MLflow cannot list: treat as a merged model
            adapter = (
                _read_artifact_json(f"{target.rstrip('/')}/{ADAPTER_CONFIG}", tracking_uri)
                if ADAPTER_CONFIG in names
                else None
            )
            return target, adapter
        folder = Path(target)
        if not folder.is_dir():
            raise TrackingError(f"kserve: the registered version refers to {target}, which does not exist here")
        cfg = folder / ADAPTER_CONFIG
        return str(folder.resolve()), json.loads(cfg.read_text()) if cfg.is_file() else None
    if ADAPTER_CONFIG in names:
        return source, _read_artifact_json(f"{source.rstrip('/')}/{ADAPTER_CONFIG}", tracking_uri)
    return source, None


def manifest_for_registered(model_uri: str, tracking_uri: str | None = None, **opts: Any) -> dict[str, Any]:
    """The InferenceService for `models:/NAME@ALIAS` or `models:/NAME/VERSION` (see `inference_service` for opts).

    A merged model is served from its artifact location; an adapter (adapter_config.json in its artifacts) is
    served as LoRA module `opts['lora_name']` (default: the service name) on its base model. `opts['name']`
    overrides the service name (default: the registered model name, lowercased and DNS-safe). User-given
    `lora_modules` are added to the adapter's own.
    """
    from mlflow import MlflowClient

    from llmops.tracking.resolve import find_version
    from llmops.tracking.uri import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    mv = find_version(MlflowClient(uri, registry_uri=uri), model_uri, uri)
    if str(mv.source).startswith("mlflow-artifacts:"):
        raise ConfigError(
            f"kserve: {model_uri} is stored at {mv.source}, which only the MLflow server can read; run the tracking "
            "server with an artifact root the cluster can fetch (--default-artifact-root s3://... "
            "--no-serve-artifacts)"
        )
    location, adapter = _model_location(str(mv.source), uri)
    from_store = location == str(mv.source)  # in the artifact store (not a referenced folder): always fetched
    name = validate_name(opts.pop("name", None) or service_name(mv.name))
    lora_name = opts.pop("lora_name", None) or name
    lora = dict(opts.pop("lora_modules", None) or {})
    if adapter is not None:
        base = opts.pop("base_storage_uri", None) or base_uri(str(adapter.get("base_model_name_or_path") or ""))
        lora = {lora_name: location, **lora}
        manifest = inference_service(
            name, base, lora_modules=lora, base_storage_uri=base, mount_lora=[lora_name] if from_store else (), **opts
        )
    else:
        manifest = inference_service(name, location, lora_modules=lora or None, **opts)
    annotations = manifest["metadata"].setdefault("annotations", {})
    annotations.update(
        {
            "llmops/model-uri": model_uri,
            "llmops/registered-model": str(mv.name),
            "llmops/model-version": str(mv.version),
            "llmops/model-kind": "adapter" if adapter else "merged",
        }
    )
    return manifest


# ---------------------------------------------------------------- writing and applying


def to_yaml(manifest: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(manifest), sort_keys=False, default_flow_style=False)


def write_manifest(manifest: Mapping[str, Any], path: str | Path) -> Path:
    """Write the manifest as YAML to `path` atomically (temp file in the same folder, then rename)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(to_yaml(manifest))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _load_cluster_config() -> str | None:
    """Load the in-cluster config, else the kubeconfig; the kubeconfig context's namespace (or None)."""
    from kubernetes import config

    try:
        config.load_incluster_config()
        ns_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        return ns_file.read_text().strip() if ns_file.is_file() else None
    except config.ConfigException:
        pass
    try:
        config.load_kube_config()
        _, active = config.list_kube_config_contexts()
        return (active or {}).get("context", {}).get("namespace")
    except (config.ConfigException, OSError, TypeError) as e:
        raise LlmopsError(
            "kserve: no Kubernetes cluster configuration found (not running in a pod, and no usable kubeconfig: "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}); set KUBECONFIG or write the manifest with "
            "--output and apply it with kubectl"
        ) from None


def apply(manifest: Mapping[str, Any], namespace: str | None = None, api: Any = None) -> dict[str, Any]:
    """Create the InferenceService, or replace it when it exists (HTTP 409); returns {action, namespace, object}.

    `api` is a `kubernetes.client.CustomObjectsApi` (or anything with its create/get/replace methods); without it
    one is built from the in-cluster config or the kubeconfig (LlmopsError when neither exists).
    """
    from kubernetes.client.exceptions import ApiException

    body: dict[str, Any] = json.loads(json.dumps(dict(manifest)))  # a deep copy we may edit
    ns = namespace or body.get("metadata", {}).get("namespace")
    if api is None:
        from kubernetes import client

        context_ns = _load_cluster_config()
        ns = ns or context_ns
        api = client.CustomObjectsApi()
    ns = ns or "default"
    body.setdefault("metadata", {})["namespace"] = ns
    name = validate_name(body["metadata"].get("name", ""))
    try:
        obj = api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
        return {"action": "created", "namespace": ns, "object": obj}
    except ApiException as e:
        if e.status != 409:
            raise LlmopsError(
                f"kserve: creating InferenceService {ns}/{name} failed: {e.status} {e.reason}; {_api_message(e)}"
            ) from None
    try:
        current = api.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        obj = api.replace_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, body)
    except ApiException as e:
        raise LlmopsError(
            f"kserve: replacing InferenceService {ns}/{name} failed: {e.status} {e.reason}; {_api_message(e)}"
        ) from None
    return {"action": "replaced", "namespace": ns, "object": obj}


def _api_message(err: Any) -> str:
    try:
        return str(json.loads(err.body).get("message", ""))[:400]
    except (TypeError, ValueError, AttributeError):
        return str(getattr(err, "body", "") or "")[:400]


def kfp_options(kfp: Any) -> dict[str, Any]:
    """`inference_service` options from the run config's `kfp` section (KfpSettings): GPUs and placement."""
    return {
        "gpus": kfp.gpus,
        "gpu_resource": kfp.gpu_resource,
        "cpu": kfp.cpu_request,
        "memory": kfp.memory_request,
        "node_selector": dict(kfp.node_selector) if kfp.gpus else None,
        "tolerations": list(kfp.tolerations) if kfp.gpus else None,
    }


def deploy_kserve(
    model_uri: str,
    output_path: str | Path | None = None,
    apply_now: bool = False,
    namespace: str | None = None,
    tracking_uri: str | None = None,
    api: Any = None,
    **opts: Any,
) -> dict[str, Any]:
    """Build the InferenceService for a registered model, write it (when `output_path`) and apply it (when
    `apply_now`). Returns {name, namespace, manifest, yaml, output, applied (created/replaced or None)}."""
    manifest = manifest_for_registered(model_uri, tracking_uri=tracking_uri, namespace=namespace, **opts)
    result: dict[str, Any] = {
        "name": manifest["metadata"]["name"],
        "namespace": namespace,
        "manifest": manifest,
        "yaml": to_yaml(manifest),
        "output": None,
        "applied": None,
    }
    if output_path:
        result["output"] = str(write_manifest(manifest, output_path))
    if apply_now:
        outcome = apply(manifest, namespace=namespace, api=api)
        result["applied"], result["namespace"] = outcome["action"], outcome["namespace"]
    return result
