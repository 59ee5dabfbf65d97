"""Multi-node training as a Kubeflow Trainer TrainJob, built and submitted with the Kubeflow SDK's TrainerClient.

The train step of the pipeline calls `trainjob_launch.launch()` when `kfp.num_nodes > 1`: it submits a TrainJob on the
`kfp.trainer_runtime` runtime (torch-distributed) that runs `torchrun -m llmops.cli train CONFIG --output DIR` on
every node, waits for it and streams node 0's logs. The job's name comes from `job_name(key)`, so a retried step
finds its TrainJob and re-attaches to it instead of starting a second one.

The Trainer's torch plugin sets PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR and PET_MASTER_PORT
in the `node` container, and torchrun reads them as its defaults, so the command carries no rendezvous flags.

`kubeflow` is imported inside the functions: importing this module (and the CLI) stays fast.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmops.errors import ConfigError

if TYPE_CHECKING:
    from llmops.config import RunConfig

TRAINJOB_API_VERSION = "trainer.kubeflow.org/v1alpha1"
# The TrainJob CRD allows RFC 1035 labels of <= 63 characters. JobSet names the node pods' hostnames
# `<name>-node-0-<i>` and the master `<name>-node-0-0.<name>`, each a DNS label (<= 63): 40 leaves room for both.
MAX_NAME_LEN = 40
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_HASH_LEN = 10
_PREFIX = "llmops-"
# The replicated job and container of the torch-distributed runtime; the runtime patches target them.
NODE = "node"
_SHM_VOLUME = "dshm"
_WORK_VOLUME = "llmops-work"
DEFAULT_MOUNT = "/mnt/llmops"
# Conditions the SDK reports for a TrainJob (kubeflow.trainer.constants).


def job_name(key: str) -> str:
    """The TrainJob name for a stable key (e.g. the KFP run id + "-train"): the same key gives the same name.

    `llmops-<readable part of the key>-<10 hex of sha256(key)>`, lowercase, starting with a letter, at most
    MAX_NAME_LEN characters; the hash keeps keys that differ only in case or punctuation apart.
    """
    if not isinstance(key, str) or not key.strip():
        raise ConfigError("TrainJob name: the key is empty; pass a stable key such as the KFP run id + '-train'")
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:_HASH_LEN]
    slug = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")
    room = MAX_NAME_LEN - len(_PREFIX) - _HASH_LEN - 1  # 1 for the "-" before the hash
    slug = slug[:room].rstrip("-")
    return f"{_PREFIX}{slug}-{digest}" if slug else f"{_PREFIX}{digest}"


def check_name(name: str, num_nodes: int = 1) -> str:
    """`name` if the Trainer and JobSet accept it for `num_nodes` nodes, else a ConfigError saying why."""
    host = f"{name}-{NODE}-0-{max(num_nodes - 1, 0)}"  # the longest node hostname JobSet derives from it
    if not _DNS1035.match(name or "") or len(name) > 63 or len(host) > 63:
        raise ConfigError(
            f"TrainJob name {name!r} is not usable: it must be lowercase letters, digits and '-', start with a "
            f"letter, end with a letter or digit, and leave room for the node hostname {host!r} (<= 63 characters); "
            "use llmops.kfp.trainjob.job_name(key) to derive one"
        )
    return name


@dataclass
class TrainJobRequest:
    """The Kubeflow SDK objects of one TrainJob: `TrainerClient.train(**request.kwargs())` submits it."""

    runtime: Any  # kubeflow.trainer.Runtime
    trainer: Any  # kubeflow.trainer.CustomTrainerContainer
    options: list[Any] = field(default_factory=list)  # kubeflow.trainer.options.*

    def kwargs(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "trainer": self.trainer, "options": list(self.options)}


def train_command(config_uri: str, output_dir: str) -> tuple[list[str], list[str]]:
    """(command, args) of every node: torchrun (ranks from the runtime's PET_* env) running `llmops.cli train`."""
    return ["torchrun"], ["--module", "llmops.cli", "train", config_uri, "--output", output_dir]


def default_runtime(cfg: RunConfig) -> Any:
    """The ClusterTrainingRuntime `cfg.kfp.trainer_runtime` as an SDK Runtime object (no API call)."""
    from kubeflow.trainer import Runtime, RuntimeKind, RuntimeTrainer, TrainerType

    trainer = RuntimeTrainer(trainer_type=TrainerType.CUSTOM_TRAINER, framework="torch", image=cfg.kfp.image)
    return Runtime(name=cfg.kfp.trainer_runtime, trainer=trainer, kind=RuntimeKind.CLUSTER_TRAINING_RUNTIME)


def _resources(cfg: RunConfig) -> dict[str, str]:
    # Strings: the SDK turns ints into floats ("nvidia.com/gpu: 8.0"). It sets requests == limits.
    resources = {"cpu": str(cfg.kfp.cpu_limit), "memory": str(cfg.kfp.memory_limit)}
    if cfg.kfp.gpus > 0:
        resources[cfg.kfp.gpu_resource] = str(cfg.kfp.gpus)
    return resources


def _env(cfg: RunConfig, name: str) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": cfg.kfp.tracking_uri,
        "LLMOPS_TRAINJOB": name,
        "PYTHONUNBUFFERED": "1",  # logs reach `kubectl logs` (and launch()'s stream) as they are written
        "TOKENIZERS_PARALLELISM": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "NCCL_DEBUG": "WARN",
    }


