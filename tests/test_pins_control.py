"""The pins can fail: a behaviour change fails both the exact and the tolerant comparison, while a
rounding-sized difference fails only the exact one (tests/pins.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.pinned_cases import load_pins, render
from tests.pins import mismatch

pytestmark = pytest.mark.usefixtures("tiny_cache_and_one_thread")


def _failures(case: str, clips) -> dict[str, tuple[str | None, str | None]]:
    pinned = load_pins()["cases"][case]
    return {
        c.clip_id: (mismatch(pinned[c.clip_id], c.audio, True), mismatch(pinned[c.clip_id], c.audio, False))
        for c in clips
    }


@pytest.mark.parametrize(
    "change",
    [dict(scheduler="ddim"), dict(num_inference_steps=2), dict(guidance_scale=2.5)],
    ids=["another scheduler", "another step count", "another guidance"],
)
def test_a_changed_setting_fails_every_pin_both_ways(change):
    failures = _failures("text-only dpm", render("text-only dpm", **change))
    assert all(exact and tolerant for exact, tolerant in failures.values()), failures


def test_a_seed_off_by_one_fails_its_pin_both_ways():
    from birdgen_ray.config import EngineConfig, GenerationConfig
    from birdgen_ray.generate.engine import AudioLDM2Engine
    from tests.pinned_cases import CASES

    rows, fields, batch_size = CASES["text-only ddim"]
    shifted = [replace(row, seed=row.seed + 1) for row in rows]
    engine = AudioLDM2Engine(
        GenerationConfig(model="tiny", **fields), EngineConfig(batch_size=batch_size, device="cpu")
    )
    failures = _failures("text-only ddim", engine.generate(shifted))
    assert all(exact and tolerant for exact, tolerant in failures.values()), failures


def test_rounding_sized_noise_fails_only_the_exact_comparison():
    pinned = load_pins()["cases"]["text-only dpm"]
    clip = render("text-only dpm")[0]
    assert mismatch(pinned[clip.clip_id], clip.audio, exact=True) is None
    nudged = clip.audio * np.float32(1 + 2e-7)  # a last-bit difference, as another CPU family's kernels give
    assert mismatch(pinned[clip.clip_id], nudged, exact=True)
    assert mismatch(pinned[clip.clip_id], nudged, exact=False) is None
