"""The Kubeflow pipeline: compiled YAML for every flow/method, the seed's kfp_pipeline.py, submit, and a whole run
through the real kfp.local runner on the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmops.config import build_config

ROOT = Path(__file__).resolve().parents[2]
GPU_STEPS = ("exec-baseline-eval", "exec-train", "exec-evaluate")
STEPS = (
    "exec-validate",
    "exec-baseline-eval",
    "exec-train",
    "exec-evaluate",
    "exec-gate",
    "exec-register",
    "exec-deploy",
)
SEED_EXAMPLES = [  # the original README's three kfp_pipeline.py examples (and its first, plainer one)
    [
        "--student",
        "Qwen/Qwen2.5-3B-Instruct",
        "--data",
        "s3://your-bucket/training-data.jsonl",
        "--flow_type",
        "IDP",
        "--train_type",
        "SFT",
        "--epochs",
        "3",
        "--eval_data",
        "s3://your-bucket/eval-data.json",
        "--val_per_class",
        "20",
    ],
    [
        "--student",
        "Qwen/Qwen2.5-3B-Instruct",
        "--data",
        "s3://datasets/idp-sft.jsonl",
        "--flow_type",
        "IDP",
        "--train_type",
        "SFT",
        "--epochs",
        "3",
        "--schema",
        "s3://schemas/invoice-schema.json",
        "--document",
        "Invoice #12345 dated 2023-05-15...",
        "--eval_data",
        "s3://datasets/idp-eval.json",
        "--val_per_class",
        "25",
    ],
    [
        "--student",
        "Qwen/Qwen2.5-Coder-3B",
        "--data",
        "s3://datasets/codegen-dpo.jsonl",
        "--flow_type",
        "CodeGen",
        "--train_type",
        "DPO",
        "--epochs",
        "2",
        "--prompt",
        "Implement a binary search tree in Python",
        "--eval_data",
        "s3://datasets/codegen-eval.json",
        "--val_per_class",
        "20",
    ],
    [
        "--student",
        "Qwen/Qwen2.5-3B-Instruct",
        "--data",
        "s3://datasets/kd-data.jsonl",
        "--flow_type",
        "IDP",
        "--train_type",
        "KD",
        "--epochs",
        "4",
        "--use_logit_kd",
        "--eval_data",
        "s3://datasets/idp-eval.json",
        "--val_per_class",
        "30",
    ],
]


def _compiled(path: Path) -> tuple[dict, dict]:
    from llmops.kfp.launch import load_compiled

    assert load_compiled(path) is not None  # kfp itself loads it back
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


@pytest.mark.parametrize("flow", ["IDP", "CodeGen"])
@pytest.mark.parametrize("method", ["SFT", "KD", "DPO", "GRPO"])
def test_compiled_pipeline_has_cluster_settings(tmp_path: Path, flow: str, method: str) -> None:
    from llmops.kfp.launch import compile_pipeline

    cfg = build_config(
        base={
            "student": "Qwen/Qwen2.5-3B-Instruct",
            "data": "s3://b/train.jsonl",
            "flow_type": flow,
            "train_type": method,
            "teacher": "Qwen/Qwen2.5-7B-Instruct",
            "tracking": {"tracking_uri": "sqlite:///local.db"},
            "kfp": {"image": "registry.example/llmops:1.2", "gpus": 2},
        }
    )
    spec, k8s = _compiled(compile_pipeline(cfg, tmp_path / "p.yaml"))
    executors, tasks = spec["deploymentSpec"]["executors"], spec["root"]["dag"]["tasks"]
    assert set(STEPS) <= set(executors)
    config = json.loads(spec["root"]["inputDefinitions"]["parameters"]["config"]["defaultValue"])
    assert (config["flow_type"], config["train_type"]) == (flow, method)
    assert config["tracking"]["tracking_uri"] is None  # on the cluster MLflow is MLFLOW_TRACKING_URI
    for name in STEPS:
        container = executors[name]["container"]
        assert container["image"] == "registry.example/llmops:1.2"
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["MLFLOW_TRACKING_URI"] == cfg.kfp.tracking_uri, name
        secrets = {(s["secretName"], k["envVar"]) for s in k8s[name]["secretAsEnv"] for k in s["keyToEnv"]}
        assert {
            ("hf-token", "HF_TOKEN"),
            ("aws-credentials", "AWS_ACCESS_KEY_ID"),
            ("mlflow-credentials", "MLFLOW_TRACKING_PASSWORD"),
        } <= secrets, name
        assert int(k8s[name]["activeDeadlineSeconds"]) > 0
        if name != "exec-deploy":  # deploy needs no files: it may run while the volume is deleted
            (mount,) = k8s[name]["pvcMount"]
            assert mount["mountPath"] == "/workspace"
            assert mount["taskOutputParameter"]["producerTask"] == "createpvc"
    for name in GPU_STEPS:
        resources = executors[name]["container"]["resources"]
        assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
        assert resources["accelerator"]["resourceCount"] == "2"
        assert resources["resourceMemoryLimit"] == "64Gi" and resources["resourceCpuRequest"] == "4"
        assert k8s[name]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert k8s[name]["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
        (shm,) = k8s[name]["emptyDirMounts"]
        assert (shm["mountPath"], shm["medium"], shm["sizeLimit"]) == ("/dev/shm", "Memory", "16Gi")
    for name in ("exec-validate", "exec-gate", "exec-register"):
        assert "accelerator" not in executors[name]["container"].get("resources", {})
        assert "tolerations" not in k8s[name]
    # A volume per run: named after the KFP run, created first, deleted after register.
    pvc_args = executors["exec-createpvc"]["container"]
    assert "createpvc" in tasks and "deletepvc" in tasks
    assert "{{$.pipeline_job_uuid}}" in json.dumps(tasks["createpvc"]["inputs"]) or "pipeline_job_uuid" in json.dumps(
        pvc_args
    )
    assert tasks["deletepvc"]["dependentTasks"] == ["register"] or "register" in tasks["deletepvc"]["dependentTasks"]
    retry = tasks["train"]["retryPolicy"]
    assert retry["maxRetryCount"] == 2 and retry["backoffDuration"] == "60s" and retry["backoffFactor"] == 2.0
    assert tasks["train"]["cachingOptions"] == {}  # no cache: always train
    assert int(k8s["exec-train"]["activeDeadlineSeconds"]) == cfg.kfp.train_timeout_s
    # Deploy runs only inside the gate's condition.
    condition = tasks["condition-1"]
    assert condition["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--gate-Output'] == true"
    deploy = spec["components"]["comp-condition-1"]["dag"]["tasks"]["deploy"]
    assert "deploy" not in tasks
    # Deploy writes (and on a cluster applies) the KServe InferenceService of the registered winner.
    assert set(deploy["inputs"]["parameters"]) == {"config", "registration"}
    command = " ".join(executors["exec-deploy"]["container"]["command"])
    assert "steps.deploy(config, registration, manifest.path)" in command
    assert "manifest" in spec["components"]["comp-deploy"]["outputDefinitions"]["artifacts"]


@pytest.mark.parametrize("example", range(len(SEED_EXAMPLES)))
def test_kfp_pipeline_py_takes_the_seed_examples(tmp_path: Path, example: int) -> None:
    out = tmp_path / "seed.yaml"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "kfp_pipeline.py"), *SEED_EXAMPLES[example], "--compile-only", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    spec, _ = _compiled(out)
    config = json.loads(spec["root"]["inputDefinitions"]["parameters"]["config"]["defaultValue"])
    args = SEED_EXAMPLES[example]
    assert config["student"] == args[args.index("--student") + 1]
    assert config["val_per_class"] == int(args[args.index("--val_per_class") + 1])
    assert config["epochs"] == float(args[args.index("--epochs") + 1])
    assert config["use_logit_kd"] == ("--use_logit_kd" in args)
    if "--prompt" in args:
        assert config["prompt"] == "Implement a binary search tree in Python"


def test_kfp_pipeline_py_without_host_or_compile_only_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KFP_HOST"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "kfp_pipeline.py"), *SEED_EXAMPLES[0]],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "--host" in proc.stderr


class FakeKfpClient:
    """Stands in for kfp.Client: no KFP API server can run here. Records calls; names are unique like KFP's."""

    def __init__(self) -> None:
        self.pipelines: dict[str, str] = {}
        self.versions: list[tuple[str, str]] = []
        self.runs: list[dict] = []

    def get_pipeline_id(self, name: str) -> str | None:
        return self.pipelines.get(name)

    def upload_pipeline(self, path: str, pipeline_name: str):
        from kfp_server_api.exceptions import ApiException

        if pipeline_name in self.pipelines:
            raise ApiException(status=409, reason="already exists")
        self.pipelines[pipeline_name] = f"p-{len(self.pipelines)}"
        self.versions.append((self.pipelines[pipeline_name], pipeline_name))
        return type("P", (), {"pipeline_id": self.pipelines[pipeline_name]})()

    def list_pipeline_versions(self, pipeline_id: str):
        versions = [
            type("V", (), {"pipeline_version_id": f"v-{i}"})()
            for i, (p, _) in enumerate(self.versions)
            if p == pipeline_id
        ]
        return type("R", (), {"pipeline_versions": versions})()

    def upload_pipeline_version(self, path: str, pipeline_version_name: str, pipeline_id: str):
        assert Path(path).is_file()
        assert pipeline_version_name not in [n for _, n in self.versions]
        self.versions.append((pipeline_id, pipeline_version_name))
        return type("V", (), {"pipeline_version_id": f"v-{len(self.versions) - 1}"})()

    def create_experiment(self, name: str, namespace: str | None = None):
        return type("E", (), {"experiment_id": f"e-{name}"})()

    def run_pipeline(self, experiment_id: str, job_name: str, pipeline_id: str, version_id: str):
        self.runs.append(
            {"experiment": experiment_id, "name": job_name, "pipeline": pipeline_id, "version": version_id}
        )
        return type("Run", (), {"run_id": f"r-{len(self.runs)}"})()


