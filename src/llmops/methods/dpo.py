"""Direct preference optimisation: TRL's DPOTrainer on conversational chosen/rejected pairs, against a frozen reference.

The reference is the starting model: under LoRA/QLoRA the base with the adapter disabled (no second copy), under full
fine-tuning a frozen deep copy (or, with `dpo.precompute_ref_log_probs`, the model itself before training, its
log-probs computed once). `preference_metrics` measures the implicit DPO reward on held-out pairs.

With `dpo.pairs_from: self` the data are gold records (IDP) or problems with tests (CodeGen) and the pairs are mined
from the starting model first (`methods/dpo_mined.py`); no pairs are held out then.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmops.config import RunConfig
from llmops.errors import DataError, ModelError
from llmops.methods.base import Method, MethodContext, OnLog, Prepared, TrainResult
from llmops.methods.chat_data import append_eos, template_ends_with_eos
from llmops.models.device import has_cuda

log = logging.getLogger(__name__)


class DPO(Method):
    """Direct preference optimisation on {"prompt","chosen","rejected"} pairs, against the starting model."""

    name = "DPO"
    summary = "direct preference optimisation on chosen/rejected pairs"
    section = "dpo"
    holds_out_pairs = True

    def train_formats(self, flow_type: str) -> tuple[str, ...]:
        """Preference pairs (dpo.pairs_from data), or the flow's gold formats to mine pairs on (pairs_from self)."""
        from llmops.data.formats import PREFERENCE, eval_formats

        return PREFERENCE + eval_formats(flow_type)

    def eval_formats(self, flow_type: str) -> tuple[str, ...]:
        from llmops.data.formats import PREFERENCE, eval_formats

        return eval_formats(flow_type) + PREFERENCE

    def holds_out(self, cfg: RunConfig) -> bool:
        return cfg.dpo.pairs_from == "data"

    def train_examples(self, cfg: RunConfig, task: Any, records: list) -> list[dict]:
        """Preference examples (pairs_from data), or gold {"id","prompt","reference","class"} (pairs_from self)."""
        from llmops.data.formats import to_preference_examples
        from llmops.methods.dpo_mined import check_pairs_from, gold_examples

        check_pairs_from(cfg, records)
        if cfg.dpo.pairs_from == "self":
            return gold_examples(cfg, task, records)
        return to_preference_examples(records, task.build_prompt, task.format_answer, source=cfg.data or "data")

    def prepare(self, cfg: RunConfig, prepared: Prepared, model: Any, tokenizer: Any) -> MethodContext:
        """A frozen copy of the student as the reference of the held-out metrics under full fine-tuning (none under
        LoRA: adapter off; none without held-out pairs)."""
        return MethodContext(reference=reference_copy(model) if prepared.pairs else None)

    def prepare_trained(self, cfg: RunConfig, prepared: Prepared, model: Any, tokenizer: Any) -> MethodContext:
        """The reference is the model DPO started from: the student, loaded again (not without held-out pairs)."""
        from llmops.models.loader import load_for_inference

        if not prepared.pairs:
            return MethodContext()
        return MethodContext(reference=load_for_inference(cfg.student)[0])

    def train(
        self,
        cfg: RunConfig,
        prepared: Prepared,
        ctx: MethodContext,
        model: Any,
        tokenizer: Any,
        output_dir: Path,
        resume_from: str | bool | None,
        on_log: OnLog,
    ) -> TrainResult:
        examples = prepared.train
        if cfg.dpo.pairs_from == "self":
            from llmops.methods.dpo_mined import mined_examples

            examples = mined_examples(cfg, prepared.task, examples, model, tokenizer, output_dir, on_log)
        return train_dpo(model, tokenizer, examples, cfg, output_dir, resume_from=resume_from, on_log=on_log)

    def metrics(
        self, cfg: RunConfig, prepared: Prepared, ctx: MethodContext, model: Any, tokenizer: Any
    ) -> dict[str, float]:
        if not prepared.pairs:
            return {}
        return preference_metrics(
            model, tokenizer, prepared.pairs, cfg.dpo.beta, reference=ctx.reference, batch_size=cfg.eval.batch_size
        )


# TRL (with peft >= 0.20) gives a PeftModel passed without ref_model a frozen copy of its adapter under this name.
_TRL_REF_ADAPTER = "ref"


def dpo_config(cfg: RunConfig, output_dir: Path) -> Any:
    """The TRL DPOConfig for a run: the `dpo` section plus the same shared, CPU-safe settings as SFT."""
    from trl import DPOConfig

    from llmops.methods.trainer import trainer_args

    return DPOConfig(
        **trainer_args(cfg, output_dir),
        beta=cfg.dpo.beta,
        loss_type=[cfg.dpo.loss_type],
        precompute_ref_log_probs=cfg.dpo.precompute_ref_log_probs,
    )


