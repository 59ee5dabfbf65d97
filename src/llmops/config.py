"""The run configuration: one typed object, loaded from YAML, then seed flags, then `--set` overrides."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmops.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PeftSettings(_Section):
    """How the student's weights are adapted."""

    method: Literal["lora", "qlora", "full"] = Field("lora", description="lora, qlora (4-bit NF4) or full")
    r: int = Field(16, gt=0, description="LoRA rank")
    alpha: int = Field(32, gt=0, description="LoRA alpha")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="LoRA dropout")
    target_modules: list[str] | str = Field("all-linear", description="modules LoRA wraps")
    merge: bool = Field(True, description="also save the adapter merged into a standalone model")


class TrainingSettings(_Section):
    """Optimiser and loop settings, passed to the TRL trainer."""

    learning_rate: float = Field(2e-4, gt=0)
    max_steps: int = Field(-1, description="stop after this many optimiser steps; -1 = use epochs")
    max_train_seconds: float | None = Field(None, gt=0, description="stop training after this many seconds "
                                            "(at the end of a step; for comparisons at equal wall-clock time)")
    preempt_grace_s: float = Field(20.0, gt=0, description="on SIGTERM/SIGINT: finish the step and checkpoint "
                                   "within this many seconds, else exit at once (Kubernetes kills after 30 s)")
    per_device_train_batch_size: int = Field(4, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    max_len: int = Field(1024, gt=8, description="longest tokenised example; longer ones are truncated")
    warmup_steps: int = Field(0, ge=0)
    lr_scheduler_type: str = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    adam_beta2: float = Field(0.999, gt=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    seed: int = 42
    save_steps: int = Field(100, gt=0, description="checkpoint every N optimiser steps")
    save_total_limit: int = Field(2, gt=0)
    logging_steps: int = Field(10, gt=0)
    packing: bool = Field(False, description="padding-free packing of short examples")
    group_by_length: bool = False
    bf16: bool | None = Field(None, description="None = bf16 on a GPU that supports it, not on CPU; true on CPU = "
                                                "bf16 autocast where the CPU has native bf16 (AVX512-BF16/AMX)")
    attn_implementation: str | None = Field(
        None, description="attention kernel while training (eager, sdpa, flash_attention_2); None = eager on CPU "
                          "(measured faster than SDPA's CPU kernels at these lengths), the model's default on GPU")
    chat_template: str | None = Field(None, description="Jinja chat template (text or a .jinja file) for models "
                                                        "without one, or to replace the model's")
    gradient_checkpointing: bool | None = Field(None, description="None = on for GPUs, off on CPU")
    num_threads: int | None = Field(None, gt=0, description="torch CPU threads; None = torch default")
    fsdp: str = Field("", description="FSDP options for the transformers Trainer, e.g. 'full_shard auto_wrap' "
                                      "(GPUs only; multi-process runs: accelerate launch / torchrun); '' = off")
    deepspeed: str | None = Field(None, description="DeepSpeed JSON config file (e.g. ZeRO stage 2/3) for the "
                                                    "transformers Trainer (GPUs only; needs the deepspeed package)")

    @field_validator("fsdp")
    @classmethod
    def _fsdp_options(cls, v: str) -> str:
        # The Trainer's FSDP option words (transformers.trainer_utils.FSDPOption).
        known = {"full_shard", "shard_grad_op", "no_shard", "hybrid_shard", "hybrid_shard_zero2", "offload",
                 "auto_wrap"}
        unknown = [w for w in v.split() if w not in known]
        if unknown:
            raise ValueError(f"unknown FSDP option(s) {', '.join(unknown)}; use words of {', '.join(sorted(known))}")
        return " ".join(v.split())


class EvalSettings(_Section):
    """Evaluation: greedy generation over the eval set, scored by the task."""

    batch_size: int = Field(8, gt=0)
    max_new_tokens: int = Field(256, gt=0)
    max_examples: int = Field(0, ge=0, description="0 = all")
    bf16: bool | None = Field(None, description="bf16 while generating; None = on GPUs and on CPUs with native bf16 "
                                                "(AVX512-BF16/AMX), except for models computed from 4-bit QLoRA "
                                                "weights; false = saved models load and generate in fp32")
    baseline: bool = Field(True, description="evaluate the untrained student before training")
    gate_metric: str | None = Field(None, description="default: field_f1 (IDP), pass_at_1 (CodeGen)")
    eval_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="held out from `data` when no eval_data is given"
    )
    num_samples: int = Field(
        1, gt=0, description="CodeGen: answers sampled per problem for pass_at_<k>; 1 = greedy pass_at_1 only"
    )
    temperature: float = Field(0.8, gt=0, description="sampling temperature of the num_samples answers")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling of the num_samples answers")
    pass_k: list[int] = Field([1, 10, 100], description="CodeGen: k of pass_at_<k> (only k <= num_samples reported)")
    code_timeout: float = Field(3.0, gt=0, description="CodeGen: seconds each test program may run")
    code_workers: int | None = Field(None, gt=0, description="CodeGen: programs run at once; None = CPU count")


class KDSettings(_Section):
    """Knowledge distillation from `teacher` (train_type KD)."""

    temperature: float = Field(2.0, gt=0, description="softens both distributions; the loss is scaled by T^2")
    alpha: float = Field(0.5, ge=0, le=1, description="total = alpha * CE + (1 - alpha) * KD")
    loss: Literal["forward_kl", "reverse_kl", "jsd"] = Field("forward_kl", description="the distillation divergence")
    beta: float = Field(0.5, gt=0, lt=1, description="jsd mixture weight")
    top_k: int = Field(0, ge=0, description="distil on the teacher's top-k tokens + a tail bucket; 0 = full vocab")
    cache: bool = Field(False, description="offline teacher: top-k log-probs computed once, stored, reused")
    cache_dir: str | None = Field(None, description="where the offline teacher cache lives; default save_dir/kd-cache")
    cache_top_k: int = Field(64, gt=0, description="k stored per token by the offline cache (top_k 0 with cache)")
    on_policy: float = Field(0.0, ge=0, le=1, description="fraction of batches on the student's own samples, scored "
                             "by the teacher (GKD's lambda); 0 = off-policy only")
    on_policy_loss: Literal["forward_kl", "reverse_kl", "jsd"] = Field(
        "reverse_kl", description="divergence on the student's samples (reverse KL: mode-seeking, as in GKD)")
    on_policy_temperature: float = Field(1.0, gt=0, description="sampling temperature of the student's answers")
    on_policy_max_new_tokens: int = Field(128, gt=0, description="longest sampled answer")
    hidden_weight: float = Field(0.0, ge=0, description="weight of the intermediate-state loss: each student layer's "
                                 "output pulled towards its teacher layer's (a pruned student; online teacher)")
    distil_prompt: bool = Field(False, description="the KD term also on the prompt's tokens (the teacher's "
                                "predictions of the document or task text): more signal per example for a "
                                "pruned student; online teacher")
    student_from_teacher: int | float | None = Field(
        None, gt=0, description="make the student by depth-pruning the teacher to this many decoder layers (or "
        "this fraction of them); `student` is then not loaded")
    prune_importance: Literal["cosine", "loss", "block"] = Field(
        "cosine", description="how layer importance is measured: cosine (per layer, one pass), loss (per layer, "
        "one pass each), block (one contiguous block, one pass)")
    prune_calibration: int = Field(64, gt=0, description="training examples that measure layer importance")


class DPOSettings(_Section):
    """Direct preference optimisation (train_type DPO), through TRL's DPOTrainer."""

    beta: float = Field(0.1, gt=0, description="strength of the pull towards the reference model")
    loss_type: str = Field("sigmoid", description="TRL loss_type: sigmoid, ipo, hinge, ...")
    precompute_ref_log_probs: bool = Field(False, description="compute the reference log-probs once, before training")
    pairs_from: Literal["data", "self"] = Field(
        "data", description="data: train on the data's {prompt,chosen,rejected} pairs; self: the data are gold "
        "records (IDP) or problems with tests (CodeGen), and the pairs are mined from the starting model's own "
        "sampled answers (best vs worst by the task's reward, weights from the grpo section)")
    mine_samples: int = Field(4, ge=2, description="pairs_from self: answers sampled per prompt")
    mine_temperature: float = Field(1.0, gt=0, description="pairs_from self: sampling temperature of the answers")
    mine_max_new_tokens: int = Field(128, gt=0, description="pairs_from self: longest sampled answer, in tokens")
    mine_max_prompts: int | None = Field(None, gt=0, description="pairs_from self: sample answers to at most this "
                                         "many training prompts (a seeded random subset; default all)")


class GRPOSettings(_Section):
    """Group relative policy optimisation on the task's own rewards (train_type GRPO), through TRL's GRPOTrainer."""

    num_generations: int = Field(4, ge=2, description="answers sampled per prompt (the group); "
                                 "training.per_device_train_batch_size counts answers and must be a multiple")
    beta: float = Field(0.04, ge=0, description="KL penalty towards the starting model (0 = none, no reference pass)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of the group's answers")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling of the group's answers")
    max_completion_length: int = Field(128, gt=0, description="longest sampled answer, in tokens")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = Field(
        "dapo", description="TRL loss_type: how token losses are averaged (dapo: over all tokens of the batch)")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="advantages divided by the reward std of the group / batch, or not scaled")
    code_format_reward: float = Field(0.0, ge=0, lt=1, description="CodeGen: reward of code that compiles and "
                                      "runs but fails its tests (0 = reward is pass/fail)")
    schema_reward: float = Field(0.1, ge=0, le=1, description="IDP: weight of schema validity; reward = "
                                 "(1 - w) * field F1 + w * schema-valid, 0 when no JSON parses")


