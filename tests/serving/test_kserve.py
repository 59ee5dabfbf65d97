"""KServe deployment: the InferenceService built for registered versions in a real MLflow store (SQLite).

No Kubernetes cluster can run here: `apply` is exercised against a fake CustomObjectsApi that behaves like the API
server for create (201, then 409 AlreadyExists), get and replace (resourceVersion checked).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from mlflow import MlflowClient
from typer.testing import CliRunner

from llmops.cli.deploy import deploy_app
from llmops.errors import ConfigError, LlmopsError
from llmops.serving import kserve
from llmops.tracking.gate import CHAMPION
from llmops.tracking.registry import create_version

NAME = "llmops-idp-sft"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("LLMOPS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, MlflowClient]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, MlflowClient(uri, registry_uri=uri)


def _merged(root: Path) -> Path:
    d = root / "merged"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    (d / "model.safetensors").write_bytes(b"\0" * 64)
    (d / "tokenizer.json").write_text("{}")
    return d


def _adapter(root: Path, base: str = "Qwen/Qwen2.5-0.5B-Instruct") -> Path:
    d = root / "adapter"
    d.mkdir(parents=True)
    (d / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": base, "r": 8}))
    (d / "adapter_model.safetensors").write_bytes(b"\0" * 32)
    return d


def _register(
    client: MlflowClient, folder: Path, name: str = NAME, log_model: bool = True, alias: str | None = CHAMPION
) -> tuple[str, Any]:
    """Register `folder` as the project does (run artifacts `model/`, create_version); returns (version, mv)."""
    exp = client.get_experiment_by_name("kserve") or client.get_experiment(client.create_experiment("kserve"))
    run = client.create_run(exp.experiment_id)
    version = create_version(client, run.info.run_id, folder, name, log_model=log_model)
    client.set_terminated(run.info.run_id)
    if alias:
        client.set_registered_model_alias(name, alias, version)
    return version, client.get_model_version(name, version)


def _model(manifest: dict) -> dict:
    return manifest["spec"]["predictor"]["model"]


def test_quickstart_merged_model_manifest(store, tmp_path):
    uri, client = store
    version, mv = _register(client, _merged(tmp_path / "run"))
    assert mv.source.endswith("/model")

    m = kserve.manifest_for_registered(f"models:/{NAME}@champion", tracking_uri=uri)
    assert m["apiVersion"] == "serving.kserve.io/v1beta1" and m["kind"] == "InferenceService"
    assert m["metadata"]["name"] == "llmops-idp-sft"
    assert m["metadata"]["annotations"]["llmops/model-version"] == version
    assert m["metadata"]["annotations"]["llmops/model-kind"] == "merged"
    model = _model(m)
    assert model["modelFormat"] == {"name": "huggingface"}
    assert model["storageUri"] == mv.source and "storageUris" not in model
    assert "--model_name=llmops-idp-sft" in model["args"] and "--backend=vllm" in model["args"]
    assert not any(a.startswith(("--enable-lora", "--lora-modules")) for a in model["args"])
    res = model["resources"]
    assert res["limits"] == res["requests"] == {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"}

    # By version number too, with options.
    m2 = kserve.manifest_for_registered(
        f"models:/{NAME}/{version}", tracking_uri=uri, gpus=2, namespace="ml", max_model_len=4096, name="idp"
    )
    assert m2["metadata"]["name"] == "idp" and m2["metadata"]["namespace"] == "ml"
    assert _model(m2)["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert "--max-model-len=4096" in _model(m2)["args"] and "--model_name=idp" in _model(m2)["args"]


def test_lora_adapter_manifest(store, tmp_path):
    uri, client = store
    _, mv = _register(client, _adapter(tmp_path / "run"))
    m = kserve.manifest_for_registered(f"models:/{NAME}@champion", tracking_uri=uri)
    model = _model(m)
    assert m["metadata"]["annotations"]["llmops/model-kind"] == "adapter"
    # storageUri and storageUris are exclusive: base and adapter both go through storageUris.
    assert "storageUri" not in model
    assert model["storageUris"] == [
        {"uri": "hf://Qwen/Qwen2.5-0.5B-Instruct", "mountPath": "/mnt/models/base"},
        {"uri": mv.source, "mountPath": "/mnt/models/adapters/llmops-idp-sft"},
    ]
    args = model["args"]
    assert "--enable-lora" in args and "--model_dir=/mnt/models/base" in args and "--backend=vllm" in args
    i = args.index("--lora-modules")
    assert args[i + 1] == "llmops-idp-sft=/mnt/models/adapters/llmops-idp-sft"
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"

    # An explicit base model URI wins over the adapter's base_model_name_or_path.
    m = kserve.manifest_for_registered(
        f"models:/{NAME}@champion", tracking_uri=uri, base_storage_uri="s3://models/qwen", lora_name="idp"
    )
    assert _model(m)["storageUris"][0] == {"uri": "s3://models/qwen", "mountPath": "/mnt/models/base"}
    assert "idp=/mnt/models/adapters/idp" in _model(m)["args"]


def test_reference_file_versions(store, tmp_path):
    """tracking.log_model: false registers llmops_model_ref.json; the manifest serves the folder it names."""
    uri, client = store
    merged = _merged(tmp_path / "a")
    _register(client, merged, name="Ref_Model.v2", log_model=False)
    m = kserve.manifest_for_registered("models:/Ref_Model.v2@champion", tracking_uri=uri)
    assert m["metadata"]["name"] == "ref-model-v2"
    assert _model(m)["storageUri"] == str(merged.resolve())

    adapter = _adapter(tmp_path / "b", base="/local/base/model")
    _register(client, adapter, name="ref-adapter", log_model=False)
    with pytest.raises(ConfigError, match="base-storage-uri"):
        kserve.manifest_for_registered("models:/ref-adapter@champion", tracking_uri=uri)
    m = kserve.manifest_for_registered(
        "models:/ref-adapter@champion", tracking_uri=uri, base_storage_uri="hf://org/base"
    )
    # A plain path (already in the pod/image): storageUri = base, the path goes to --lora-modules as is.
    assert _model(m)["storageUri"] == "hf://org/base"
    assert f"ref-adapter={adapter.resolve()}" in _model(m)["args"]


def test_missing_version_is_a_tracking_error(store):
    uri, _ = store
    with pytest.raises(LlmopsError, match="not found in the registry"):
        kserve.manifest_for_registered("models:/nope@champion", tracking_uri=uri)


@pytest.mark.parametrize("bad", ["Bad_Name", "-x", "x-", "1abc", "a" * 64, "", "a.b"])
def test_invalid_names(bad):
    with pytest.raises(ConfigError, match="not a valid InferenceService name"):
        kserve.inference_service(bad, "s3://b/m")


def test_service_name_and_options():
    assert kserve.service_name("LLMOps_IDP.sft") == "llmops-idp-sft"
    assert kserve.service_name("7b-model") == "m-7b-model"
    assert len(kserve.service_name("x" * 100)) == 63
    m = kserve.inference_service(
        "cpu-model",
        "s3://b/m",
        gpus=0,
        cpu="2",
        memory="8Gi",
        node_selector={"pool": "gpu"},
        tolerations=[{"key": "k", "operator": "Exists"}],
        service_account="sa",
        image="img:1",
        runtime_version="v0.15.0",
        extra_args=["--dtype=float16"],
    )
    model = _model(m)
    assert model["resources"]["limits"] == {"cpu": "2", "memory": "8Gi"} and "--backend=vllm" not in model["args"]
    assert model["args"][-1] == "--dtype=float16" and model["image"] == "img:1"
    assert model["runtimeVersion"] == "v0.15.0"
    pred = m["spec"]["predictor"]
    assert pred["nodeSelector"] == {"pool": "gpu"} and pred["serviceAccountName"] == "sa"
    assert pred["tolerations"] == [{"key": "k", "operator": "Exists"}]
    with pytest.raises(ConfigError, match="vLLM"):
        kserve.inference_service("x", "s3://b/m", gpus=0, lora_modules={"a": "s3://b/a"})
    with pytest.raises(ConfigError, match="LoRA module"):
        kserve.inference_service("x", "s3://b/m", lora_modules={"a b": "s3://b/a"})
    with pytest.raises(ConfigError, match="namespace"):
        kserve.inference_service("x", "s3://b/m", namespace="Bad_NS")
    # Several adapters: one --lora-modules with every module, and --max-loras.
    m = kserve.inference_service("x", "s3://b/base", lora_modules={"a": "s3://b/a", "b": "org/hub-adapter"})
    args = _model(m)["args"]
    assert args[args.index("--lora-modules") + 1 :][:2] == ["a=/mnt/models/adapters/a", "b=org/hub-adapter"]
    assert "--max-loras=2" in args


def test_write_manifest_atomic(tmp_path):
    m = kserve.inference_service("x", "s3://b/m")
    path = kserve.write_manifest(m, tmp_path / "out" / "isvc.yaml")
    assert yaml.safe_load(path.read_text()) == m
    assert [p.name for p in path.parent.iterdir()] == ["isvc.yaml"]


class FakeCustomObjectsApi:
    """In-memory stand-in for kubernetes.client.CustomObjectsApi (namespaced custom objects)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict] = {}
        self.calls: list[str] = []

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        assert (group, version, plural) == ("serving.kserve.io", "v1beta1", "inferenceservices")
        self.calls.append("create")
        key = (namespace, body["metadata"]["name"])
        if key in self.objects:
            raise ApiException(status=409, reason="Conflict")
        obj = json.loads(json.dumps(body))
        obj["metadata"]["resourceVersion"] = "1"
        self.objects[key] = obj
        return obj

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.calls.append("get")
        return self.objects[(namespace, name)]

    def replace_namespaced_custom_object(self, group, version, namespace, plural, name, body):
        self.calls.append("replace")
        current = self.objects[(namespace, name)]
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        obj = json.loads(json.dumps(body))
        obj["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        self.objects[(namespace, name)] = obj
        return obj


def test_apply_creates_then_replaces():
    api = FakeCustomObjectsApi()
    m = kserve.inference_service("idp", "s3://b/m")
    first = kserve.apply(m, namespace="ml", api=api)
    assert first["action"] == "created" and first["namespace"] == "ml"
    m2 = kserve.inference_service("idp", "s3://b/m2")
    second = kserve.apply(m2, namespace="ml", api=api)
    assert second["action"] == "replaced" and api.calls == ["create", "create", "get", "replace"]
    stored = api.objects[("ml", "idp")]
    assert _model(stored)["storageUri"] == "s3://b/m2" and stored["metadata"]["resourceVersion"] == "2"
    assert "namespace" not in m2["metadata"]  # the caller's manifest is not modified
    # Defaults to the manifest's namespace, then "default".
    assert kserve.apply(kserve.inference_service("a", "s3://b/m", namespace="team"), api=api)["namespace"] == "team"
    assert kserve.apply(kserve.inference_service("b", "s3://b/m"), api=api)["namespace"] == "default"


def test_apply_other_errors_and_no_cluster(tmp_path, monkeypatch):
    class Forbidden(FakeCustomObjectsApi):
        def create_namespaced_custom_object(self, *a, **k):
            raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(LlmopsError, match="403 Forbidden"):
        kserve.apply(kserve.inference_service("x", "s3://b/m"), api=Forbidden())
    # No service account token and no kubeconfig: a clear error, not a traceback.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(LlmopsError, match="no Kubernetes cluster configuration"):
        kserve.apply(kserve.inference_service("x", "s3://b/m"))


def test_deploy_kserve_writes_and_applies(store, tmp_path):
    uri, client = store
    _register(client, _merged(tmp_path / "run"))
    api = FakeCustomObjectsApi()
    out = tmp_path / "isvc.yaml"
    result = kserve.deploy_kserve(
        f"models:/{NAME}@champion", output_path=out, apply_now=True, namespace="ml", tracking_uri=uri, api=api
    )
    assert result["applied"] == "created" and result["namespace"] == "ml" and result["output"] == str(out)
    assert yaml.safe_load(out.read_text()) == result["manifest"] == yaml.safe_load(result["yaml"])
    assert ("ml", "llmops-idp-sft") in api.objects


def test_cli_prints_yaml_and_writes_file(store, tmp_path):
    uri, client = store
    _, mv = _register(client, _merged(tmp_path / "run"))
    runner = CliRunner()
    res = runner.invoke(
        deploy_app,
        [
            "kserve",
            f"models:/{NAME}@champion",
            "--tracking-uri",
            uri,
            "--gpus",
            "2",
            "--namespace",
            "ml",
            "--lora",
            "extra=s3://b/extra",
        ],
    )
    assert res.exit_code == 0, res.output
    m = yaml.safe_load(res.stdout)
    assert m["kind"] == "InferenceService" and m["metadata"]["namespace"] == "ml"
    assert _model(m)["resources"]["requests"]["nvidia.com/gpu"] == "2"
    assert {"uri": mv.source, "mountPath": "/mnt/models/base"} in _model(m)["storageUris"]
    assert "extra=/mnt/models/adapters/extra" in _model(m)["args"]

    out = tmp_path / "o.yaml"
    res = runner.invoke(
        deploy_app, ["kserve", f"models:/{NAME}@champion", "--tracking-uri", uri, "--output", str(out), "--name", "idp"]
    )
    assert res.exit_code == 0 and "wrote" in res.stderr
    assert yaml.safe_load(out.read_text())["metadata"]["name"] == "idp"

    res = runner.invoke(deploy_app, ["kserve", f"models:/{NAME}@champion", "--tracking-uri", uri, "--name", "Bad"])
    assert res.exit_code == 2 and "error: kserve: 'Bad' is not a valid" in res.stderr
    res = runner.invoke(deploy_app, ["kserve", f"models:/{NAME}@champion", "--tracking-uri", uri, "--lora", "x"])
    assert res.exit_code == 2 and "NAME=PATH" in res.stderr


def test_kfp_options_from_run_config():
    from llmops.config import build_config

    cfg = build_config(base={"kfp": {"gpus": 2}})
    m = kserve.inference_service("x", "s3://b/m", **kserve.kfp_options(cfg.kfp))
    pred = m["spec"]["predictor"]
    assert pred["model"]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pred["nodeSelector"] == cfg.kfp.node_selector and pred["tolerations"] == cfg.kfp.tolerations
