"""Serve a registered model on KServe: an InferenceService on the Hugging Face serving runtime with vLLM.

`deploy_kserve("models:/NAME@champion")` resolves the registered version, builds the manifest, optionally writes it
as YAML and optionally applies it to the cluster (used by `llmops deploy kserve` and the Kubeflow deploy step).

The manifest (`serving.kserve.io/v1beta1`, kind InferenceService):

- `spec.predictor.model.modelFormat.name: huggingface` picks KServe's Hugging Face runtime (kserve-huggingfaceserver).
  It serves with vLLM when a GPU is present; `--backend=vllm` makes that explicit (with `gpus=0` the flag is left out
  and the runtime falls back to its Transformers backend). The server speaks the OpenAI API under `/openai/v1`.
- Merged (or fully fine-tuned) model: `storageUri` = the version's artifact location (`<run artifact root>/model`,
  or the path in `llmops_model_ref.json`). KServe's storage initializer copies it to `/mnt/models`.
- LoRA adapter: vLLM loads the *base* model and the adapter beside it: args `--enable-lora` and
  `--lora-modules NAME=PATH`. How the adapter folder gets into the pod (our choice, no extra initContainer):
  * adapter given as a remote URI (`s3://`, `gs://`, `hf://`, ... : the registered adapter always is): the manifest
    uses KServe's multiple-storage-URI feature (`storageUris`, recent releases) instead of `storageUri`: the base model
    is mounted at `/mnt/models/base` (`--model_dir=/mnt/models/base`) and every adapter at
    `/mnt/models/adapters/NAME`, which `--lora-modules NAME=/mnt/models/adapters/NAME` points at. The storage
    initializer fetches all of them with the same credentials (service account / storage-config secret).
  * adapter given as a path already inside the image or a Hugging Face repo id (vLLM downloads those itself):
    `storageUri` = the base model and the value goes to `--lora-modules` unchanged.
  The base model is `base_storage_uri`, else the adapter's `base_model_name_or_path` (a hub id `ORG/NAME` becomes
  `hf://ORG/NAME`); a local base path cannot be fetched by the cluster and is a ConfigError.

Nothing here needs a cluster except `apply`, which loads the in-cluster config or the kubeconfig.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError, LlmopsError, TrackingError

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferenceService"
MODEL_MOUNT = "/mnt/models"
BASE_MOUNT = f"{MODEL_MOUNT}/base"
ADAPTER_MOUNT = f"{MODEL_MOUNT}/adapters"
ADAPTER_CONFIG = "adapter_config.json"
REF_FILE = "llmops_model_ref.json"

# KServe requires a DNS-1123 label that starts with a letter (the name becomes a Service and a hostname).
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LORA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def validate_name(name: str) -> str:
    """`name` if it is a valid InferenceService name (DNS-1123 label starting with a letter); else ConfigError."""
    if not isinstance(name, str) or len(name) > 63 or not _NAME.match(name):
        raise ConfigError(
            f"kserve: '{name}' is not a valid InferenceService name: use at most 63 lowercase letters, digits and "
            "'-', starting with a letter and ending with a letter or digit (e.g. llmops-idp-sft)")
    return name


def service_name(model_name: str) -> str:
    """A DNS-safe InferenceService name derived from a registered model name (`My_Model.v2` -> `my-model-v2`)."""
    name = re.sub(r"[^a-z0-9-]+", "-", model_name.lower())
    name = re.sub(r"-{2,}", "-", name).strip("-")
    if not name or not name[0].isalpha():
        name = f"m-{name}".rstrip("-")
    return validate_name(name[:63].rstrip("-"))


def _is_uri(value: str) -> bool:
    return "://" in value


def base_uri(base: str) -> str:
    """The storage URI of a base model named by an adapter: a URI as is, a hub id as `hf://ORG/NAME`."""
    base = base.strip()
    if _is_uri(base):
        return base
    if _HUB_ID.match(base) and not base.startswith((".", "/", "~")) and not Path(base).exists():
        return f"hf://{base}"
    raise ConfigError(
        f"kserve: the adapter's base model '{base}' is a local path the cluster cannot fetch; pass the base model's "
        "storage URI (--base-storage-uri s3://... or hf://ORG/NAME)")


def _resources(gpus: int, gpu_resource: str, cpu: str, memory: str) -> dict[str, dict[str, str]]:
    amounts = {"cpu": str(cpu), "memory": str(memory)}
    if gpus:
        amounts[gpu_resource] = str(gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def inference_service(
    name: str,
    storage_uri: str,
    *,
    namespace: str | None = None,
    gpus: int = 1,
    gpu_resource: str = "nvidia.com/gpu",
    cpu: str = "4",
    memory: str = "32Gi",
    lora_modules: Mapping[str, str] | None = None,
    base_storage_uri: str | None = None,
    max_model_len: int | None = None,
    served_name: str | None = None,
    image: str | None = None,
    runtime_version: str | None = None,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Iterable[Mapping[str, Any]] | None = None,
    service_account: str | None = None,
    extra_args: Iterable[str] = (),
    mount_lora: Iterable[str] = (),
) -> dict[str, Any]:
    """The InferenceService manifest (a plain dict) serving `storage_uri` on KServe's Hugging Face runtime.

    Without `lora_modules`, `storage_uri` is the (merged) model. With `lora_modules` {served adapter name: folder},
    the base model is `base_storage_uri` (or `storage_uri` when that is not given) and the adapters are loaded by
    vLLM (`--enable-lora --lora-modules NAME=PATH`); remote adapter URIs are fetched through `storageUris` (see
    the module docstring), as are the modules named in `mount_lora` (artifact-store locations without a scheme).
    `served_name` is the OpenAI `model` name of the base (default: `name`).
    """
    validate_name(name)
    if namespace is not None and (len(namespace) > 63 or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", namespace)):
        raise ConfigError(f"kserve: '{namespace}' is not a valid Kubernetes namespace")
    if not isinstance(gpus, int) or gpus < 0:
        raise ConfigError(f"kserve: gpus must be a whole number >= 0, not {gpus!r}")
    if not storage_uri and not base_storage_uri:
        raise ConfigError("kserve: no storage URI for the model")
    if max_model_len is not None and max_model_len < 1:
        raise ConfigError("kserve: max_model_len must be positive")
    lora = dict(lora_modules or {})
    if lora and gpus == 0:
        raise ConfigError("kserve: LoRA adapters are served by the vLLM backend, which needs a GPU (gpus >= 1); "
                          "merge the adapter to serve it on CPU")
    for lora_name, path in lora.items():
        if not _LORA_NAME.match(lora_name) or not path:
            raise ConfigError(f"kserve: bad LoRA module '{lora_name}={path}': expected NAME=PATH (NAME: letters, "
                              "digits, '.', '_', '-')")

    args = [f"--model_name={served_name or name}"]
    if gpus:
        args.append("--backend=vllm")
    model: dict[str, Any] = {"modelFormat": {"name": "huggingface"}}
    if runtime_version:
        model["runtimeVersion"] = runtime_version
    if lora:
        base = base_storage_uri or storage_uri
        mounted = set(mount_lora)
        remote = {k: v for k, v in lora.items() if _is_uri(v) or k in mounted}
        if remote:
            # The storage initializer fetches base and adapters; storageUri and storageUris are mutually exclusive.
            model["storageUris"] = [{"uri": base, "mountPath": BASE_MOUNT}] + [
                {"uri": uri, "mountPath": f"{ADAPTER_MOUNT}/{k}"} for k, uri in remote.items()]
            args.append(f"--model_dir={BASE_MOUNT}")
        else:
            model["storageUri"] = base
        modules = [f"{k}={ADAPTER_MOUNT}/{k}" if k in remote else f"{k}={v}" for k, v in lora.items()]
        args += ["--enable-lora", "--lora-modules", *modules]
        if len(lora) > 1:
            args.append(f"--max-loras={len(lora)}")
    else:
        model["storageUri"] = storage_uri
    if max_model_len:
        args.append(f"--max-model-len={max_model_len}")
    args += [str(a) for a in extra_args]
    model["args"] = args
    if image:
        model["image"] = image
    model["resources"] = _resources(gpus, gpu_resource, cpu, memory)

    predictor: dict[str, Any] = {"model": model}
    if service_account:
        predictor["serviceAccountName"] = service_account
    if node_selector:
        predictor["nodeSelector"] = dict(node_selector)
    if tolerations:
        predictor["tolerations"] = [dict(t) for t in tolerations]
    metadata: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/managed-by": "llmops"}}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": {"predictor": predictor}}


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
        if _is_uri(target):
            try:
                names = _list_names(target, tracking_uri)
            except TrackingError:
                names = set()  # a store MLflow cannot list: treat as a merged model
            adapter = _read_artifact_json(f"{target.rstrip('/')}/{ADAPTER_CONFIG}", tracking_uri) \
                if ADAPTER_CONFIG in names else None
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
            "--no-serve-artifacts)")
    location, adapter = _model_location(str(mv.source), uri)
    from_store = location == str(mv.source)  # in the artifact store (not a referenced folder): always fetched
    name = validate_name(opts.pop("name", None) or service_name(mv.name))
    lora_name = opts.pop("lora_name", None) or name
    lora = dict(opts.pop("lora_modules", None) or {})
    if adapter is not None:
        base = opts.pop("base_storage_uri", None) or base_uri(str(adapter.get("base_model_name_or_path") or ""))
        lora = {lora_name: location, **lora}
        manifest = inference_service(name, base, lora_modules=lora, base_storage_uri=base,
                                     mount_lora=[lora_name] if from_store else (), **opts)
    else:
        manifest = inference_service(name, location, lora_modules=lora or None, **opts)
    annotations = manifest["metadata"].setdefault("annotations", {})
    annotations.update({"llmops/model-uri": model_uri, "llmops/registered-model": str(mv.name),
                        "llmops/model-version": str(mv.version), "llmops/model-kind": "adapter" if adapter
                        else "merged"})
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
            "--output and apply it with kubectl") from None


def apply(manifest: Mapping[str, Any], namespace: str | None = None, api: Any = None) -> dict[str, Any]:
    """Create the InferenceService, or replace it when it exists (HTTP 409); returns {action, namespace, object}.

    `api` is a `kubernetes.client.CustomObjectsApi` (or anything with its create/get/replace methods); without it
    one is built from the in-cluster config or the kubeconfig (LlmopsError when neither exists).
    """
    from kubernetes.client.exceptions import ApiException

    manifest = json.loads(json.dumps(dict(manifest)))  # a deep copy we may edit
    ns = namespace or manifest.get("metadata", {}).get("namespace")
    if api is None:
        from kubernetes import client

        context_ns = _load_cluster_config()
        ns = ns or context_ns
        api = client.CustomObjectsApi()
    ns = ns or "default"
    manifest.setdefault("metadata", {})["namespace"] = ns
    name = validate_name(manifest["metadata"].get("name", ""))
    try:
        obj = api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, manifest)
        return {"action": "created", "namespace": ns, "object": obj}
    except ApiException as e:
        if e.status != 409:
            raise LlmopsError(f"kserve: creating InferenceService {ns}/{name} failed: {e.status} {e.reason}; "
                              f"{_api_message(e)}") from None
    try:
        current = api.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        manifest["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        obj = api.replace_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, manifest)
    except ApiException as e:
        raise LlmopsError(f"kserve: replacing InferenceService {ns}/{name} failed: {e.status} {e.reason}; "
                          f"{_api_message(e)}") from None
    return {"action": "replaced", "namespace": ns, "object": obj}


def _api_message(err: Any) -> str:
    try:
        return str(json.loads(err.body).get("message", ""))[:400]
    except (TypeError, ValueError, AttributeError):
        return str(getattr(err, "body", "") or "")[:400]


def kfp_options(kfp: Any) -> dict[str, Any]:
    """`inference_service` options from the run config's `kfp` section (KfpSettings): GPUs and placement."""
    return {"gpus": kfp.gpus, "gpu_resource": kfp.gpu_resource, "cpu": kfp.cpu_request,
            "memory": kfp.memory_request, "node_selector": dict(kfp.node_selector) if kfp.gpus else None,
            "tolerations": list(kfp.tolerations) if kfp.gpus else None}


def deploy_kserve(model_uri: str, output_path: str | Path | None = None, apply_now: bool = False,
                  namespace: str | None = None, tracking_uri: str | None = None, api: Any = None,
                  **opts: Any) -> dict[str, Any]:
    """Build the InferenceService for a registered model, write it (when `output_path`) and apply it (when
    `apply_now`). Returns {name, namespace, manifest, yaml, output, applied (created/replaced or None)}."""
    manifest = manifest_for_registered(model_uri, tracking_uri=tracking_uri, namespace=namespace, **opts)
    result: dict[str, Any] = {"name": manifest["metadata"]["name"], "namespace": namespace, "manifest": manifest,
                              "yaml": to_yaml(manifest), "output": None, "applied": None}
    if output_path:
        result["output"] = str(write_manifest(manifest, output_path))
    if apply_now:
        outcome = apply(manifest, namespace=namespace, api=api)
        result["applied"], result["namespace"] = outcome["action"], outcome["namespace"]
    return result