class ModelsSettings(_Section):
    """What loading a model folder may do (llmops.models.policy): a model folder is data, not code."""

    trust_remote_code: bool = Field(False, description="run modelling code shipped in a model folder or hub repo "
                                    "(only for models you trust)")
    allow_pickle: bool = Field(False, description="load pickle weights (.bin/.pt), which can run code when loaded; "
                               "default: safetensors only")


class TrackingSettings(_Section):
    """MLflow tracking and the model registry."""

    tracking_uri: str | None = Field(None, description="default: $MLFLOW_TRACKING_URI, else MLflow's default")
    experiment_name: str = "llmops"
    run_name: str | None = None
    registered_model: str | None = Field(None, description="default: llmops-<flow>-<train>")
    register_model: bool = Field(True, description="register the model and run the gate")
    log_model: bool = True
    retry_s: float = Field(300.0, gt=0, description="how long a tracking call is retried while the server does not "
                           "answer (metrics never wait: they are kept in the run folder and sent later)")
    system_metrics: bool = True
    enabled: bool = True


class SecretEnv(_Section):
    """One Kubernetes secret exposed to every step as environment variables ({secret key: env var})."""

    secret: str = Field(description="name of the Kubernetes Secret")
    env: dict[str, str] = Field(description="secret key -> environment variable, e.g. {token: HF_TOKEN}")
    optional: bool = Field(True, description="steps start even when the secret does not exist")