def _messages(value: Any, key: str, index: int) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        return value
    raise DataError(
        f"preference example {index}: '{key}' must be a message list or a string, got {type(value).__name__}"
    )


def _pairs(examples: list[dict]) -> list[dict]:
    """The examples as {"prompt", "chosen", "rejected"} message lists (other keys such as "class" dropped)."""
    if not examples:
        raise DataError("no preference pairs; check the DPO data file")
    out = []
    for i, ex in enumerate(examples):
        if not isinstance(ex.get("prompt"), list):
            raise DataError(f"preference example {i}: expected a 'prompt' message list")
        out.append(
            {
                "prompt": ex["prompt"],
                "chosen": _messages(ex.get("chosen"), "chosen", i),
                "rejected": _messages(ex.get("rejected"), "rejected", i),
            }
        )
    return out


def _with_eos(pairs: list[dict], tokenizer: Any) -> list[dict]:
    """Pairs whose answers end with EOS when rendered: TRL adds none to conversational data, the template must."""
    first = pairs[0]
    if template_ends_with_eos(tokenizer, {"prompt": first["prompt"], "completion": first["chosen"]}):
        return pairs
    log.warning(
        "the chat template does not end the assistant turn with %s; appending it to each answer", tokenizer.eos_token
    )
    return [
        {
            "prompt": p["prompt"],
            "chosen": append_eos(p["chosen"], tokenizer),
            "rejected": append_eos(p["rejected"], tokenizer),
        }
        for p in pairs
    ]


def _dataset(examples: list[dict], tokenizer: Any) -> Any:
    from datasets import Dataset

    return Dataset.from_list(_with_eos(_pairs(examples), tokenizer))