def build_trainjob(
    cfg: RunConfig,
    config_uri: str,
    output_dir: str,
    name: str,
    runtime: Any = None,
    pvc_name: str | None = None,
    mount_path: str = DEFAULT_MOUNT,
) -> TrainJobRequest:
    """The SDK objects of the train TrainJob: image, nodes, per-node resources, env, command and pod placement.

    `runtime` is the SDK Runtime to run on (launch() passes the one the cluster reports); None builds the
    ClusterTrainingRuntime `cfg.kfp.trainer_runtime` without asking a cluster. `pvc_name` mounts that
    PersistentVolumeClaim at `mount_path` on every node: `llmops train` reads its config and writes its output
    as local paths, so with several nodes they must live on a volume every node mounts (ReadWriteMany).
    """
    from kubeflow.trainer import CustomTrainerContainer

    k = cfg.kfp
    check_name(name, k.num_nodes)
    for what, value in (("config URI", config_uri), ("output directory", output_dir)):
        if not value or not str(value).strip():
            raise ConfigError(
                f"TrainJob {name}: the {what} is empty; every node needs one it can read (s3:// or a shared volume)"
            )
    trainer = CustomTrainerContainer(
        image=k.image, num_nodes=k.num_nodes, resources_per_node=_resources(cfg), env=_env(cfg, name)
    )
    options = _options(cfg, config_uri, output_dir, name, _runtime_patch(cfg, pvc_name, mount_path))
    return TrainJobRequest(
        runtime=runtime if runtime is not None else default_runtime(cfg), trainer=trainer, options=options
    )


def _secret_env(cfg: RunConfig) -> list[dict[str, Any]]:
    """The `node` container's env entries read from the secrets in `kfp.secrets`."""
    return [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": key, "optional": s.optional}}}
        for s in cfg.kfp.secrets
        for key, var in s.env.items()
    ]