def _default_secrets() -> list[SecretEnv]:
    return [
        SecretEnv(secret="hf-token", env={"token": "HF_TOKEN"}),
        SecretEnv(secret="aws-credentials", env={"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
                                                 "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}),
        SecretEnv(secret="mlflow-credentials", env={"MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
                                                    "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD"}),
    ]


class KfpSettings(_Section):
    """Kubeflow Pipelines: the image, resources and cluster placement of the pipeline's steps."""

    image: str = Field("ghcr.io/llmops/llmops:latest", description="image of every step (make image builds it)")
    pipeline_name: str = Field("llmops", description="name of the uploaded pipeline")
    experiment_name: str = Field("llmops", description="KFP experiment the runs go to")
    namespace: str | None = Field(None, description="KFP user namespace (multi-user installs)")
    tracking_uri: str = Field("http://mlflow.mlflow.svc.cluster.local:5000",
                              description="MLFLOW_TRACKING_URI set on every step")
    gpus: int = Field(1, ge=0, description="GPUs per train and eval step (0 = CPU only)")
    gpu_resource: str = Field("nvidia.com/gpu", description="extended resource name of the GPUs")
    cpu_request: str = "4"
    cpu_limit: str = "8"
    memory_request: str = "32Gi"
    memory_limit: str = "64Gi"
    light_cpu: str = Field("1", description="CPU of the light steps (validate, gate, register, deploy)")
    light_memory: str = Field("4Gi", description="memory of the light steps")
    node_selector: dict[str, str] = Field(default_factory=lambda: {"nvidia.com/gpu.present": "true"},
                                          description="node labels of GPU steps")
    tolerations: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        description="tolerations of GPU steps (Kubernetes toleration fields)")
    shm_size: str = Field("16Gi", description="/dev/shm as a memory-backed emptyDir of this size")
    volume_size: str = Field("100Gi", description="the run's own volume (created per run, deleted after)")
    storage_class: str = Field("", description="storage class of the run's volume; empty = cluster default")
    access_mode: str = "ReadWriteOnce"
    secrets: list[SecretEnv] = Field(default_factory=_default_secrets)
    train_retries: int = Field(2, ge=0, description="retries of the train step (it resumes from checkpoints)")
    retry_backoff: str = Field("60s", description="first backoff between retries; doubles up to 1h")
    train_timeout_s: int = Field(86400, gt=0, description="deadline of the train step")
    step_timeout_s: int = Field(7200, gt=0, description="deadline of every other step")
    cache_training: bool = Field(False, description="let KFP reuse a cached train step (off: always train)")
    kserve_apply: bool = Field(True, description="deploy applies the KServe InferenceService (false: only writes it)")
    num_nodes: int = Field(1, ge=1, description="> 1: the train step launches a Kubeflow Trainer TrainJob")
    trainer_runtime: str = Field("torch-distributed", description="Kubeflow Trainer runtime of the TrainJob")


class RunConfig(_Section):
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
