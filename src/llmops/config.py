"""The run configuration: one typed object, loaded from YAML, then seed flags, then `--set` overrides."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator

from llmops.errors import ConfigError
from llmops.settings import (  # noqa: F401 - the sections, re-exported
    DPOSettings,
    EvalSettings,
    GRPOSettings,
    KDSettings,
    KfpSettings,
    ModelsSettings,
    PeftSettings,
    SecretEnv,
    Section,
    TrackingSettings,
    TrainingSettings,
)


class RunConfig(Section):
    """Everything one pipeline run needs. The seed project's keys keep their names and meaning."""

    student: str = Field("Qwen/Qwen2.5-0.5B-Instruct", description="base model: hub id or local path")
    teacher: str | None = Field(None, description="teacher model for KD (hub id or local path)")
    data: str | None = Field(None, description="training data (JSONL/JSON; local, s3://, gs://, http(s)://)")
    save_dir: str = Field("runs", description="each run writes under save_dir/<run name>/")
    epochs: float = Field(3.0, gt=0)
    flow_type: Literal["IDP", "CodeGen"] = "IDP"
    train_type: str = Field("SFT", description="the training method (llmops.methods.registry): SFT, KD, DPO, ...")
    schema_: str | None = Field(None, alias="schema", description="JSON Schema (path/URI or inline JSON), IDP")
    document: str | None = Field(None, description="a sample document (text or path) predicted after training")
    prompt: str | None = Field(None, description="a sample prompt (CodeGen) predicted after training")
    eval_data: str | None = Field(None, description="held-out evaluation data")
    val_per_class: int = Field(0, ge=0, description="keep at most N eval examples per class; 0 = all")
    use_logit_kd: bool = Field(False, description="KD on teacher logits (else on teacher text)")
    host: str | None = Field(None, description="Kubeflow Pipelines host")
    offload_folder: str | None = Field(None, description="where accelerate offloads weights that do not fit")

    peft: PeftSettings = Field(default_factory=PeftSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    kd: KDSettings = Field(default_factory=KDSettings)
    dpo: DPOSettings = Field(default_factory=DPOSettings)
    grpo: GRPOSettings = Field(default_factory=GRPOSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    models: ModelsSettings = Field(default_factory=ModelsSettings)
    kfp: KfpSettings = Field(default_factory=KfpSettings)

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    @field_validator("flow_type", mode="before")
    @classmethod
    def _flow_case(cls, v: Any) -> Any:
        names = {"idp": "IDP", "codegen": "CodeGen"}
        return names.get(str(v).lower(), v) if isinstance(v, str) else v

    @field_validator("train_type", mode="before")
    @classmethod
    def _train_case(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @property
    def schema(self) -> str | None:  # type: ignore[override]
        """The JSON Schema location or inline text."""
        return self.schema_

    def registered_model_name(self) -> str:
        """The registry name: tracking.registered_model, else llmops-<flow>-<train>."""
        if self.tracking.registered_model:
            return self.tracking.registered_model
        return f"llmops-{self.flow_type}-{self.train_type}".lower()

    def gate_metric(self) -> str:
        """The metric the gate compares (without prefix)."""
        if self.eval.gate_metric:
            return self.eval.gate_metric
        return "field_f1" if self.flow_type == "IDP" else "pass_at_1"

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data, with the seed's key names."""
        return self.model_dump(mode="json", by_alias=True)

    def save(self, path: str | Path) -> Path:
        """Write the resolved config as YAML (atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        os.replace(tmp, path)
        return path


SECRET_WORDS = ("token", "password", "secret", "api_key", "apikey", "credential")


def _format_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown config key '{key}' (check the spelling; see `llmops run --help`)")
        else:
            got = e.get("input")
            got_s = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
            lines.append(f"{source}: bad value for '{key}': {e['msg']}{got_s}")
    return "\n".join(lines)


def _parse_scalar(text: str) -> Any:
    """Parse an override value the way YAML would (numbers, booleans, null, lists)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    parts = dotted.split(".")
    if not all(parts):
        raise ConfigError(f"{source}: bad key '{dotted}' (use section.key=value)")
    node = data
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: '{p}' is not a section, cannot set '{dotted}'")
        node = child
    node[parts[-1]] = value


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict, with errors that name the file and line."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark else str(p)
        raise ConfigError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of config keys at the top level")
    return data


def build_config(
    yaml_path: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
    sources: dict[str, str] | None = None,
) -> RunConfig:
    """YAML, then `flags` ({config key, dotted for a section: value}; None = not given), then `--set a.b=c`
    overrides, validated together. `sources` names where each flag came from in messages (e.g. --learning_rate)."""
    data: dict[str, Any] = dict(base or {})
    source = "config"
    if yaml_path:
        data.update(read_yaml(yaml_path))
        source = str(yaml_path)
    for name, value in (flags or {}).items():
        if value is None:
            continue
        _set_dotted(data, name, value, (sources or {}).get(name, f"--{name}"))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected key=value, e.g. --set training.max_steps=100")
        key, _, raw = item.partition("=")
        _set_dotted(data, key.strip(), _parse_scalar(raw), f"--set {key.strip()}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_error(e, source)) from None


def redact(params: dict[str, Any]) -> dict[str, Any]:
    """Replace values of secret-looking keys and credentials inside URIs."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if any(w in k.lower() for w in SECRET_WORDS):
            out[k] = "***"
        elif isinstance(v, str) and "://" in v and "@" in v.split("://", 1)[1].split("/", 1)[0]:
            scheme, rest = v.split("://", 1)
            out[k] = f"{scheme}://***@{rest.split('@', 1)[1]}"
        else:
            out[k] = v
    return out


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested sections to dotted keys (for MLflow params)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple)) else v
    return out


def cache_dir() -> Path:
    """Where converted and built models are cached: $LLMOPS_CACHE, else $XDG_CACHE_HOME/llmops, ~/.cache/llmops."""
    if os.environ.get("LLMOPS_CACHE"):
        return Path(os.environ["LLMOPS_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "llmops"