def _volumes(cfg: RunConfig, pvc_name: str | None, mount_path: str) -> tuple[list[dict], list[dict]]:
    """(pod volumes, `node` container mounts): a memory-backed /dev/shm, and the shared PVC when there is one."""
    volumes = [{"name": _SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": cfg.kfp.shm_size}}]
    mounts = [{"name": _SHM_VOLUME, "mountPath": "/dev/shm"}]
    if pvc_name:
        volumes.append({"name": _WORK_VOLUME, "persistentVolumeClaim": {"claimName": pvc_name}})
        mounts.append({"name": _WORK_VOLUME, "mountPath": mount_path})
    return volumes, mounts


def _runtime_patch(cfg: RunConfig, pvc_name: str | None, mount_path: str) -> Any:
    """The RuntimePatch of the `node` pods: secret env, volumes and mounts, node selector and tolerations."""
    from kubeflow.trainer.options import (
        ContainerPatch,
        JobSetSpecPatch,
        JobSetTemplatePatch,
        JobSpecPatch,
        JobTemplatePatch,
        PodSpecPatch,
        PodTemplatePatch,
        ReplicatedJobPatch,
        RuntimePatch,
        TrainingRuntimeSpecPatch,
    )

    k = cfg.kfp
    secret_env = _secret_env(cfg)
    volumes, mounts = _volumes(cfg, pvc_name, mount_path)
    container = ContainerPatch(name=NODE, env=secret_env or None, volume_mounts=mounts)
    pod = PodSpecPatch(
        node_selector=dict(k.node_selector) or None,
        tolerations=[dict(t) for t in k.tolerations] or None,
        volumes=volumes,
        containers=[container],
    )
    return RuntimePatch(
        training_runtime_spec=TrainingRuntimeSpecPatch(
            template=JobSetTemplatePatch(
                spec=JobSetSpecPatch(
                    replicated_jobs=[
                        ReplicatedJobPatch(
                            name=NODE,
                            template=JobTemplatePatch(spec=JobSpecPatch(template=PodTemplatePatch(spec=pod))),
                        )
                    ]
                )
            )
        )
    )


def _options(cfg: RunConfig, config_uri: str, output_dir: str, name: str, patch: Any) -> list[Any]:
    """The TrainerClient.train() options: name, command and args, labels, annotations, deadline and `patch`."""
    from kubeflow.trainer.options import (
        ActiveDeadlineSeconds,
        Annotations,
        Labels,
        Name,
        TrainerArgs,
        TrainerCommand,
    )

    command, args = train_command(config_uri, output_dir)
    return [
        Name(name=name),
        TrainerCommand(command=command),
        TrainerArgs(args=args),
        Labels(labels={"app.kubernetes.io/part-of": "llmops", "llmops/step": "train"}),
        Annotations(annotations={"llmops/config": config_uri, "llmops/output": output_dir}),
        ActiveDeadlineSeconds(seconds=int(cfg.kfp.train_timeout_s)),
        patch,
    ]


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    log = logging.getLogger(logger_name)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def manifest(
    cfg: RunConfig,
    config_uri: str,
    output_dir: str,
    name: str,
    namespace: str | None = None,
    pvc_name: str | None = None,
    mount_path: str = DEFAULT_MOUNT,
) -> dict:
    """The TrainJob body exactly as TrainerClient.train() submits it, without a cluster (a dry run).

    A TrainerClient on a Kubernetes backend whose API address is a closed local port (so no kubeconfig is read;
    the SDK's start-up version check fails at once and is silenced), a Runtime object instead of the runtime's
    name (so nothing is looked up), and, on this private client only, `create_namespaced_custom_object`
    replaced by a function that keeps the body instead of sending it.
    """
    from kubeflow.trainer import KubernetesBackendConfig, TrainerClient
    from kubernetes.client import Configuration

    dry = Configuration()
    dry.host = "http://127.0.0.1:1"
    dry.retries = False  # one refused connection, no urllib3 retries
    backend = KubernetesBackendConfig(namespace=namespace or cfg.kfp.namespace or "default", client_configuration=dry)
    with _quiet("kubeflow.trainer.backends.kubernetes.backend"), _quiet("urllib3.connectionpool"):
        client = TrainerClient(backend_config=backend)
    captured: dict[str, Any] = {}

    def keep(group: str, version: str, namespace: str, plural: str, body: dict) -> dict:
        captured.update(group=group, version=version, plural=plural, body=body)
        return body

    client.backend.custom_api.create_namespaced_custom_object = keep
    request = build_trainjob(cfg, config_uri, output_dir, name, pvc_name=pvc_name, mount_path=mount_path)
    client.train(**request.kwargs())
    return captured["body"]
