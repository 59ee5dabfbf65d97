"""The multi-node TrainJob launcher (llmops.kfp.trainjob).

The manifest tests use the real Kubeflow SDK (TrainerClient, CustomTrainerContainer, the options) and check the
body it would submit. No Kubernetes cluster can run here, so launch() is tested against FakeTrainerClient, a
stand-in with TrainerClient's methods that returns the SDK's own TrainJob objects and raises the SDK's errors.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from llmops.config import RunConfig, build_config
from llmops.errors import ConfigError, LlmopsError
from llmops.kfp import trainjob as tj
from llmops.kfp.trainjob_launch import launch

KEY = "0f5c2d9e-4a1b-4c77-9a3e-5b2f8d1c7e60-train"
CONFIG_URI = "s3://llmops/runs/r1/config.yaml"
OUTPUT = "s3://llmops/runs/r1/train"
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _cfg(*overrides: str) -> RunConfig:
    return build_config(
        overrides=[
            "kfp.num_nodes=2",
            "kfp.gpus=4",
            "kfp.image=ghcr.io/acme/llmops:1.2.3",
            "kfp.tracking_uri=http://mlflow.example:5000",
            "kfp.namespace=team-a",
            *overrides,
        ]
    )


@pytest.fixture(scope="module")
def body() -> dict:
    return tj.manifest(_cfg(), CONFIG_URI, OUTPUT, tj.job_name(KEY))


def _node_pod_patch(body: dict) -> dict:
    (patch,) = body["spec"]["runtimePatches"]
    (rjob,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert rjob["name"] == "node"
    return rjob["template"]["spec"]["template"]["spec"]


# ------------------------------------------------------------------------------------------------ manifest


def test_manifest_is_a_two_node_trainjob_on_torch_distributed(body: dict) -> None:
    cfg = _cfg()
    assert body["kind"] == "TrainJob"
    assert body["apiVersion"] == "trainer.kubeflow.org/v1alpha1"
    assert body["metadata"]["name"] == tj.job_name(KEY)
    assert body["spec"]["runtimeRef"] == {"name": "torch-distributed", "kind": "ClusterTrainingRuntime"}
    trainer = body["spec"]["trainer"]
    assert trainer["numNodes"] == 2
    assert trainer["image"] == cfg.kfp.image == "ghcr.io/acme/llmops:1.2.3"
    assert body["spec"]["activeDeadlineSeconds"] == cfg.kfp.train_timeout_s


def test_manifest_resources_per_node_are_strings_as_requests_and_limits(body: dict) -> None:
    resources = body["spec"]["trainer"]["resourcesPerNode"]
    want = {"nvidia.com/gpu": "4", "cpu": "8", "memory": "64Gi"}  # cfg.kfp.gpus, cpu_limit, memory_limit
    assert resources["limits"] == want
    assert resources["requests"] == want
    assert not any(isinstance(v, float) for v in resources["limits"].values())  # the SDK's int -> 4.0 pitfall


def test_manifest_command_runs_llmops_train_under_torchrun(body: dict) -> None:
    trainer = body["spec"]["trainer"]
    line = " ".join(trainer["command"] + trainer["args"])
    assert trainer["command"] == ["torchrun"]
    assert "--module llmops.cli train" in line
    assert trainer["args"][-3:] == [CONFIG_URI, "--output", OUTPUT]
    # The runtime's torch plugin owns the rendezvous: no PET_* env and no rendezvous flags of ours.
    assert not any(e["name"].startswith("PET_") for e in trainer["env"])
    assert not any(a.startswith(("--nnodes", "--rdzv", "--master", "--node")) for a in trainer["args"])


def test_manifest_env_placement_and_secrets(body: dict) -> None:
    env = {e["name"]: e.get("value") for e in body["spec"]["trainer"]["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"
    assert env["LLMOPS_TRAINJOB"] == tj.job_name(KEY)
    pod = _node_pod_patch(body)
    cfg = _cfg()
    assert pod["nodeSelector"] == cfg.kfp.node_selector == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == cfg.kfp.tolerations
    (container,) = pod["containers"]
    assert container["name"] == "node"
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert refs["HF_TOKEN"] == {"name": "hf-token", "key": "token", "optional": True}
    assert {"AWS_ACCESS_KEY_ID", "MLFLOW_TRACKING_PASSWORD"} <= set(refs)
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in pod["volumes"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]


def test_manifest_is_stable_and_parses_as_the_trainer_api_model(body: dict) -> None:
    from kubeflow_trainer_api import models

    assert tj.manifest(_cfg(), CONFIG_URI, OUTPUT, tj.job_name(KEY)) == body
    parsed = models.TrainerV1alpha1TrainJob.from_dict(body)
    assert parsed.metadata.name == body["metadata"]["name"]
    assert parsed.spec.trainer.num_nodes == 2
    assert parsed.spec.runtime_patches[0].manager == "trainer.kubeflow.org/kubeflow-sdk"


def test_manifest_cpu_only_and_other_gpu_vendor() -> None:
    cpu = tj.manifest(_cfg("kfp.gpus=0", "kfp.node_selector={}", "kfp.tolerations=[]"), CONFIG_URI, OUTPUT, "llmops-a")
    assert cpu["spec"]["trainer"]["resourcesPerNode"]["limits"] == {"cpu": "8", "memory": "64Gi"}
    pod = _node_pod_patch(cpu)
    assert "nodeSelector" not in pod and "tolerations" not in pod
    amd = tj.manifest(_cfg("kfp.gpu_resource=amd.com/gpu", "kfp.gpus=8"), CONFIG_URI, OUTPUT, "llmops-b")
    assert amd["spec"]["trainer"]["resourcesPerNode"]["limits"]["amd.com/gpu"] == "8"


def test_manifest_mounts_the_shared_volume_on_every_node(body: dict) -> None:
    shared = tj.manifest(
        _cfg(), "/mnt/work/config.yaml", "/mnt/work/train", "llmops-c", pvc_name="run-pvc", mount_path="/mnt/work"
    )
    pod = _node_pod_patch(shared)
    assert {"name": "llmops-work", "persistentVolumeClaim": {"claimName": "run-pvc"}} in pod["volumes"]
    assert {"name": "llmops-work", "mountPath": "/mnt/work"} in pod["containers"][0]["volumeMounts"]
    assert not any("persistentVolumeClaim" in v for v in _node_pod_patch(body)["volumes"])  # only when asked


def test_build_trainjob_returns_the_sdk_objects() -> None:
    from kubeflow.trainer import CustomTrainerContainer, Runtime
    from kubeflow.trainer.options import Name, TrainerArgs, TrainerCommand

    request = tj.build_trainjob(_cfg(), CONFIG_URI, OUTPUT, "llmops-x")
    assert isinstance(request.runtime, Runtime) and isinstance(request.trainer, CustomTrainerContainer)
    assert request.trainer.num_nodes == 2
    kinds = {type(o) for o in request.options}
    assert {Name, TrainerCommand, TrainerArgs} <= kinds


@pytest.mark.parametrize("name", ["Bad_Name", "1starts-with-digit", "ends-with-dash-", "", "a" * 64])
def test_bad_names_are_config_errors(name: str) -> None:
    with pytest.raises(ConfigError, match="job_name"):
        tj.build_trainjob(_cfg(), CONFIG_URI, OUTPUT, name)


def test_name_too_long_for_the_node_hostnames_is_refused() -> None:
    name = "a" * 56  # a valid TrainJob name, but JobSet's hostname "<name>-node-0-1" would exceed 63
    assert DNS1035.match(name)
    with pytest.raises(ConfigError, match="node hostname"):
        tj.check_name(name, num_nodes=2)


def test_empty_config_uri_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="config URI"):
        tj.build_trainjob(_cfg(), "", OUTPUT, "llmops-x")


# ------------------------------------------------------------------------------------------------ job_name


@pytest.mark.parametrize(
    "key",
    [
        KEY,
        "A" * 500,
        "  Weird/Key_with.UPPER & spaces  ",
        "123-starts-with-digit",
        "---",
        "ünïcødé-rän",
        "x",
    ],
)
def test_job_name_is_valid_deterministic_and_short(key: str) -> None:
    name = tj.job_name(key)
    assert name == tj.job_name(key)
    assert DNS1035.match(name), name
    assert len(name) <= tj.MAX_NAME_LEN <= 63
    assert tj.check_name(name, num_nodes=99) == name  # "<name>-node-0-98" still fits a DNS label


def test_job_name_separates_keys_that_slug_alike() -> None:
    names = {tj.job_name(k) for k in ["run-1-train", "RUN_1_TRAIN", "run.1.train", "run-2-train"]}
    assert len(names) == 4
    assert tj.job_name("run-1-train").startswith("llmops-run-1-train-")


def test_job_name_of_an_empty_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="key is empty"):
        tj.job_name("  ")


def test_importing_the_module_does_not_import_kubeflow() -> None:
    code = "import sys, llmops.kfp.trainjob; sys.exit('kubeflow' in sys.modules or 'kubernetes' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ------------------------------------------------------------------------------------------------ launch


class FakeTrainerClient:
    """Stands in for kubeflow.trainer.TrainerClient because no Kubernetes cluster can run here.

    Same methods and error shapes as the SDK 0.5.0: get_job raises RuntimeError caused by an ApiException (404 when
    the job does not exist); wait_for_job_status walks a scripted list of statuses and raises RuntimeError on Failed
    unless Failed was asked for, TimeoutError when the script runs out.
    """

    def __init__(
        self,
        existing: str | None = None,
        statuses: tuple[str, ...] = ("Created", "Running", "Complete"),
        logs: tuple[str, ...] = ("step 1 loss 2.0", "step 2 loss 1.5"),
        train_error: int | None = None,
        get_error: int | None = None,
    ) -> None:
        self.jobs: dict[str, str] = {}
        self.existing = existing
        self.statuses = list(statuses)
        self.logs = logs
        self.train_error = train_error
        self.get_error = get_error
        self.trained: list[dict] = []
        self.log_calls: list[tuple[str, bool]] = []
        self.waits: list[set[str]] = []

    def _job(self, name: str, status: str):
        from kubeflow.trainer.types.types import TrainJob

        return TrainJob(
            name=name,
            runtime=tj.default_runtime(_cfg()),
            steps=[],
            num_nodes=2,
            creation_timestamp=datetime.now(UTC),
            status=status,
        )

    @staticmethod
    def _api_error(message: str, status: int) -> RuntimeError:
        from kubernetes.client import ApiException

        try:
            raise ApiException(status=status, reason={404: "Not Found", 403: "Forbidden", 409: "Conflict"}[status])
        except ApiException as cause:
            try:
                raise RuntimeError(message) from cause
            except RuntimeError as e:
                return e

    def get_runtime(self, name: str):
        return tj.default_runtime(_cfg("kfp.trainer_runtime=" + name))

    def get_job(self, name: str):
        if self.get_error:
            raise self._api_error(f"Failed to get TrainJob: team-a/{name}", self.get_error)
        if self.existing is not None and name not in self.jobs:
            self.jobs[name] = self.existing
        if name not in self.jobs:
            raise self._api_error(f"Failed to get TrainJob: team-a/{name}", 404)
        return self._job(name, self.jobs[name])

    def train(self, runtime=None, initializer=None, trainer=None, options=None) -> str:
        from kubeflow.trainer.options import Name

        (name,) = [o.name for o in options or [] if isinstance(o, Name)]
        self.trained.append({"runtime": runtime, "trainer": trainer, "options": options})
        if self.train_error:
            raise self._api_error(f"Failed to create TrainJob: team-a/{name}", self.train_error)
        self.jobs[name] = "Created"
        return name

    def wait_for_job_status(
        self, name: str, status: set[str] | None = None, timeout: int = 600, polling_interval: int = 2, callbacks=None
    ):
        status = {"Complete"} if status is None else status
        if not status <= {"Created", "Running", "Complete", "Failed"} or not 0 < polling_interval < timeout:
            raise ValueError(f"bad arguments: {status} {polling_interval} {timeout}")
        self.waits.append(set(status))
        while self.statuses:
            now = self.statuses.pop(0)
            if now == "Failed" and "Failed" not in status:
                raise RuntimeError(f"TrainJob {name} is Failed")
            if now in status:
                return self._job(name, now)
        raise TimeoutError(f"Timeout waiting for TrainJob {name} to reach status: {status} status")

    def get_job_logs(self, name: str, step: str = "node-0", follow: bool = False):
        self.log_calls.append((step, follow))
        yield from self.logs


def _launch(fake: FakeTrainerClient, **kw) -> tuple[str, list[str]]:
    lines: list[str] = []
    name = launch(_cfg(), CONFIG_URI, OUTPUT, tj.job_name(KEY), log=lines.append, client=fake, poll_s=1, **kw)
    return name, lines


def test_launch_submits_waits_and_streams_logs() -> None:
    fake = FakeTrainerClient()
    name, lines = _launch(fake)
    assert name == tj.job_name(KEY)
    (call,) = fake.trained
    assert call["trainer"].image == "ghcr.io/acme/llmops:1.2.3" and call["runtime"].name == "torch-distributed"
    assert fake.log_calls == [("node-0", True)]
    assert "step 2 loss 1.5" in lines
    assert lines[-1] == f"TrainJob {name} complete"


def test_launch_passes_the_shared_volume_to_the_trainjob() -> None:
    fake = FakeTrainerClient()
    _launch(fake, pvc_name="run-pvc", mount_path="/mnt/work")
    (call,) = fake.trained
    (patch,) = [o for o in call["options"] if type(o).__name__ == "RuntimePatch"]
    pod = patch.training_runtime_spec.template.spec.replicated_jobs[0].template.spec.template.spec
    assert {"name": "llmops-work", "persistentVolumeClaim": {"claimName": "run-pvc"}} in pod.volumes


def test_launch_reattaches_to_an_existing_job_instead_of_submitting() -> None:
    fake = FakeTrainerClient(existing="Running", statuses=("Running", "Complete"))
    name, lines = _launch(fake)
    assert fake.trained == []
    assert any("re-attaching" in line for line in lines)
    assert "step 1 loss 2.0" in lines and lines[-1] == f"TrainJob {name} complete"


def test_launch_reattaches_to_a_finished_job_and_prints_its_logs() -> None:
    fake = FakeTrainerClient(existing="Complete", statuses=("Complete",))
    _, lines = _launch(fake)
    assert fake.trained == [] and fake.log_calls == [("node-0", False)]
    assert "step 2 loss 1.5" in lines


def test_launch_failure_names_the_job_and_the_kubectl_command() -> None:
    fake = FakeTrainerClient(statuses=("Created", "Running", "Failed"))
    with pytest.raises(LlmopsError) as err:
        _launch(fake)
    msg = str(err.value)
    assert f"TrainJob {tj.job_name(KEY)} failed" in msg
    assert f"kubectl logs -n team-a -l jobset.sigs.k8s.io/jobset-name={tj.job_name(KEY)}" in msg


def test_launch_refuses_to_reattach_to_a_failed_job() -> None:
    fake = FakeTrainerClient(existing="Failed")
    with pytest.raises(LlmopsError, match=r"already failed.*kubectl delete trainjob -n team-a"):
        _launch(fake)
    assert fake.trained == [] and fake.waits == []


def test_launch_follows_the_job_a_concurrent_attempt_created() -> None:
    fake = FakeTrainerClient(train_error=409, statuses=("Running", "Complete"))
    _, lines = _launch(fake)
    assert len(fake.trained) == 1 and any("created meanwhile" in line for line in lines)


def test_launch_reports_other_api_errors() -> None:
    with pytest.raises(LlmopsError, match=r"cannot read TrainJob .*403 Forbidden"):
        _launch(FakeTrainerClient(get_error=403))
    with pytest.raises(LlmopsError, match=r"cannot create TrainJob .*Trainer v2 is installed"):
        _launch(FakeTrainerClient(train_error=403))


def test_launch_without_wait_returns_after_submitting() -> None:
    fake = FakeTrainerClient()
    name, _ = _launch(fake, wait=False)
    assert name in fake.jobs and fake.waits == [] and fake.log_calls == []


def test_launch_timeout_says_how_to_watch_the_job() -> None:
    fake = FakeTrainerClient(statuses=("Created", "Running"))
    with pytest.raises(LlmopsError, match=r"did not reach Complete/Failed .*kubectl get trainjob -n team-a"):
        _launch(fake, timeout_s=30)
