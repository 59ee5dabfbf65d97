"""Intermediate-state distillation (`kd.hidden_weight`): the student's decoder layers pulled towards the teacher's.

For a student made from its teacher by depth pruning (`kd.student_from_teacher`, `llmops prune`), student layer j
is the teacher's kept layer `kept[j]`; its output is matched to that teacher layer's output, so the layer after a
removed block learns to do that block's work too. Minitron's practice for large depth reductions
(https://arxiv.org/abs/2407.14679, "logit + intermediate state" distillation when depth is cut significantly).

The loss per layer is the squared error summed over the real tokens of the batch (prompt and answer: the prompt's
hidden states are what the answer attends to) divided by the teacher's squared norm there: a relative error, so
layers with large activations do not dominate. The loss is the mean over the student's layers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llmops.errors import ConfigError


def model_folder(model: Any) -> str:
    """The folder (or hub id) a model was loaded from, through a PEFT wrapper."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return str(getattr(base.config, "_name_or_path", "") or getattr(base, "name_or_path", "") or "")


def layer_map(student: Any, teacher: Any) -> list[int]:
    """For each student decoder layer, the teacher layer whose output it matches: the kept layers of a pruned
    student (its `llmops_pruned.json`), or layer for layer when both have the same depth."""
    from llmops.models.prune import decoder_layers, read_report

    n_student, n_teacher = len(decoder_layers(student)[1]), len(decoder_layers(teacher)[1])
    folder = model_folder(student)
    report = read_report(folder) if folder else None
    if report and len(report.get("kept", [])) == n_student and report.get("layers_before") == n_teacher:
        return [int(i) for i in report["kept"]]
    if n_student == n_teacher:
        return list(range(n_student))
    raise ConfigError(
        f"kd.hidden_weight: the student has {n_student} decoder layers and the teacher {n_teacher}, "
        "and the student is not a pruned copy of the teacher (no llmops_pruned.json naming "
        f"{n_teacher} layers in {folder or 'its folder'}); make the student with "
        "kd.student_from_teacher or `llmops prune`, or set kd.hidden_weight: 0"
    )


@contextmanager
def layer_outputs(model: Any, which: list[int] | None = None) -> Iterator[dict[int, Any]]:
    """Collects the hidden-state output of decoder layers `which` (all by default) during forwards inside."""
    from llmops.models.prune import decoder_layers

    _, layers = decoder_layers(model)
    wanted = range(len(layers)) if which is None else which
    outputs: dict[int, Any] = {}

    def hook(index: int) -> Any:
        def fn(module: Any, args: tuple, output: Any) -> None:
            outputs[index] = output[0] if isinstance(output, tuple) else output

        return fn

    handles = [layers[i].register_forward_hook(hook(i)) for i in wanted]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def hidden_loss(student_states: dict[int, Any], teacher_states: dict[int, Any], mapping: list[int], mask: Any) -> Any:
    """Mean over student layers j of sum ||s_j - t_map[j]||^2 / sum ||t_map[j]||^2 over the tokens in `mask`
    ([batch, seq], True for real tokens)."""
    import torch

    weights = mask.to(torch.float32).unsqueeze(-1)
    losses = []
    for j, t_index in enumerate(mapping):
        student = student_states[j].float()
        teacher = teacher_states[t_index].to(student.device).float()
        error = ((student - teacher) ** 2 * weights).sum()
        scale = (teacher**2 * weights).sum().clamp(min=1e-6)
        losses.append(error / scale)
    return torch.stack(losses).mean()
