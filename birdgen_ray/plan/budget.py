"""How many synthetic clips each class gets, and which rule decided it.

For every selected class, in this order (docs/planning.md has worked examples):

  1. want = max(0, target - real)                         rule "target" ("none" when 0)
     without --target: want = max_real - real, the gap to the largest selected class
                                                          rule "budget" ("none" when 0)
  2. --max-ratio R:   want = min(want, floor(R * real))   rule "max_ratio" when this lowered it
  3. --total-budget B, when sum(want) > B: B is split in proportion to each class's want by
     largest remainder (ties: label order), so the shares sum to exactly B and never exceed want.
                                                          rule "budget" when this lowered it
Classes left out by --include/--exclude get 0 and rule "excluded".
All arithmetic is on integers and exact fractions: the same inputs give the same counts anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from birdgen_ray.fields import option


@dataclass(frozen=True)
class BudgetConfig:
    target: int | None = option(None, "Fill every class up to N clips: synthetic = max(0, N - real).", min=0)
    max_ratio: float | None = option(None, "At most floor(R x real) synthetic clips per class.", min=0, metavar="R")
    total_budget: int | None = option(
        None,
        "At most B synthetic clips in all, split by deficit (largest remainder). Without --target the deficit "
        "is the gap to the largest class.",
        min=0,
        metavar="B",
    )

    def __post_init__(self) -> None:
        if self.target is None and self.total_budget is None:
            raise ValueError("give --target N and/or --total-budget B (--max-ratio only caps)")
        if self.target is not None and self.target < 0:
            raise ValueError(f"--target must be >= 0, got {self.target}")
        if self.max_ratio is not None and not (self.max_ratio >= 0 and math.isfinite(self.max_ratio)):
            raise ValueError(f"--max-ratio must be a finite number >= 0, got {self.max_ratio}")
        if self.total_budget is not None and self.total_budget < 0:
            raise ValueError(f"--total-budget must be >= 0, got {self.total_budget}")


@dataclass(frozen=True)
class Allocation:
    label: str
    real_count: int
    synthetic_count: int
    rule: str


def allocate(real_counts: dict[str, int], excluded: set[str], config: BudgetConfig) -> dict[str, Allocation]:
    """One Allocation per label in `real_counts`, in label order."""
    selected = sorted(label for label in real_counts if label not in excluded)
    want: dict[str, int] = {}
    rule: dict[str, str] = {}
    top = max((real_counts[label] for label in selected), default=0)
    for label in selected:
        real = real_counts[label]
        if config.target is not None:
            want[label] = max(0, config.target - real)
            rule[label] = "target" if want[label] else "none"
        else:
            want[label] = top - real
            rule[label] = "budget" if want[label] else "none"
        if config.max_ratio is not None:
            cap = math.floor(Fraction(repr(config.max_ratio)) * real)  # exact: 0.29 * 100 is 29
            if want[label] > cap:
                want[label], rule[label] = cap, "max_ratio"
    final = dict(want)
    if config.total_budget is not None and sum(want.values()) > config.total_budget:
        final = largest_remainder(want, config.total_budget)
        for label in selected:
            if final[label] < want[label]:
                rule[label] = "budget"
    return {
        label: Allocation(
            label,
            real_counts[label],
            final.get(label, 0),
            rule.get(label, "excluded"),
        )
        for label in sorted(real_counts)
    }


def largest_remainder(weights: dict[str, int], total: int) -> dict[str, int]:
    """Split `total` in proportion to `weights` (sum > total): exact integer shares summing to `total`.

    Each label gets floor(total * w / W); the units left go one each to the largest remainders,
    ties broken by label, so no share exceeds its weight.
    """
    weight_sum = sum(weights.values())
    shares = {label: total * w // weight_sum for label, w in weights.items()}
    left = total - sum(shares.values())
    by_remainder = sorted(weights, key=lambda label: (-(total * weights[label] % weight_sum), label))
    for label in by_remainder[:left]:
        shares[label] += 1
    return shares
