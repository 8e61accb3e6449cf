"""Pinned tiny-model clips (tests/pinned_cases.py): no change to the engine may move them.

Bit for bit on the platform they were pinned on (tests/pins.py says what else is compared where a CPU
family rounds differently). Text-only clips under DPM-Solver++ and DDIM, and five clips under three queue
shapes (one take, two candidates ranked by CLAP, level-gate retries) with their kept seeds and attempts.
"""

from __future__ import annotations

import pytest

from tests.pinned_cases import CASES, load_pins, render
from tests.pins import check_pins

pytestmark = pytest.mark.usefixtures("tiny_cache_and_one_thread")


@pytest.mark.parametrize("case", list(CASES))
def test_clips_match_their_pins(case):
    pins = load_pins()
    pinned = pins["cases"][case]
    clips = render(case)
    assert check_pins(pinned, pins["pinned_on"], {clip.clip_id: clip.audio for clip in clips}) == {}
    assert {c.clip_id: (c.final_seed, c.attempts) for c in clips} == {
        k: (v["final_seed"], v["attempts"]) for k, v in pinned.items()
    }
    assert all(clip.verdict == "pass" for clip in clips)


def test_the_pins_exercise_candidates_and_retries():
    """The queue-shape cases are worth pinning only while a candidate wins and the gate retries."""
    cases = load_pins()["cases"]
    assert any(
        pin["final_seed"] != row.seed for row, pin in zip(CASES["two candidates"][0], cases["two candidates"].values())
    )
    assert sorted(pin["attempts"] for pin in cases["level gate retries"].values()) == [1, 1, 2, 2, 3]
