"""Multi-node training as a Kubeflow Trainer TrainJob, built and submitted with the Kubeflow SDK's TrainerClient.

The train step of the pipeline calls `launch()` when `kfp.num_nodes > 1`: it submits a TrainJob on the
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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmops.errors import ConfigError, LlmopsError

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
CREATED, RUNNING, COMPLETE, FAILED = "Created", "Running", "Complete", "Failed"


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
    from kubeflow.trainer.options import (
        ActiveDeadlineSeconds,
        Annotations,
        ContainerPatch,
        JobSetSpecPatch,
        JobSetTemplatePatch,
        JobSpecPatch,
        JobTemplatePatch,
        Labels,
        Name,
        PodSpecPatch,
        PodTemplatePatch,
        ReplicatedJobPatch,
        RuntimePatch,
        TrainerArgs,
        TrainerCommand,
        TrainingRuntimeSpecPatch,
    )

    k = cfg.kfp
    check_name(name, k.num_nodes)
    for what, value in (("config URI", config_uri), ("output directory", output_dir)):
        if not value or not str(value).strip():
            raise ConfigError(
                f"TrainJob {name}: the {what} is empty; every node needs one it can read (s3:// or a shared volume)"
            )
    command, args = train_command(config_uri, output_dir)
    trainer = CustomTrainerContainer(
        image=k.image, num_nodes=k.num_nodes, resources_per_node=_resources(cfg), env=_env(cfg, name)
    )
    secret_env = [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": key, "optional": s.optional}}}
        for s in k.secrets
        for key, var in s.env.items()
    ]
    volumes = [{"name": _SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": k.shm_size}}]
    mounts = [{"name": _SHM_VOLUME, "mountPath": "/dev/shm"}]
    if pvc_name:
        volumes.append({"name": _WORK_VOLUME, "persistentVolumeClaim": {"claimName": pvc_name}})
        mounts.append({"name": _WORK_VOLUME, "mountPath": mount_path})
    container = ContainerPatch(name=NODE, env=secret_env or None, volume_mounts=mounts)
    pod = PodSpecPatch(
        node_selector=dict(k.node_selector) or None,
        tolerations=[dict(t) for t in k.tolerations] or None,
        volumes=volumes,
        containers=[container],
    )
    patch = RuntimePatch(
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
    options = [
        Name(name=name),
        TrainerCommand(command=command),
        TrainerArgs(args=args),
        Labels(labels={"app.kubernetes.io/part-of": "llmops", "llmops/step": "train"}),
        Annotations(annotations={"llmops/config": config_uri, "llmops/output": output_dir}),
        ActiveDeadlineSeconds(seconds=int(k.train_timeout_s)),
        patch,
    ]
    return TrainJobRequest(runtime=runtime if runtime is not None else default_runtime(cfg), trainer=trainer,
                           options=options)


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


# ---------------------------------------------------------------------------------------------------------------
# Submitting, re-attaching, waiting


def _api_status(exc: BaseException | None) -> int | None:
    """The HTTP status of the Kubernetes ApiException behind an SDK error (the SDK wraps them in RuntimeError)."""
    seen = 0
    while exc is not None and seen < 10:
        status = getattr(exc, "status", None)
        if isinstance(status, int):
            return status
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _reason(exc: BaseException) -> str:
    """The SDK's message plus the Kubernetes API's status and reason behind it, if any."""
    cause = exc.__cause__
    if cause is not None and getattr(cause, "reason", None):
        return f"{exc} ({getattr(cause, 'status', '?')} {cause.reason})"
    return str(exc)


def _kubectl(name: str, ns: str | None) -> str:
    n = f" -n {ns}" if ns else ""
    return (
        f"kubectl logs{n} -l jobset.sigs.k8s.io/jobset-name={name} -c {NODE} --prefix --tail=-1"
        f" (status and events: kubectl describe trainjob{n} {name})"
    )


def _client(namespace: str | None) -> Any:
    """A real TrainerClient: in-cluster credentials inside a pod, else the kubeconfig (KUBECONFIG or ~/.kube)."""
    from kubeflow.trainer import KubernetesBackendConfig, TrainerClient

    try:
        return TrainerClient(backend_config=KubernetesBackendConfig(namespace=namespace))
    except Exception as e:  # kubernetes.config.ConfigException, a missing file, ...
        raise LlmopsError(
            f"cannot reach Kubernetes to launch the TrainJob: {e}; run inside the cluster (a pipeline step) "
            "or point KUBECONFIG at a kubeconfig whose context can create trainjobs.trainer.kubeflow.org"
        ) from e


def _runtime(client: Any, cfg: RunConfig, ns: str | None) -> Any:
    name = cfg.kfp.trainer_runtime
    try:
        return client.get_runtime(name)
    except Exception as e:
        raise LlmopsError(
            f"Kubeflow Trainer runtime {name!r} not found in namespace {ns or '(default)'} or cluster-wide:"
            f" {_reason(e)}; install Kubeflow Trainer v2 and its runtimes (kubectl get clustertrainingruntimes) or set"
            f" kfp.trainer_runtime"
        ) from e


def _status_of(job: Any) -> str:
    return str(getattr(job, "status", "") or "")


def _stream(client: Any, name: str, follow: bool, log: Callable[[str], Any]) -> None:
    """Node 0's log lines to `log`; a broken stream is reported, not fatal (the job's status decides)."""
    try:
        for line in client.get_job_logs(name, follow=follow):
            log(str(line).rstrip("\n"))
    except Exception as e:
        log(f"[llmops] log stream of TrainJob {name} ended: {_reason(e)}")


def _wait(client: Any, name: str, statuses: set[str], deadline: float, poll_s: int, ns: str | None) -> Any:
    timeout = max(int(deadline - time.monotonic()), poll_s + 1)
    try:
        return client.wait_for_job_status(name, status=statuses, timeout=timeout, polling_interval=poll_s)
    except TimeoutError as e:
        raise LlmopsError(
            f"TrainJob {name} did not reach {'/'.join(sorted(statuses))} within {timeout} s; it may still be running."
            f" Watch it with kubectl get trainjob{' -n ' + ns if ns else ''} {name} -w; {_kubectl(name, ns)}"
        ) from e
    except Exception as e:
        raise LlmopsError(f"cannot follow TrainJob {name}: {_reason(e)}; {_kubectl(name, ns)}") from e


def launch(
    cfg: RunConfig,
    config_uri: str,
    output_dir: str,
    name: str,
    namespace: str | None = None,
    wait: bool = True,
    log: Callable[[str], Any] = print,
    client: Any = None,
    poll_s: int = 10,
    timeout_s: int | None = None,
    pvc_name: str | None = None,
    mount_path: str = DEFAULT_MOUNT,
) -> str:
    """Submit the TrainJob `name` (or re-attach to it if it already exists), wait for it and stream its logs.

    `client` is a kubeflow.trainer.TrainerClient (None: one for `namespace`, else kfp.namespace, else the
    kubeconfig's / pod's namespace). Returns the job name once it is Complete (or at once with wait=False).
    A job that is (or was already) Failed raises LlmopsError with the kubectl commands that show why.
    `timeout_s` defaults to kfp.train_timeout_s plus 10 minutes: the TrainJob's own deadline ends it first.
    `pvc_name`/`mount_path`: the shared volume holding `config_uri` and `output_dir` (see build_trainjob).
    """
    ns = namespace or cfg.kfp.namespace
    check_name(name, cfg.kfp.num_nodes)
    if client is None:
        client = _client(ns)
    ns = ns or getattr(getattr(client, "backend", None), "namespace", None)
    deadline = time.monotonic() + (timeout_s if timeout_s is not None else cfg.kfp.train_timeout_s + 600)

    try:
        job = client.get_job(name)
    except Exception as e:
        if _api_status(e) != 404:
            raise LlmopsError(
                f"cannot read TrainJob {name}: {_reason(e)}; check access with kubectl get trainjobs"
                f"{' -n ' + ns if ns else ''}"
            ) from e
        job = None

    if job is not None:
        log(f"TrainJob {name} already exists ({_status_of(job) or 'no status yet'}): re-attaching to it")
        if _status_of(job) == FAILED:
            raise LlmopsError(
                f"TrainJob {name} already failed; see why with {_kubectl(name, ns)}. To train again, delete it:"
                f" kubectl delete trainjob{' -n ' + ns if ns else ''} {name} (training resumes from checkpoints)"
            )
    else:
        runtime = _runtime(client, cfg, ns)
        request = build_trainjob(cfg, config_uri, output_dir, name, runtime, pvc_name=pvc_name, mount_path=mount_path)
        try:
            client.train(**request.kwargs())
            log(f"submitted TrainJob {name} ({cfg.kfp.num_nodes} nodes x {cfg.kfp.gpus} GPU, {cfg.kfp.image})")
        except Exception as e:
            if _api_status(e) != 409:  # 409: a concurrent attempt created it first, follow that one
                raise LlmopsError(
                    f"cannot create TrainJob {name}: {_reason(e)}; check that Kubeflow Trainer v2 is installed"
                    f" (kubectl get crd trainjobs.trainer.kubeflow.org) and that you may create trainjobs"
                ) from e
            log(f"TrainJob {name} was created meanwhile: re-attaching to it")
    if not wait:
        return name

    job = _wait(client, name, {RUNNING, COMPLETE, FAILED}, deadline, poll_s, ns)
    _stream(client, name, follow=_status_of(job) == RUNNING, log=log)
    if _status_of(job) == RUNNING:
        job = _wait(client, name, {COMPLETE, FAILED}, deadline, poll_s, ns)
    if _status_of(job) == FAILED:
        raise LlmopsError(f"TrainJob {name} failed; see its logs: {_kubectl(name, ns)}")
    log(f"TrainJob {name} complete")
    return name
