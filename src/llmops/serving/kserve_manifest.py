"""The KServe InferenceService manifest serving a model on the Hugging Face serving runtime with vLLM.

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

Building it needs neither a cluster nor MLflow: `kserve.py` resolves registered versions and applies it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferenceService"
MODEL_MOUNT = "/mnt/models"
BASE_MOUNT = f"{MODEL_MOUNT}/base"
ADAPTER_MOUNT = f"{MODEL_MOUNT}/adapters"

# KServe requires a DNS-1123 label that starts with a letter (the name becomes a Service and a hostname).
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LORA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def validate_name(name: str) -> str:
    """`name` if it is a valid InferenceService name (DNS-1123 label starting with a letter); else ConfigError."""
    if not isinstance(name, str) or len(name) > 63 or not _NAME.match(name):
        raise ConfigError(
            f"kserve: '{name}' is not a valid InferenceService name: use at most 63 lowercase letters, digits and "
            "'-', starting with a letter and ending with a letter or digit (e.g. llmops-idp-sft)"
        )
    return name


def service_name(model_name: str) -> str:
    """A DNS-safe InferenceService name derived from a registered model name (`My_Model.v2` -> `my-model-v2`)."""
    name = re.sub(r"[^a-z0-9-]+", "-", model_name.lower())
    name = re.sub(r"-{2,}", "-", name).strip("-")
    if not name or not name[0].isalpha():
        name = f"m-{name}".rstrip("-")
    return validate_name(name[:63].rstrip("-"))


def is_uri(value: str) -> bool:
    """Whether `value` is a URI with a scheme (s3://, hf://, ...) rather than a path or a hub id."""
    return "://" in value


def base_uri(base: str) -> str:
    """The storage URI of a base model named by an adapter: a URI as is, a hub id as `hf://ORG/NAME`."""
    base = base.strip()
    if is_uri(base):
        return base
    if _HUB_ID.match(base) and not base.startswith((".", "/", "~")) and not Path(base).exists():
        return f"hf://{base}"
    raise ConfigError(
        f"kserve: the adapter's base model '{base}' is a local path the cluster cannot fetch; pass the base model's "
        "storage URI (--base-storage-uri s3://... or hf://ORG/NAME)"
    )


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
    _check_service(name, namespace, gpus, storage_uri, base_storage_uri, max_model_len)
    lora = _lora_modules(lora_modules, gpus)
    args = [f"--model_name={served_name or name}"]
    if gpus:
        args.append("--backend=vllm")
    model: dict[str, Any] = {"modelFormat": {"name": "huggingface"}}
    if runtime_version:
        model["runtimeVersion"] = runtime_version
    if lora:
        storage, lora_args = _lora_storage(lora, base_storage_uri or storage_uri, mount_lora)
        model.update(storage)
        args += lora_args
    else:
        model["storageUri"] = storage_uri
    if max_model_len:
        args.append(f"--max-model-len={max_model_len}")
    args += [str(a) for a in extra_args]
    model["args"] = args
    if image:
        model["image"] = image
    model["resources"] = _resources(gpus, gpu_resource, cpu, memory)
    predictor = _predictor(model, service_account, node_selector, tolerations)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": _metadata(name, namespace),
        "spec": {"predictor": predictor},
    }


def _check_service(
    name: str,
    namespace: str | None,
    gpus: int,
    storage_uri: str,
    base_storage_uri: str | None,
    max_model_len: int | None,
) -> None:
    validate_name(name)
    if namespace is not None and (len(namespace) > 63 or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", namespace)):
        raise ConfigError(f"kserve: '{namespace}' is not a valid Kubernetes namespace")
    if not isinstance(gpus, int) or gpus < 0:
        raise ConfigError(f"kserve: gpus must be a whole number >= 0, not {gpus!r}")
    if not storage_uri and not base_storage_uri:
        raise ConfigError("kserve: no storage URI for the model")
    if max_model_len is not None and max_model_len < 1:
        raise ConfigError("kserve: max_model_len must be positive")


def _lora_modules(lora_modules: Mapping[str, str] | None, gpus: int) -> dict[str, str]:
    """The LoRA modules as a dict {name: path}, checked: well-formed names and paths, and a GPU to serve them."""
    lora = dict(lora_modules or {})
    if lora and gpus == 0:
        raise ConfigError(
            "kserve: LoRA adapters are served by the vLLM backend, which needs a GPU (gpus >= 1); "
            "merge the adapter to serve it on CPU"
        )
    for lora_name, path in lora.items():
        if not _LORA_NAME.match(lora_name) or not path:
            raise ConfigError(
                f"kserve: bad LoRA module '{lora_name}={path}': expected NAME=PATH (NAME: letters, "
                "digits, '.', '_', '-')"
            )
    return lora


def _lora_storage(lora: dict[str, str], base: str, mount_lora: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
    """(the model's storage fields, the vLLM args) serving the adapters `lora` on the base model `base`."""
    mounted = set(mount_lora)
    remote = {k: v for k, v in lora.items() if is_uri(v) or k in mounted}
    args: list[str] = []
    if remote:
        # The storage initializer fetches base and adapters; storageUri and storageUris are mutually exclusive.
        storage: dict[str, Any] = {
            "storageUris": [{"uri": base, "mountPath": BASE_MOUNT}]
            + [{"uri": uri, "mountPath": f"{ADAPTER_MOUNT}/{k}"} for k, uri in remote.items()]
        }
        args.append(f"--model_dir={BASE_MOUNT}")
    else:
        storage = {"storageUri": base}
    modules = [f"{k}={ADAPTER_MOUNT}/{k}" if k in remote else f"{k}={v}" for k, v in lora.items()]
    args += ["--enable-lora", "--lora-modules", *modules]
    if len(lora) > 1:
        args.append(f"--max-loras={len(lora)}")
    return storage, args


def _predictor(
    model: dict[str, Any],
    service_account: str | None,
    node_selector: Mapping[str, str] | None,
    tolerations: Iterable[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    predictor: dict[str, Any] = {"model": model}
    if service_account:
        predictor["serviceAccountName"] = service_account
    if node_selector:
        predictor["nodeSelector"] = dict(node_selector)
    if tolerations:
        predictor["tolerations"] = [dict(t) for t in tolerations]
    return predictor


def _metadata(name: str, namespace: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/managed-by": "llmops"}}
    if namespace:
        metadata["namespace"] = namespace
    return metadata