def test_submit_twice_adds_a_version_and_runs_have_unique_names(tmp_path: Path) -> None:
    from llmops.kfp.launch import submit

    cfg = build_config(base={"student": "s", "data": "d.jsonl", "save_dir": str(tmp_path)})
    client = FakeKfpClient()
    first = submit(cfg, "http://kfp.example", client=client)
    second = submit(cfg, "http://kfp.example", client=client)
    assert first["pipeline_id"] == second["pipeline_id"] == "p-0"
    assert first["version_id"] != second["version_id"]
    assert len({r["name"] for r in client.runs}) == 2
    assert all(r["experiment"] == "e-llmops" for r in client.runs)
    assert Path(first["package"]).is_file()


def test_submit_without_a_host_names_the_flag() -> None:
    from llmops.errors import ConfigError
    from llmops.kfp.launch import submit

    with pytest.raises(ConfigError, match="--host"):
        submit(build_config(base={"student": "s", "data": "d.jsonl"}), None)


@pytest.mark.integration
def test_run_local_runs_every_step_and_registers_like_llmops_run(tmp_path: Path, tiny_idp: dict[str, Path]) -> None:
    """The whole pipeline through the real kfp.local SubprocessRunner; then `llmops run` on the same config."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "--student",
        str(tiny_idp["model"]),
        "--data",
        str(tiny_idp["train"]),
        "--eval_data",
        str(tiny_idp["eval"]),
        "--schema",
        str(tiny_idp["schema"]),
        "--flow_type",
        "IDP",
        "--train_type",
        "SFT",
        "--max_steps",
        "2",
        "--set",
        "peft.method=full",
        "--set",
        "training.per_device_train_batch_size=4",
        "--set",
        "eval.max_new_tokens=8",
        "--set",
        "eval.max_examples=3",
        "--set",
        "tracking.system_metrics=false",
        "--set",
        "training.num_threads=1",
        "--set",
        f"tracking.tracking_uri={uri}",
        "--set",
        "eval.baseline=false",
    ]  # no baseline, no champion: the first version wins, deploy runs
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "kfp", "run-local", *args, "--workdir", str(tmp_path / "kfp")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    run_dir = Path(out["run_dir"])
    summary = json.loads((run_dir / "summary.json").read_text())
    outputs = list(Path(out["kfp_outputs"]).iterdir())[0]
    for task in ("validate", "train", "evaluate", "gate", "register", "deploy"):
        assert (outputs / task / "executor_output.json").exists(), task
    assert (outputs / "train" / "model" / "config.json").exists()  # Output[Model]
    assert "| field_f1 |" in next((outputs / "evaluate").glob("report*")).read_text()  # Output[Markdown]

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert {"eval/field_f1", "train/final_loss"} <= set(run.data.metrics)
    kfp_version = client.get_model_version("llmops-idp-sft", summary["version"])
    assert client.get_model_version_by_alias("llmops-idp-sft", "champion").version == kfp_version.version
    assert kfp_version.tags["llmops.deployed"] == "true"
    (manifest,) = list((outputs / "deploy").glob("manifest*"))  # written, not applied: no cluster here
    service = yaml.safe_load(manifest.read_text())
    assert service["kind"] == "InferenceService" and service["metadata"]["name"] == kfp_version.tags["llmops.kserve"]
    assert service["spec"]["predictor"]["model"]["storageUri"].rstrip("/") == kfp_version.source.rstrip("/")

    proc = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "run", *args, "--save_dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    local = max(client.search_model_versions("name='llmops-idp-sft'"), key=lambda v: int(v.version))
    assert local.version != kfp_version.version
    same_tags = {k for k in kfp_version.tags if k not in ("llmops.deployed", "llmops.kserve")}
    assert same_tags == set(local.tags)
    assert {a.path for a in client.list_artifacts(kfp_version.run_id)} == {
        a.path for a in client.list_artifacts(local.run_id)
    }
    assert {a.path for a in client.list_artifacts(kfp_version.run_id, "model")} == {
        a.path for a in client.list_artifacts(local.run_id, "model")
    }
    assert set(client.get_run(kfp_version.run_id).data.params) == set(client.get_run(local.run_id).data.params)