def _is_peft(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def reference_copy(model: Any) -> Any:
    """A frozen copy of `model` in eval mode for full fine-tuning; None for a PeftModel (its adapter is disabled)."""
    if _is_peft(model):
        return None
    ref = copy.deepcopy(model)
    ref.eval()
    ref.requires_grad_(False)
    return ref


def _drop_trl_ref_adapter(model: Any, keep: bool) -> None:
    # With no ref adapter, TRL's `use_adapter(model, None)` disables the adapter: the reference is the base model.
    if not keep and _is_peft(model) and _TRL_REF_ADAPTER in model.peft_config:
        model.delete_adapter(_TRL_REF_ADAPTER)


@functools.cache
def _trainer_class() -> type:
    from trl import DPOTrainer

    class _DPOTrainer(DPOTrainer):
        """DPOTrainer whose PEFT reference is the base with the adapter disabled, also for precomputed log-probs."""

        def __init__(self, *args: Any, keep_ref_adapter: bool, **kwargs: Any) -> None:
            self.keep_ref_adapter = keep_ref_adapter  # read by the precompute, which runs inside __init__
            super().__init__(*args, **kwargs)

        def _precompute_ref_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
            _drop_trl_ref_adapter(self.model, self.keep_ref_adapter)
            return super()._precompute_ref_logps(dataset, name, batch_size)

    return _DPOTrainer


def _warn_if_adapter_trained(model: Any) -> None:
    import torch

    if any(("lora_B" in n) and torch.count_nonzero(p).item() for n, p in model.named_parameters()):
        log.warning(
            "the LoRA adapter is not at its initial (zero) state; the DPO reference is the base model with "
            "the adapter disabled, not the adapter as it is now"
        )


def make_trainer(
    model: Any,
    tokenizer: Any,
    examples: list[dict],
    cfg: RunConfig,
    output_dir: Path,
    on_log: Callable[[dict], None] | None = None,
    reference: Any = None,
) -> Any:
    """The configured DPOTrainer (pairs tokenized), not yet trained; `reference` only for full fine-tuning."""
    from transformers import PrinterCallback

    from llmops.methods.train_progress import RichProgressCallback
    from llmops.methods.trainer import Relay, keep_adapter_precision, quiet_datasets

    args = dpo_config(cfg, Path(output_dir))
    peft = _is_peft(model)
    if peft:
        _warn_if_adapter_trained(model)
        reference = None
    elif reference is None and not args.precompute_ref_log_probs:
        reference = reference_copy(model)  # TRL would reload the weights from disk by name instead
    keep = peft and _TRL_REF_ADAPTER in model.peft_config  # a user's own adapter of that name stays
    with quiet_datasets():
        trainer = _trainer_class()(
            model=model,
            ref_model=reference,
            args=args,
            keep_ref_adapter=keep,
            train_dataset=_dataset(examples, tokenizer),
            processing_class=tokenizer,
            callbacks=[RichProgressCallback("dpo"), Relay(on_log)],
        )
    _drop_trl_ref_adapter(trainer.model, keep)
    trainer.remove_callback(PrinterCallback)  # our progress callback prints instead
    keep_adapter_precision(trainer, args.bf16 and has_cuda())
    return trainer


def train_dpo(
    model: Any,
    tokenizer: Any,
    examples: list[dict],
    cfg: RunConfig,
    output_dir: Path,
    resume_from: str | bool | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Preference-tune `model` in place on chosen/rejected pairs; checkpoints go to `output_dir`."""

    def build(out: Path) -> Any:
        return make_trainer(model, tokenizer, examples, cfg, out, on_log)

    from llmops.methods.trainer import fit

    return fit(build, cfg, output_dir, resume_from)[1]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _tokenize_pair(tokenizer: Any, pair: dict) -> tuple[list[int], list[int], int]:
    """prompt+chosen ids, prompt+rejected ids and the prompt length, split the way TRL's DPOTrainer splits them."""

    def ids(messages: list[dict], **kwargs: Any) -> list[int]:
        return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"]

    prompt = ids(pair["prompt"], add_generation_prompt=True)
    chosen, rejected = ids(pair["prompt"] + pair["chosen"]), ids(pair["prompt"] + pair["rejected"])
    return chosen, rejected, min(_common_prefix(prompt, chosen), _common_prefix(prompt, rejected))


def _answer_logps(model: Any, rows: list[tuple[list[int], int]], pad_id: int) -> Any:
    """Summed log-probs of each row's tokens after its prompt length (one forward over a left-padded batch)."""
    import torch

    device = next(model.parameters()).device
    width = max(len(ids) for ids, _ in rows)
    # Left padding lines the answers up at the end, so only the last `keep` positions need logits (vocab-wide).
    keep = min(width, max(len(ids) - prompt_len for ids, prompt_len in rows) + 1)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    answer = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (ids, prompt_len) in enumerate(rows):
        input_ids[i, width - len(ids) :] = torch.tensor(ids)
        attention[i, width - len(ids) :] = 1
        answer[i, width - len(ids) + prompt_len :] = True
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    logits = (
        model(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            position_ids=positions.to(device),
            logits_to_keep=keep,
        )
        .logits[:, :-1]
        .float()
    )
    targets = input_ids[:, width - keep + 1 :].to(device)
    token_logps = logits.gather(-1, targets[..., None]).squeeze(-1) - logits.logsumexp(-1)
    # where, not a product: logits at padding positions may be NaN (a fully masked attention row)
    mask = answer[:, width - keep + 1 :].to(device)
    return torch.where(mask, token_logps, torch.zeros_like(token_logps)).sum(-1).cpu()


def _pair_logps(
    model: Any, tokenized: list[tuple[list[int], list[int], int]], pad_id: int, batch_size: int
) -> tuple[Any, Any]:
    import torch

    chosen, rejected = [], []
    for start in range(0, len(tokenized), batch_size):
        batch = tokenized[start : start + batch_size]
        rows = [(c, n) for c, _, n in batch] + [(r, n) for _, r, n in batch]
        logps = _answer_logps(model, rows, pad_id)
        chosen.append(logps[: len(batch)])
        rejected.append(logps[len(batch) :])
    return torch.cat(chosen), torch.cat(rejected)


def preference_logps(
    model: Any, tokenizer: Any, examples: list[dict], batch_size: int = 8, reference: Any = None
) -> dict[str, Any]:
    """Summed answer log-probs of chosen and rejected, for the policy and the reference (tensors, one per pair)."""
    import torch

    if reference is None and not _is_peft(model):
        raise ModelError("preference_metrics: a fully fine-tuned model needs its reference model passed in")
    pairs = _with_eos(_pairs(examples), tokenizer)
    tokenized = [_tokenize_pair(tokenizer, p) for p in pairs]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    models = [model] if reference is None else [model, reference]
    modes = [m.training for m in models]
    try:
        for m in models:
            m.eval()
        with torch.no_grad():
            policy = _pair_logps(model, tokenized, pad_id, batch_size)
            if reference is None:
                with model.disable_adapter():
                    ref = _pair_logps(model, tokenized, pad_id, batch_size)
            else:
                ref = _pair_logps(reference, tokenized, pad_id, batch_size)
    finally:
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)
    return {
        "policy_chosen": policy[0],
        "policy_rejected": policy[1],
        "reference_chosen": ref[0],
        "reference_rejected": ref[1],
    }


def preference_metrics(
    model: Any, tokenizer: Any, examples: list[dict], beta: float, reference: Any = None, batch_size: int = 8
) -> dict[str, float]:
    """preference_accuracy (chosen reward > rejected reward; ties wrong) and reward_margin over the pairs."""
    from llmops.methods.losses import dpo_loss

    logps = preference_logps(model, tokenizer, examples, batch_size, reference)
    _, chosen, rejected = dpo_loss(
        logps["policy_chosen"], logps["policy_rejected"], logps["reference_chosen"], logps["reference_rejected"], beta
    )
    return {
        "preference_accuracy": float((chosen > rejected).float().mean()),
        "reward_margin": float((chosen - rejected).mean()),
    }
