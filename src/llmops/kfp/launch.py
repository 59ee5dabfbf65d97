"""`llmops kfp compile | submit | run-local`: the pipeline compiled to KFP v2 YAML, sent to a KFP host, or executed
here with the real `kfp.local` runner (each step a subprocess of this interpreter)."""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from llmops.config import RunConfig
from llmops.errors import ConfigError, LlmopsError

TOKEN_ENV = ("KFP_TOKEN", "KF_PIPELINES_TOKEN")
SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def _for_cluster(cfg: RunConfig) -> RunConfig:
    """On the cluster MLflow comes from kfp.tracking_uri (MLFLOW_TRACKING_URI of every step), not a local URI."""
    return cfg.model_copy(update={"tracking": cfg.tracking.model_copy(update={"tracking_uri": None})})


def compile_pipeline(cfg: RunConfig, path: str | Path) -> Path:
    """Compile the cluster pipeline for `cfg` to `path` (written atomically); returns the path."""
    from kfp import compiler
    from llmops.kfp.dag import build_pipeline

    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(3)}.tmp.yaml")
    try:
        compiler.Compiler().compile(build_pipeline(_for_cluster(cfg)), str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_compiled(path: str | Path) -> Any:
    """The compiled pipeline loaded back by kfp (a YamlComponent)."""
    from kfp import components

    return components.load_component_from_file(str(path))


def run_name(cfg: RunConfig) -> str:
    """A unique, readable KFP run name."""
    stem = cfg.tracking.run_name or f"{cfg.flow_type}-{cfg.train_type}".lower()
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _token() -> str | None:
    for name in TOKEN_ENV:
        if os.environ.get(name):
            return os.environ[name]
    return SA_TOKEN.read_text().strip() if SA_TOKEN.is_file() else None


def _upload(client: Any, package: Path, name: str) -> tuple[str, str]:
    """Upload the pipeline, or a new version of it when the name exists (never an error); (pipeline id, version id)."""
    from kfp_server_api.exceptions import ApiException

    pipeline_id = client.get_pipeline_id(name)
    if pipeline_id is None:
        try:
            pipeline = client.upload_pipeline(str(package), pipeline_name=name)
            versions = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions or []
            return pipeline.pipeline_id, versions[0].pipeline_version_id
        except ApiException:  # uploaded by someone else meanwhile: add a version instead
            pipeline_id = client.get_pipeline_id(name)
            if pipeline_id is None:
                raise
    stamp = time.strftime("%Y%m%d-%H%M%S")
    version = client.upload_pipeline_version(
        str(package), pipeline_version_name=f"{name}-{stamp}-{secrets.token_hex(3)}", pipeline_id=pipeline_id
    )
    return pipeline_id, version.pipeline_version_id


def submit(cfg: RunConfig, host: str | None, package: str | Path | None = None, client: Any = None) -> dict[str, str]:
    """Compile (unless `package` is given), upload (or add a version), and start a run; returns its ids."""
    host = host or cfg.host
    if not host and client is None:
        raise ConfigError(
            "kfp submit: pass --host URL (the KFP API, e.g. http://ml-pipeline.kubeflow:8888) "
            "or set host: in the config"
        )
    package = Path(package) if package else compile_pipeline(cfg, Path(cfg.save_dir) / "kfp" / "pipeline.yaml")
    if client is None:
        import kfp

        kwargs = {"namespace": cfg.kfp.namespace} if cfg.kfp.namespace else {}
        try:
            client = kfp.Client(host=host, existing_token=_token(), **kwargs)
        except Exception as e:
            raise LlmopsError(
                f"KFP at {host} cannot be reached: {e}. Check --host and that you can reach the KFP "
                "API (kubectl port-forward svc/ml-pipeline-ui 8080:80 -n kubeflow)"
            ) from None
    name = cfg.kfp.pipeline_name
    pipeline_id, version_id = _upload(client, package, name)
    experiment = client.create_experiment(cfg.kfp.experiment_name, namespace=cfg.kfp.namespace)
    run = client.run_pipeline(
        experiment_id=experiment.experiment_id, job_name=run_name(cfg), pipeline_id=pipeline_id, version_id=version_id
    )
    return {"pipeline_id": pipeline_id, "version_id": version_id, "run_id": run.run_id, "package": str(package)}


def run_local(cfg: RunConfig, workdir: str | Path) -> dict[str, Any]:
    """The same pipeline through `kfp.local` (SubprocessRunner, this interpreter); returns the run's summary."""
    from kfp import local
    from llmops.kfp.dag import build_pipeline
    from llmops.tracking.uri import resolve_tracking_uri

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tracking = resolve_tracking_uri(cfg.tracking.tracking_uri)
    local_cfg = cfg.model_copy(
        update={"kfp": cfg.kfp.model_copy(update={"tracking_uri": tracking, "kserve_apply": False})}
    )
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(workdir / "kfp-outputs"), raise_on_error=False
    )
    before = set((workdir / "runs").glob("*/state.json"))
    task = build_pipeline(local_cfg, cluster=False, workdir=str(workdir))()
    # run folders are the ones with a state.json (save_dir also holds kd-cache/ for KD runs)
    runs = [p.parent for p in (workdir / "runs").glob("*/state.json") if p not in before]
    if not runs:
        raise LlmopsError(f"kfp.local: the validate step failed (see the step output above); nothing ran in {workdir}")
    (run_dir,) = runs
    state = json.loads((run_dir / "state.json").read_text())
    if "gate" not in state:
        raise LlmopsError(
            f"kfp.local: the pipeline stopped before register (see the step output above); run folder {run_dir}"
        )
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["kfp_outputs"] = str(workdir / "kfp-outputs")
    summary["kfp_state"] = str(getattr(task, "state", ""))
    return summary
