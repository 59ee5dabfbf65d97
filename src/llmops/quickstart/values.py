"""Held-out splits of synthetic values: each value goes to training or to the held-out set by a hash of its text."""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable

HELD_OUT_BUCKET = 5  # one value in five (by hash) is reserved for the held-out set


def is_held_out(value: str) -> bool:
    """True when `value` belongs to the held-out side."""
    return zlib.crc32(value.encode()) % HELD_OUT_BUCKET == 0


class SplitValues:
    """Draws values from one side (training or held-out) of the hash split, with a seeded generator."""

    def __init__(self, rng: random.Random, held_out: bool) -> None:
        self.rng, self.held_out = rng, held_out

    def _draw(self, make: Callable[[], str]) -> str:
        while True:
            value = make()
            if is_held_out(value) == self.held_out:
                return value

    def syllables(self, onsets: tuple[str, ...], vowels: tuple[str, ...], codas: tuple[str, ...]) -> str:
        """A made-up name stem of 2-3 syllables (onset + vowel) and a coda, capitalised, from this side."""
        r = self.rng

        def make() -> str:
            sylls = [r.choice(onsets) + r.choice(vowels) for _ in range(r.randint(2, 3))]
            return ("".join(sylls) + r.choice(codas)).capitalize()

        return self._draw(make)
