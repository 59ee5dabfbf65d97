"""The champion gate's decision: whether a new version beats the champion (or the baseline), and the tags saying why.

Pure and MLflow-free: `registry` reads the champion from MLflow and moves the aliases; this module only decides.
Higher `eval/<metric>` is better; strictly higher wins, so a tie keeps the champion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

CHAMPION = "champion"
CHALLENGER = "challenger"
TAG_PREFIX = "llmops.gate."
TAG_METRIC = TAG_PREFIX + "metric"
TAG_VALUE = TAG_PREFIX + "value"
FAILED_REASON = "the run failed after registration: champion not moved"


@dataclass
class GateResult:
    """The gate's decision for one registered version."""

    promoted: bool
    version: str | None
    champion_version: str | None
    new_value: float | None
    reference_value: float | None
    reason: str
    metric: str = ""
    name: str | None = None


def decide(
    metric: str,
    new_value: float | None,
    champion_version: str | None,
    champion_value: float | None,
    baseline_value: float | None,
) -> tuple[bool, float | None, str]:
    """Pure gate rule: (promoted, reference value, reason). Strictly higher wins; ties keep the champion."""
    key = f"eval/{metric}"
    if new_value is None or math.isnan(new_value):
        return False, None, f"{key} was not measured: not promoted"
    if champion_version is not None and champion_value is not None:
        reference, label = champion_value, f"champion v{champion_version}"
    elif baseline_value is not None:
        reference, label = baseline_value, "baseline"
        if champion_version is not None:
            label = f"baseline (champion v{champion_version} has no {key})"
    elif champion_version is None:
        return True, None, f"no champion and no baseline/{metric}: first version becomes champion"
    else:
        return False, None, f"champion v{champion_version} has no {key} and there is no baseline: champion kept"
    if new_value > reference:
        return True, reference, f"{key} {new_value:.4f} > {label} {reference:.4f}"
    return False, reference, f"{key} {new_value:.4f} <= {label} {reference:.4f}: champion unchanged"


def evaluate(
    name: str,
    metric: str,
    new_value: float | None,
    champion: tuple[str | None, float | None],
    baseline_value: float | None,
) -> GateResult:
    """The decision for a new version of `name` against `champion` = (version, value); the version is not set yet."""
    champion_version, champion_value = champion
    promoted, reference, reason = decide(metric, new_value, champion_version, champion_value, baseline_value)
    return GateResult(promoted, None, champion_version, new_value, reference, reason, metric, name)


def recheck(result: GateResult, champion: tuple[str | None, float | None], baseline_value: float | None) -> bool:
    """Decide `result` again if the champion changed since it was made (another run may have won); True if so."""
    champion_version, champion_value = champion
    if champion_version == result.champion_version:
        return False
    result.promoted, result.reference_value, result.reason = decide(
        result.metric, result.new_value, champion_version, champion_value, baseline_value
    )
    result.champion_version = champion_version
    return True


def failed_run(result: GateResult) -> GateResult:
    """The decision for a version whose run ended badly: never promoted."""
    result.promoted = False
    result.reason = FAILED_REASON
    return result


def gate_tags(result: GateResult) -> dict[str, str]:
    """The gate's decision as `llmops.gate.*` model-version tags."""
    values = {
        "metric": result.metric,
        "value": result.new_value,
        "reference": result.reference_value,
        "champion_before": result.champion_version,
        "promoted": str(result.promoted).lower(),
        "reason": result.reason,
    }
    return {TAG_PREFIX + k: "" if v is None else str(v) for k, v in values.items()}


def tagged_value(tags: Mapping[str, str], metric: str) -> float | None:
    """The `metric` value a version's gate tags recorded, or None (another metric, or none measured)."""
    if tags.get(TAG_METRIC) != metric:
        return None
    raw = tags.get(TAG_VALUE)
    return float(raw) if raw not in (None, "", "None") else None
