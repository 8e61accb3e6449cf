"""Clips pinned bit for bit before the speed work (device CLAP features, skipped scoring, up-front prompt
encoding, overlapped post-processing, retries carried into later batches): none of it may move them.

The hashes were taken from the engine as it was before that work (commit 2ab5158's engine), on the 2-core
CPU dev box, torch with one thread: sha256 of the float32 output audio bytes, with the kept seed and the
generations spent. CPU kernels are deterministic for a given build and instruction set; a different torch
build or CPU family may round differently, and then these need re-pinning from a commit whose engine is
known good (the batch-invariance tests in test_engine.py bound the rest).

Three cases: one take per clip (scoring unused), two candidate takes ranked by CLAP, and a level gate
(`min_peak_dbfs` -27) that rejects three of the five first takes, one of them twice.
"""

from __future__ import annotations

import hashlib

import pytest

from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds
from birdgen_ray.generate.engine import AudioLDM2Engine
from birdgen_ray.rows import PlanRow

pytestmark = pytest.mark.usefixtures("tiny_cache_and_one_thread")

ROWS = [
    PlanRow("a", "wren", "A song of a Eurasian wren", "noise", 7, 1.0),
    PlanRow("b", "frog", "frog", "Low quality", 11, 1.0),
    PlanRow("c", "owl", "an owl hooting at night", "noise", 3, 1.5),
    PlanRow("d", "owl", "a tawny owl", "noise", 5, 1.0),
    PlanRow("e", "wren", "cricket chorus at dusk", "noise", 9, 1.0),
]
A = "05a8aebf67e4e0b1874714c364960c901311c95d0eeb0963f10ea20e756cff2a"
B = "d6b36cf175e49e137b06aecb560f26ddeaf9b95d1a002d032ea5502081083df0"
C = "2a72d375d6f917b43747e12e871f7c10390aa5ae625acf9d40e12461fa6947d2"
D = "8c2c2a3fc92cee9ceb4dc461b32c4a3e93393d2f6e7ab07d76b4515715d71ee4"
E = "6aa2d87c060e6c7c8df77b90b0bb00d1a7348266b0f498b45fcbf426f497a369"
CASES = {  # name: (candidates, batch size, quality, {clip_id: (sha256, final_seed, attempts)})
    "one take": (
        1,
        2,
        QualityThresholds(max_retries=0),
        {"a": (A, 7, 1), "b": (B, 11, 1), "c": (C, 3, 1), "d": (D, 5, 1), "e": (E, 9, 1)},
    ),
    "two candidates": (
        2,
        4,
        QualityThresholds(max_retries=0),
        {
            "a": (A, 7, 2),
            "b": (B, 11, 2),
            "c": ("573cad8c24074d8d33eb3d8713c04b7dcba23b3de46436baf6a2aa56390c59d6", 6522234139418488153, 2),
            "d": (D, 5, 2),
            "e": (E, 9, 2),
        },
    ),
    "level gate retries": (
        1,
        2,
        QualityThresholds(max_retries=2, min_peak_dbfs=-27.0),
        {
            "a": (A, 7, 1),
            "b": ("b68ab8a1f8a0d04946c5e41cecc77a147f6d7c62103d97327c9b244e36b4dfb7", 908299484560445364, 3),
            "c": (C, 3, 1),
            "d": ("e258ed786d1245a950b8de8f6b22282b1bc1928ec9c263b940a3fef8e321c45e", 6432831276571505689, 2),
            "e": ("6fcee8fcf54c2ab42c085c53d9782683036f4a1010334daa0e040e68a7d9b68b", 1130206700671540312, 2),
        },
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_clips_are_bit_identical_to_the_pins_taken_before_the_speed_work(case):
    candidates, batch_size, quality, pinned = CASES[case]
    generation = GenerationConfig(model="tiny", num_inference_steps=2, candidates_per_clip=candidates, quality=quality)
    engine = AudioLDM2Engine(generation, EngineConfig(batch_size=batch_size, device="cpu"))
    clips = engine.generate(ROWS)
    got = {
        clip.clip_id: (
            hashlib.sha256(clip.audio.astype("float32").tobytes()).hexdigest(),
            clip.final_seed,
            clip.attempts,
        )
        for clip in clips
    }
    assert got == pinned
    assert all(clip.verdict == "pass" for clip in clips)
