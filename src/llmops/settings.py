"""The sections of the run configuration (`peft:`, `training:`, `kd:`, ...): typed, with their defaults and help.

`llmops.config.RunConfig` holds one of each; `llmops.config` also re-exports them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PeftSettings(Section):
    """How the student's weights are adapted."""

    method: Literal["lora", "qlora", "full"] = Field("lora", description="lora, qlora (4-bit NF4) or full")
    r: int = Field(16, gt=0, description="LoRA rank")
    alpha: int = Field(32, gt=0, description="LoRA alpha")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="LoRA dropout")
    target_modules: list[str] | str = Field("all-linear", description="modules LoRA wraps")
    top_layers: int | None = Field(
        None,
        gt=0,
        description="LoRA only in the top N decoder layers; the layers below "
        "run without gradients (no backward pass through them: faster, less memory); "
        "None = every layer",
    )
    merge: bool = Field(True, description="also save the adapter merged into a standalone model")


class TrainingSettings(Section):
    """Optimiser and loop settings, passed to the TRL trainer."""

    learning_rate: float | None = Field(
        None,
        gt=0,
        description="peak learning rate; None = the method's "
        "default for adapters (SFT and KD 5e-4: a LoRA learns a new document "
        "format in a few dozen steps; DPO and GRPO 2e-4); 2e-4 for full "
        "fine-tuning",
    )
    max_steps: int = Field(-1, description="stop after this many optimiser steps; -1 = use epochs")
    max_train_seconds: float | None = Field(
        None,
        gt=0,
        description="stop training after this many seconds "
        "(at the end of a step; for comparisons at equal wall-clock time)",
    )
    preempt_grace_s: float = Field(
        20.0,
        gt=0,
        description="on SIGTERM/SIGINT: finish the step and checkpoint "
        "within this many seconds, else exit at once (Kubernetes kills after 30 s)",
    )
    per_device_train_batch_size: int = Field(4, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    max_len: int = Field(
        2048,
        gt=8,
        description="longest tokenised example (prompt + answer): a full page and its "
        "JSON fit; a longer document is cut at its end, with a warning naming it",
    )
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
    bf16: bool | None = Field(
        None,
        description="None = bf16 where the hardware computes it natively: a GPU "
        "that supports it, a CPU with AVX512-BF16/AMX (autocast over fp32 "
        "weights); false = fp32",
    )
    attn_implementation: str | None = Field(
        None,
        description="attention kernel while training (eager, sdpa, flash_attention_2); None = eager on CPU "
        "(measured faster than SDPA's CPU kernels at these lengths), the model's default on GPU",
    )
    chat_template: str | None = Field(
        None,
        description="Jinja chat template (text or a .jinja file) for models without one, or to replace the model's",
    )
    gradient_checkpointing: bool | None = Field(None, description="None = on for GPUs, off on CPU")
    num_threads: int | None = Field(None, gt=0, description="torch CPU threads; None = torch default")
    fsdp: str = Field(
        "",
        description="FSDP options for the transformers Trainer, e.g. 'full_shard auto_wrap' "
        "(GPUs only; multi-process runs: accelerate launch / torchrun); '' = off",
    )
    deepspeed: str | None = Field(
        None,
        description="DeepSpeed JSON config file (e.g. ZeRO stage 2/3) for the "
        "transformers Trainer (GPUs only; needs the deepspeed package)",
    )

    @field_validator("fsdp")
    @classmethod
    def _fsdp_options(cls, v: str) -> str:
        # The Trainer's FSDP option words (transformers.trainer_utils.FSDPOption).
        known = {
            "full_shard",
            "shard_grad_op",
            "no_shard",
            "hybrid_shard",
            "hybrid_shard_zero2",
            "offload",
            "auto_wrap",
        }
        unknown = [w for w in v.split() if w not in known]
        if unknown:
            raise ValueError(f"unknown FSDP option(s) {', '.join(unknown)}; use words of {', '.join(sorted(known))}")
        return " ".join(v.split())


class EvalSettings(Section):
    """Evaluation: greedy generation over the eval set, scored by the task."""

    batch_size: int = Field(8, gt=0)
    max_new_tokens: int | None = Field(
        None,
        gt=0,
        description="longest answer; None = the longest answer the "
        "IDP schema allows under constrained decoding, else 256",
    )
    constrained: bool = Field(
        True,
        description="IDP: decode every answer under the JSON schema (any JSON object "
        "without one), so it parses and validates by construction; false measures the raw "
        "model",
    )
    max_examples: int = Field(0, ge=0, description="0 = all")
    bf16: bool | None = Field(
        None,
        description="bf16 while generating; None = on GPUs and on CPUs with native bf16 "
        "(AVX512-BF16/AMX), except for models computed from 4-bit QLoRA "
        "weights; false = saved models load and generate in fp32",
    )
    baseline: bool = Field(True, description="evaluate the untrained student before training")
    gate_metric: str | None = Field(None, description="default: field_f1 (IDP), pass_at_1 (CodeGen)")
    eval_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="held out from `data` when no eval_data is given")
    num_samples: int = Field(
        1, gt=0, description="CodeGen: answers sampled per problem for pass_at_<k>; 1 = greedy pass_at_1 only"
    )
    temperature: float = Field(0.8, gt=0, description="sampling temperature of the num_samples answers")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling of the num_samples answers")
    pass_k: list[int] = Field([1, 10, 100], description="CodeGen: k of pass_at_<k> (only k <= num_samples reported)")
    code_timeout: float = Field(3.0, gt=0, description="CodeGen: seconds each test program may run")
    code_workers: int | None = Field(None, gt=0, description="CodeGen: programs run at once; None = CPU count")

    @property
    def answer_tokens(self) -> int:
        """max_new_tokens where no schema bounds the answer (unset: 256)."""
        return self.max_new_tokens or 256


