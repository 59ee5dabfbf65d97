"""The champion gate's decision: pure, and importable without mlflow."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from llmops.tracking.gate import FAILED_REASON, decide, evaluate, failed_run, gate_tags, recheck, tagged_value


@pytest.mark.parametrize(
    ("new", "champ_version", "champ_value", "baseline", "promoted", "reference"),
    [
        (0.6, "3", 0.5, 0.9, True, 0.5),  # the champion is the reference, not the baseline
        (0.5, "3", 0.5, 0.1, False, 0.5),  # a tie keeps the champion
        (0.4, "3", 0.5, None, False, 0.5),
        (0.3, None, None, 0.2, True, 0.2),  # no champion: beat the baseline
        (0.2, None, None, 0.2, False, 0.2),
        (0.0, None, None, None, True, None),  # nothing to compare with: the first version wins
        (0.9, "2", None, 0.5, True, 0.5),  # champion without the metric: fall back to the baseline
        (0.9, "2", None, None, False, None),  # ... and with no baseline either, keep the champion
        (None, None, None, 0.1, False, None),
        (math.nan, "1", 0.1, 0.1, False, None),
        (0.9, "1", math.nan, None, False, math.nan),
    ],
)
def test_decide(new, champ_version, champ_value, baseline, promoted, reference):
    got_promoted, got_reference, reason = decide("field_f1", new, champ_version, champ_value, baseline)
    assert got_promoted is promoted
    if reference is not None and math.isnan(reference):
        assert math.isnan(got_reference)
    else:
        assert got_reference == reference
    assert "eval/field_f1" in reason or "baseline/field_f1" in reason


def test_a_new_version_is_judged_against_the_champion_of_its_registry():
    result = evaluate("m", "field_f1", 0.7, ("4", 0.6), 0.9)
    assert (result.promoted, result.version, result.champion_version, result.reference_value) == (True, None, "4", 0.6)
    assert (result.name, result.metric, result.new_value) == ("m", "field_f1", 0.7)
    assert result.reason == "eval/field_f1 0.7000 > champion v4 0.6000"


def test_recheck_decides_again_only_when_the_champion_moved():
    result = evaluate("m", "field_f1", 0.7, ("4", 0.6), None)
    assert recheck(result, ("4", 0.99), None) is False  # same champion: the first decision stands
    assert result.promoted and result.reference_value == 0.6
    assert recheck(result, ("5", 0.8), None) is True  # another run won meanwhile
    assert (result.promoted, result.champion_version, result.reference_value) == (False, "5", 0.8)


def test_a_failed_run_is_never_promoted():
    result = failed_run(evaluate("m", "field_f1", 0.7, (None, None), None))
    assert result.promoted is False and result.reason == FAILED_REASON


def test_gate_tags_record_the_decision_and_give_back_its_value():
    result = evaluate("m", "field_f1", 0.25, (None, None), 0.2)
    tags = gate_tags(result)
    assert tags == {
        "llmops.gate.metric": "field_f1",
        "llmops.gate.value": "0.25",
        "llmops.gate.reference": "0.2",
        "llmops.gate.champion_before": "",
        "llmops.gate.promoted": "true",
        "llmops.gate.reason": "eval/field_f1 0.2500 > baseline 0.2000",
    }
    assert tagged_value(tags, "field_f1") == 0.25
    assert tagged_value(tags, "accuracy") is None  # recorded for another metric
    assert tagged_value(gate_tags(evaluate("m", "field_f1", None, (None, None), None)), "field_f1") is None


_WITHOUT_MLFLOW = """
import sys
sys.modules["mlflow"] = None  # any `import mlflow` now raises ImportError
from llmops.tracking.gate import decide, evaluate, gate_tags
import llmops.tracking
from llmops.tracking.uri import resolve_tracking_uri
print(decide("f1", 0.5, "3", 0.5, None)[0], decide("f1", 0.5, None, None, None)[0],
      decide("f1", 0.5, None, None, 0.4)[0], decide("f1", 0.5, "3", None, None)[0],
      evaluate("m", "f1", 0.6, ("3", 0.5), None).promoted, gate_tags(evaluate("m", "f1", 0.6, ("3", 0.5), None))
      ["llmops.gate.champion_before"], resolve_tracking_uri("http://cfg:5000"))
"""


def test_the_gate_decides_without_mlflow_installed():
    out = subprocess.run([sys.executable, "-c", _WITHOUT_MLFLOW], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # tie keeps the champion; no champion and no baseline: first wins; beats the baseline; champion without the metric
    assert out.stdout.split() == ["False", "True", "True", "False", "True", "3", "http://cfg:5000"]
