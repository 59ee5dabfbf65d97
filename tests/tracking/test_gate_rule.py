"""The champion gate's rule as a pure function."""

from __future__ import annotations

import math

import pytest

from llmops.tracking.registry import decide


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
