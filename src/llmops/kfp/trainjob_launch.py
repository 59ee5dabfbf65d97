"""Submitting a TrainJob (`trainjob.build_trainjob`) with the Kubeflow SDK's TrainerClient, re-attaching to one
that already exists (a retried step), waiting for it and streaming its node-0 log; failures become one LlmopsError
with the kubectl commands to look further. `kubeflow` is imported inside the functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmops.errors import LlmopsError
from llmops.kfp.trainjob import DEFAULT_MOUNT, NODE, TrainJobRequest, build_trainjob, check_name

if TYPE_CHECKING:
    from llmops.config import RunConfig

CREATED, RUNNING, COMPLETE, FAILED = "Created", "Running", "Complete", "Failed"


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
    job = _existing(client, name, ns)
    if job is not None:
        _reattach(job, name, ns, log)
    else:
        runtime = _runtime(client, cfg, ns)
        request = build_trainjob(cfg, config_uri, output_dir, name, runtime, pvc_name=pvc_name, mount_path=mount_path)
        _submit(client, request, cfg, name, log)
    if not wait:
        return name
    _follow(client, name, deadline, poll_s, ns, log)
    return name


def _existing(client: Any, name: str, ns: str | None) -> Any:
    """The TrainJob `name` if it exists (a retried step), else None; other API errors are an LlmopsError."""
    try:
        return client.get_job(name)
    except Exception as e:
        if _api_status(e) != 404:
            raise LlmopsError(
                f"cannot read TrainJob {name}: {_reason(e)}; check access with kubectl get trainjobs"
                f"{' -n ' + ns if ns else ''}"
            ) from e
        return None


def _reattach(job: Any, name: str, ns: str | None, log: Callable[[str], Any]) -> None:
    """Say that the existing `job` is followed; one that already failed is an LlmopsError saying how to retrain."""
    log(f"TrainJob {name} already exists ({_status_of(job) or 'no status yet'}): re-attaching to it")
    if _status_of(job) == FAILED:
        raise LlmopsError(
            f"TrainJob {name} already failed; see why with {_kubectl(name, ns)}. To train again, delete it:"
            f" kubectl delete trainjob{' -n ' + ns if ns else ''} {name} (training resumes from checkpoints)"
        )


def _submit(client: Any, request: TrainJobRequest, cfg: RunConfig, name: str, log: Callable[[str], Any]) -> None:
    """Create the TrainJob; one a concurrent attempt created first (409) is followed instead."""
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


def _follow(client: Any, name: str, deadline: float, poll_s: int, ns: str | None, log: Callable[[str], Any]) -> None:
    """Wait until the job runs, stream its node-0 log, wait until it ends; a Failed job is an LlmopsError."""
    job = _wait(client, name, {RUNNING, COMPLETE, FAILED}, deadline, poll_s, ns)
    _stream(client, name, follow=_status_of(job) == RUNNING, log=log)
    if _status_of(job) == RUNNING:
        job = _wait(client, name, {COMPLETE, FAILED}, deadline, poll_s, ns)
    if _status_of(job) == FAILED:
        raise LlmopsError(f"TrainJob {name} failed; see its logs: {_kubectl(name, ns)}")
    log(f"TrainJob {name} complete")
