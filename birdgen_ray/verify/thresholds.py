"""A species threshold, absolute (`0.4`) or relative to the class's band ceiling (`0.5x`).

A clip made by a 16 kHz model is heard by BirdNET through an 8 kHz band: a class whose real
recordings score 0.3 once band-limited (the plan's `reference_ceiling`) cannot be asked for 0.5.
`0.5x` asks each class for half its own ceiling; a class without a ceiling (no reference windows
scored) has no relative threshold, and its clips never pass a relative rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from birdgen_ray.config import species_threshold_fields


@dataclass(frozen=True)
class SpeciesThreshold:
    value: float  # the confidence itself, or the share of the class's ceiling
    relative: bool = False

    def for_class(self, ceiling: float | None) -> float | None:
        """The confidence a clip of a class with this ceiling needs (None: no threshold can apply)."""
        if not self.relative:
            return self.value
        if ceiling is None or not math.isfinite(ceiling):
            return None
        return self.value * ceiling

    def passes(self, confidence: float | None, ceiling: float | None) -> bool:
        """Same rule everywhere: a NaN/None confidence (unverifiable class) never passes."""
        needed = self.for_class(ceiling)
        if needed is None or confidence is None or not math.isfinite(confidence):
            return False
        return confidence >= needed

    def __str__(self) -> str:
        return f"{self.value:g}x" if self.relative else f"{self.value:g}"


def parse_species_threshold(text: str, option: str = "--min-species-confidence") -> SpeciesThreshold:
    """'0.4' -> absolute, '0.5x' -> relative to the class's ceiling; ValueError names the option."""
    parsed = species_threshold_fields(text, option)
    return SpeciesThreshold(parsed["min_species_confidence"], parsed["species_confidence_relative"])
