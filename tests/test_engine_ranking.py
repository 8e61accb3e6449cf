"""Which candidate take AudioLDM2Engine keeps (tiny model, CPU) when CLAP scoring misbehaves."""

from __future__ import annotations

import math

import pytest
import torch

from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds
from birdgen_ray.generate.engine import AudioLDM2Engine
from birdgen_ray.generate.seeds import take_seed
from birdgen_ray.rows import PlanRow

pytestmark = pytest.mark.usefixtures("tiny_cache_and_one_thread")


def test_a_take_whose_clap_score_is_nan_is_never_kept_over_a_scored_take():
    """fp16 CLAP (as on a GPU) can overflow to inf features: a NaN score must rank below any real one,
    not win because every comparison with NaN is false."""
    generation = GenerationConfig(
        model="tiny", num_inference_steps=2, candidates_per_clip=2, quality=QualityThresholds(max_retries=0)
    )
    engine = AudioLDM2Engine(generation, EngineConfig(batch_size=2, device="cpu"))
    calls = [0]

    def first_take_overflows(_module, _inputs, output):
        calls[0] += 1
        if calls[0] == 1:  # the one scoring call: take 0 and take 1 of the clip
            output = output.clone()
            output[0] = float("inf")
        return output

    engine.pipe.text_encoder.audio_projection.register_forward_hook(first_take_overflows)

    (clip,) = engine.generate([PlanRow("a", "frog", "frog", "noise", 5, 1.0)])

    assert calls[0] == 1
    assert clip.final_seed == take_seed(5, 1)  # the take with a real score
    assert math.isfinite(clip.metrics["clap_score"]) and clip.verdict == "pass"
    assert torch.isfinite(torch.from_numpy(clip.audio)).all()