class KDSettings(Section):
    """Knowledge distillation from `teacher` (train_type KD)."""

    temperature: float = Field(2.0, gt=0, description="softens both distributions; the loss is scaled by T^2")
    alpha: float = Field(0.5, ge=0, le=1, description="total = alpha * CE + (1 - alpha) * KD")
    loss: Literal["forward_kl", "reverse_kl", "jsd"] = Field("forward_kl", description="the distillation divergence")
    beta: float = Field(0.5, gt=0, lt=1, description="jsd mixture weight")
    top_k: int = Field(0, ge=0, description="distil on the teacher's top-k tokens + a tail bucket; 0 = full vocab")
    cache: bool = Field(False, description="offline teacher: top-k log-probs computed once, stored, reused")
    cache_dir: str | None = Field(None, description="where the offline teacher cache lives; default save_dir/kd-cache")
    cache_top_k: int = Field(64, gt=0, description="k stored per token by the offline cache (top_k 0 with cache)")
    on_policy: float = Field(
        0.0,
        ge=0,
        le=1,
        description="fraction of batches on the student's own samples, scored "
        "by the teacher (GKD's lambda); 0 = off-policy only",
    )
    on_policy_loss: Literal["forward_kl", "reverse_kl", "jsd"] = Field(
        "reverse_kl", description="divergence on the student's samples (reverse KL: mode-seeking, as in GKD)"
    )
    on_policy_temperature: float = Field(1.0, gt=0, description="sampling temperature of the student's answers")
    on_policy_max_new_tokens: int = Field(128, gt=0, description="longest sampled answer")
    hidden_weight: float = Field(
        0.0,
        ge=0,
        description="weight of the intermediate-state loss: each student layer's "
        "output pulled towards its teacher layer's (a pruned student; online teacher)",
    )
    distil_prompt: bool = Field(
        False,
        description="the KD term also on the prompt's tokens (the teacher's "
        "predictions of the document or task text): more signal per example for a "
        "pruned student; online teacher",
    )
    student_from_teacher: int | float | None = Field(
        None,
        gt=0,
        description="make the student by depth-pruning the teacher to this many decoder layers (or "
        "this fraction of them); `student` is then not loaded",
    )
    prune_importance: Literal["cosine", "loss", "block"] = Field(
        "cosine",
        description="how layer importance is measured: cosine (per layer, one pass), loss (per layer, "
        "one pass each), block (one contiguous block, one pass)",
    )
    prune_calibration: int = Field(64, gt=0, description="training examples that measure layer importance")


class DPOSettings(Section):
    """Direct preference optimisation (train_type DPO), through TRL's DPOTrainer."""

    beta: float = Field(0.1, gt=0, description="strength of the pull towards the reference model")
    loss_type: str = Field("sigmoid", description="TRL loss_type: sigmoid, ipo, hinge, ...")
    precompute_ref_log_probs: bool = Field(False, description="compute the reference log-probs once, before training")
    pairs_from: Literal["data", "self"] = Field(
        "data",
        description="data: train on the data's {prompt,chosen,rejected} pairs; self: the data are gold "
        "records (IDP) or problems with tests (CodeGen), and the pairs are mined from the starting model's own "
        "sampled answers (best vs worst by the task's reward, weights from the grpo section)",
    )
    mine_samples: int = Field(4, ge=2, description="pairs_from self: answers sampled per prompt")
    mine_temperature: float = Field(1.0, gt=0, description="pairs_from self: sampling temperature of the answers")
    mine_max_new_tokens: int = Field(128, gt=0, description="pairs_from self: longest sampled answer, in tokens")
    mine_max_prompts: int | None = Field(
        None,
        gt=0,
        description="pairs_from self: sample answers to at most this "
        "many training prompts (a seeded random subset; default all)",
    )


