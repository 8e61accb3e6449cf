"""Text-only clips are pinned bit for bit: owning the denoising loop (SDEdit references) must not move them.

The hashes were taken from the engine as it was before it owned its loop (diffusers' own
AudioLDM2Pipeline.__call__ did the denoising), on the 2-core CPU dev box, torch with one thread.
They are sha256 of the float32 output audio bytes. CPU kernels are deterministic for a given build
and instruction set; a different torch build or CPU family may round differently, and then these
need re-pinning from a commit whose engine is known good (the invariance tests bound the rest).
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
]
PINNED = {
    "dpm": {
        "a": "b11d2fa77f5d7ce12108825b5ef1494d0aef7a2f9592bbd078e455b59e9ed19c",
        "b": "a1be8559ad21b2c0747ef43cd1b6cd7f5630646bf0876d1e30d5aaf4522b94bb",
        "c": "d94a1c5366e451b049b74a67d8a22f0a321972c902f46c82e31d8bbcd29da32b",
    },
    "ddim": {
        "a": "54092bce1d86bb7f4a4359f87cdcfa9c063d19bfba54c236f6996695fa813bdd",
        "b": "5144937a1ba5d7f820a175c71931b05d7a4024462da689a2254b18a7697f5f3b",
        "c": "03b94bbe42e5b5fce77f2d073409c4d3e9a6b6fdd6e67141d1d2b114d0c245e2",
    },
}


@pytest.mark.parametrize("scheduler", sorted(PINNED))
def test_text_only_clips_are_bit_identical_to_the_pinned_engine(scheduler):
    generation = GenerationConfig(
        model="tiny", scheduler=scheduler, num_inference_steps=3, quality=QualityThresholds(max_retries=0)
    )
    engine = AudioLDM2Engine(generation, EngineConfig(batch_size=2, device="cpu"))
    clips = engine.generate(ROWS)
    hashes = {clip.clip_id: hashlib.sha256(clip.audio.astype("float32").tobytes()).hexdigest() for clip in clips}
    assert hashes == PINNED[scheduler]
