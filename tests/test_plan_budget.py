"""Budget rules: exact deficits, ratio caps, a total budget split by deficit, and the rule per class."""

from __future__ import annotations

import math
import random

import pytest

from birdgen_ray.plan.budget import BudgetConfig, allocate, largest_remainder


def random_counts(n: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    return {f"sp{i:03d}": rng.randint(1, 500) for i in range(n)}


def test_target_fills_every_class_exactly_to_target():
    counts = random_counts(200, seed=1)
    result = allocate(counts, set(), BudgetConfig(target=120))
    for label, real in counts.items():
        a = result[label]
        assert a.synthetic_count == max(0, 120 - real)
        assert a.rule == ("target" if real < 120 else "none")
        assert a.real_count == real


def test_max_ratio_caps_each_class_at_floor_ratio_times_real():
    counts = {"a": 1, "b": 10, "c": 100, "d": 29, "e": 3}
    result = allocate(counts, set(), BudgetConfig(target=100, max_ratio=0.29 * 10))  # 2.9
    expected = {
        "a": (2, "max_ratio"),
        "b": (29, "max_ratio"),
        "c": (0, "none"),
        "d": (71, "target"),
        "e": (8, "max_ratio"),
    }
    assert {k: (v.synthetic_count, v.rule) for k, v in result.items()} == expected


def test_max_ratio_floor_is_exact_for_decimal_ratios():
    # 0.29 * 100 is 28.999999999999996 in floating point; the cap must still be 29
    result = allocate({"x": 100}, set(), BudgetConfig(target=1000, max_ratio=0.29))
    assert result["x"].synthetic_count == 29


def test_caps_hold_on_many_random_classes():
    counts = random_counts(300, seed=2)
    for ratio in (0.0, 0.5, 1.0, 2.5, 7.0):
        result = allocate(counts, set(), BudgetConfig(target=400, max_ratio=ratio))
        for label, real in counts.items():
            synthetic = result[label].synthetic_count
            assert synthetic <= math.floor(ratio * real + 1e-9)
            assert synthetic == min(max(0, 400 - real), math.floor(ratio * real + 1e-9))


def test_total_budget_with_target_caps_total_and_splits_by_deficit():
    counts = {"a": 10, "b": 40, "c": 70, "d": 100}  # deficits to 100: 90, 60, 30, 0
    result = allocate(counts, set(), BudgetConfig(target=100, total_budget=60))
    shares = {k: v.synthetic_count for k, v in result.items()}
    assert shares == {"a": 30, "b": 20, "c": 10, "d": 0}  # 60 * (90, 60, 30) / 180
    assert {k: v.rule for k, v in result.items()} == {"a": "budget", "b": "budget", "c": "budget", "d": "none"}


def test_total_budget_larger_than_need_changes_nothing():
    counts = {"a": 10, "b": 40}
    result = allocate(counts, set(), BudgetConfig(target=50, total_budget=10_000))
    assert {k: (v.synthetic_count, v.rule) for k, v in result.items()} == {"a": (40, "target"), "b": (10, "target")}


def test_total_budget_without_target_fills_toward_the_largest_class():
    counts = {"rare": 5, "mid": 50, "top": 105}  # gaps to 105: 100, 55, 0
    result = allocate(counts, set(), BudgetConfig(total_budget=31))
    shares = {k: v.synthetic_count for k, v in result.items()}
    assert sum(shares.values()) == 31
    assert shares["top"] == 0 and shares["rare"] > shares["mid"]
    assert result["top"].rule == "none" and result["rare"].rule == "budget"


@pytest.mark.parametrize("seed", range(5))
def test_budget_sums_exactly_and_never_exceeds_deficit_or_cap(seed):
    counts = random_counts(250, seed)
    budget = random.Random(seed).randint(1, 20_000)
    config = BudgetConfig(target=300, max_ratio=3.0, total_budget=budget)
    result = allocate(counts, set(), config)
    need = {k: min(max(0, 300 - r), math.floor(3 * r)) for k, r in counts.items()}
    assert sum(a.synthetic_count for a in result.values()) == min(budget, sum(need.values()))
    for label, a in result.items():
        assert 0 <= a.synthetic_count <= need[label]
        # proportional: within one clip of the exact share
        if sum(need.values()) > budget:
            exact = budget * need[label] / sum(need.values())
            assert abs(a.synthetic_count - exact) < 1


def test_largest_remainder_breaks_ties_by_label():
    assert largest_remainder({"b": 1, "a": 1, "c": 1}, 2) == {"a": 1, "b": 1, "c": 0}
    # quotas 1.5 and 0.5: floors 1 and 0, equal remainders, so the spare unit goes to "y" (label order)
    assert largest_remainder({"z": 3, "y": 1}, 2) == {"z": 1, "y": 1}
    assert largest_remainder({"z": 5, "y": 1}, 2) == {"z": 2, "y": 0}  # 1.67 / 0.33: larger remainder wins
    assert sum(largest_remainder({"a": 7, "b": 5, "c": 1}, 9).values()) == 9


def test_excluded_classes_get_nothing_and_do_not_set_the_top():
    counts = {"a": 10, "b": 20, "huge": 500}
    result = allocate(counts, {"huge"}, BudgetConfig(total_budget=1000))
    assert result["huge"].synthetic_count == 0 and result["huge"].rule == "excluded"
    assert result["a"].synthetic_count == 10 and result["b"].synthetic_count == 0  # gap to b, the top kept class


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="--target"):
        BudgetConfig(max_ratio=2.0)
    with pytest.raises(ValueError):
        BudgetConfig(target=-1)
    with pytest.raises(ValueError):
        BudgetConfig(target=5, max_ratio=float("nan"))
    with pytest.raises(ValueError):
        BudgetConfig(total_budget=-3)


def test_worked_example_in_docs_planning_md():
    counts = {"a": 10, "b": 60, "c": 50, "d": 500}
    plain = allocate(counts, set(), BudgetConfig(target=100, max_ratio=2))
    assert {k: (v.synthetic_count, v.rule) for k, v in plain.items()} == {
        "a": (20, "max_ratio"),
        "b": (40, "target"),
        "c": (50, "target"),
        "d": (0, "none"),
    }
    budgeted = allocate(counts, set(), BudgetConfig(target=100, max_ratio=2, total_budget=50))
    assert {k: (v.synthetic_count, v.rule) for k, v in budgeted.items()} == {
        "a": (9, "budget"),
        "b": (18, "budget"),
        "c": (23, "budget"),
        "d": (0, "none"),
    }
