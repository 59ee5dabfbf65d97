"""The Kubeflow pipeline: validate -> baseline-eval -> train -> eval -> gate -> register -> deploy (if it won).

One definition for the cluster and for `kfp.local`. On a cluster (`cluster=True`) every step but deploy mounts the
run's own volume (a PVC named after the KFP run, created first and deleted after register, so two runs never share
files; it is kept when a step fails, for a retry or a look); every step gets MLFLOW_TRACKING_URI and the configured
secrets as environment, and a deadline. The GPU steps (baseline-eval, train, eval) request `kfp.gpus` GPUs, CPU and
memory, run on GPU nodes (node selector, tolerations) and get a memory-backed /dev/shm; train retries with
exponential backoff (it resumes from its checkpoints on the same volume) and is not cached. `kfp.local` runs only
lightweight Python components and ignores Kubernetes settings, so the local pipeline leaves them out and works in a
local folder instead of the volume.
"""

import json
from collections.abc import Callable
from typing import Any

from kfp import dsl
from llmops.config import KfpSettings, RunConfig
from llmops.kfp.components import make_components

WORKDIR = "/workspace"
SHM_VOLUME = "dshm"


def config_json(cfg: RunConfig) -> str:
    """The resolved run config on one line (JSON), the pipeline's `config` parameter."""
    return json.dumps(cfg.to_dict())


def _placement(k: KfpSettings, cluster: bool, pvc: Any) -> Callable[..., Any]:
    """A function that sets a task's environment, volume, secrets, resources and deadline."""
    from kfp import kubernetes

    def place(task: Any, gpu: bool = False, timeout_s: int | None = None, volume: bool = True) -> Any:
        task.set_env_variable("MLFLOW_TRACKING_URI", k.tracking_uri)
        task.set_env_variable("MLFLOW_DISABLE_TELEMETRY", "true")
        task.set_caching_options(False)  # every step reads and writes the run's volume and MLflow run
        if not cluster:
            return task
        task.set_env_variable("HF_HOME", f"{WORKDIR}/hf-cache")
        if volume:
            kubernetes.mount_pvc(task, pvc_name=pvc.outputs["name"], mount_path=WORKDIR)
        for secret in k.secrets:
            kubernetes.use_secret_as_env(
                task, secret_name=secret.secret, secret_key_to_env=dict(secret.env), optional=secret.optional
            )
        kubernetes.set_timeout(task, timeout_s or k.step_timeout_s)
        if not gpu:
            return task.set_cpu_request(k.light_cpu).set_memory_request(k.light_memory)
        task.set_cpu_request(k.cpu_request).set_cpu_limit(k.cpu_limit)
        task.set_memory_request(k.memory_request).set_memory_limit(k.memory_limit)
        if k.gpus:
            task.set_accelerator_type(k.gpu_resource).set_accelerator_limit(k.gpus)
        for key, value in k.node_selector.items():
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        for toleration in k.tolerations:
            kubernetes.add_toleration(task, **toleration)
        kubernetes.empty_dir_mount(
            task, volume_name=SHM_VOLUME, mount_path="/dev/shm", medium="Memory", size_limit=k.shm_size
        )
        return task

    return place


def build_pipeline(cfg: RunConfig, cluster: bool = True, workdir: str = WORKDIR) -> Any:
    """The pipeline function for `cfg` (its config is the default of the `config` parameter)."""
    k = cfg.kfp
    ops = make_components(k.image)
    default_config = config_json(cfg)

    @dsl.pipeline(
        name=k.pipeline_name,
        description="llmops: validate, baseline-eval, train, eval, gate, register, deploy the winner",
    )
    def llmops_pipeline(config: str = default_config, workdir: str = workdir) -> None:
        pvc = None
        if cluster:
            from kfp import kubernetes

            pvc = kubernetes.CreatePVC(
                pvc_name=f"llmops-{dsl.PIPELINE_JOB_ID_PLACEHOLDER}",
                access_modes=[k.access_mode],
                size=k.volume_size,
                storage_class_name=k.storage_class,
            )
            pvc.set_display_name("run-volume").set_caching_options(False)
        place = _placement(k, cluster, pvc)
        validate = place(ops.validate(config=config, workdir=workdir).set_display_name("validate"))
        run_dir = validate.output
        baseline = place(ops.baseline(run_dir=run_dir).set_display_name("baseline-eval"), gpu=True)
        volume = pvc.outputs["name"] if cluster else ""
        train = place(
            ops.train(run_dir=run_dir, volume=volume).set_display_name("train").after(baseline),
            gpu=True,
            timeout_s=k.train_timeout_s,
        )
        train.set_retry(
            num_retries=k.train_retries,
            backoff_duration=k.retry_backoff,
            backoff_factor=2.0,
            backoff_max_duration="3600s",
        )
        if k.cache_training:
            train.set_caching_options(True)
        evaluate = place(ops.evaluate(run_dir=run_dir).set_display_name("eval").after(train), gpu=True)
        gate = place(ops.gate(run_dir=run_dir).set_display_name("gate").after(evaluate))
        register = place(ops.register(run_dir=run_dir).set_display_name("register").after(gate))
        with dsl.If(gate.output == True, name="model-won"):  # noqa: E712 - a KFP condition, compiled, not evaluated
            place(ops.deploy(config=config, registration=register.output).set_display_name("deploy"), volume=False)
        if cluster:
            from kfp import kubernetes

            cleanup = kubernetes.DeletePVC(pvc_name=pvc.outputs["name"]).after(register)
            cleanup.set_display_name("delete-run-volume").set_caching_options(False)

    return llmops_pipeline