class GRPOSettings(Section):
    """Group relative policy optimisation on the task's own rewards (train_type GRPO), through TRL's GRPOTrainer."""

    num_generations: int = Field(
        4,
        ge=2,
        description="answers sampled per prompt (the group); "
        "training.per_device_train_batch_size counts answers and must be a multiple",
    )
    beta: float = Field(0.04, ge=0, description="KL penalty towards the starting model (0 = none, no reference pass)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of the group's answers")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling of the group's answers")
    max_completion_length: int = Field(128, gt=0, description="longest sampled answer, in tokens")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = Field(
        "dapo", description="TRL loss_type: how token losses are averaged (dapo: over all tokens of the batch)"
    )
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="advantages divided by the reward std of the group / batch, or not scaled"
    )
    code_format_reward: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="CodeGen: reward of code that compiles and runs but fails its tests (0 = reward is pass/fail)",
    )
    schema_reward: float = Field(
        0.1,
        ge=0,
        le=1,
        description="IDP: weight of schema validity; reward = "
        "(1 - w) * field F1 + w * schema-valid, 0 when no JSON parses",
    )


class ModelsSettings(Section):
    """What loading a model folder may do (llmops.models.policy): a model folder is data, not code."""

    trust_remote_code: bool = Field(
        False, description="run modelling code shipped in a model folder or hub repo (only for models you trust)"
    )
    allow_pickle: bool = Field(
        False, description="load pickle weights (.bin/.pt), which can run code when loaded; default: safetensors only"
    )


class TrackingSettings(Section):
    """MLflow tracking and the model registry."""

    tracking_uri: str | None = Field(None, description="default: $MLFLOW_TRACKING_URI, else MLflow's default")
    experiment_name: str = "llmops"
    run_name: str | None = None
    registered_model: str | None = Field(None, description="default: llmops-<flow>-<train>")
    register_model: bool = Field(True, description="register the model and run the gate")
    log_model: bool = True
    retry_s: float = Field(
        300.0,
        gt=0,
        description="how long a tracking call is retried while the server does not "
        "answer (metrics never wait: they are kept in the run folder and sent later)",
    )
    system_metrics: bool = True
    enabled: bool = True


class SecretEnv(Section):
    """One Kubernetes secret exposed to every step as environment variables ({secret key: env var})."""

    secret: str = Field(description="name of the Kubernetes Secret")
    env: dict[str, str] = Field(description="secret key -> environment variable, e.g. {token: HF_TOKEN}")
    optional: bool = Field(True, description="steps start even when the secret does not exist")


def _default_secrets() -> list[SecretEnv]:
    return [
        SecretEnv(secret="hf-token", env={"token": "HF_TOKEN"}),
        SecretEnv(
            secret="aws-credentials",
            env={"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"},
        ),
        SecretEnv(
            secret="mlflow-credentials",
            env={
                "MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
                "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD",
            },
        ),
    ]


class KfpSettings(Section):
    """Kubeflow Pipelines: the image, resources and cluster placement of the pipeline's steps."""

    image: str = Field("ghcr.io/llmops/llmops:latest", description="image of every step (make image builds it)")
    pipeline_name: str = Field("llmops", description="name of the uploaded pipeline")
    experiment_name: str = Field("llmops", description="KFP experiment the runs go to")
    namespace: str | None = Field(None, description="KFP user namespace (multi-user installs)")
    tracking_uri: str = Field(
        "http://mlflow.mlflow.svc.cluster.local:5000", description="MLFLOW_TRACKING_URI set on every step"
    )
    gpus: int = Field(1, ge=0, description="GPUs per train and eval step (0 = CPU only)")
    gpu_resource: str = Field("nvidia.com/gpu", description="extended resource name of the GPUs")
    cpu_request: str = "4"
    cpu_limit: str = "8"
    memory_request: str = "32Gi"
    memory_limit: str = "64Gi"
    light_cpu: str = Field("1", description="CPU of the light steps (validate, gate, register, deploy)")
    light_memory: str = Field("4Gi", description="memory of the light steps")
    node_selector: dict[str, str] = Field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"}, description="node labels of GPU steps"
    )
    tolerations: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        description="tolerations of GPU steps (Kubernetes toleration fields)",
    )
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
