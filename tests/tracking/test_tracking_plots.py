"""Loss-curve and per-field PNGs: written atomically, real PNGs, sized to their content."""

from __future__ import annotations

import struct

import pytest

from llmops.tracking.plots import field_bars, loss_curve


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_loss_curve_png(tmp_path):
    out = loss_curve([(s, 3.0 / s) for s in range(1, 80)], tmp_path / "a" / "loss.png")
    width, height = _png_size(out.read_bytes())
    assert width > 300 and height > 200
    assert sorted(p.name for p in out.parent.iterdir()) == ["loss.png"]  # no temp file left behind


def test_field_bars_grow_with_the_number_of_fields(tmp_path):
    few = field_bars({"a": 0.5, "b": 1.0}, tmp_path / "few.png")
    many = field_bars({f"field_{i}": i / 40 for i in range(40)}, tmp_path / "many.png")
    assert _png_size(many.read_bytes())[1] > 2 * _png_size(few.read_bytes())[1]


def test_empty_inputs_are_rejected(tmp_path):
    with pytest.raises(ValueError):
        loss_curve([], tmp_path / "x.png")
    with pytest.raises(ValueError):
        field_bars({}, tmp_path / "y.png")
    assert not list(tmp_path.iterdir())
