"""Default sizes of the quickstart's synthetic data and tiny models (see quickstart/recipes/*.yaml and tiny/)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class QuickstartSettings:
    """Data and model sizes of `llmops quickstart` (IDP defaults; `settings_for` gives each flow's)."""

    n_train: int = 12000
    n_eval_per_class: int = 40
    mini_fraction: float = 0.25  # IDP (tiny model): share of "key: value" warm-up documents
    scan_fraction: float = 0.25  # IDP (realistic documents): share of scans (PNG, JPEG, image-only PDF), read by OCR
    vocab_size: int = 512
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 2
    kd_student_hidden_size: int = 64  # KD: the smaller student; the teacher is the SFT quickstart's model (h128)
    kd_student_num_layers: int = 2
    kd_student_num_heads: int = 2
    seed: int = 0
    rl_start_steps: int = 8  # GRPO / mined-pair DPO start: the SFT recipe for only this many steps (room to improve)


def settings_for(flow: str, pretrained: bool = True) -> QuickstartSettings:
    """The default settings of a quickstart flow ("idp" or "codegen"), for a pretrained student (the SmolLM2
    default: a few dozen LoRA steps, so a few hundred examples) or the tiny model trained from scratch."""
    if pretrained:
        if flow == "codegen":
            return replace(QuickstartSettings(), n_train=256, n_eval_per_class=10)  # 64 steps x batch 4
        # Realistic documents (idp_documents.py): 80 steps x batch 2; 8 held-out documents per class.
        return replace(QuickstartSettings(), n_train=160, n_eval_per_class=8)
    if flow == "codegen":
        return replace(QuickstartSettings(), n_train=20000, n_eval_per_class=25)
    return QuickstartSettings()
