"""Reference-conditioned rows (SDEdit) on the tiny model: steps run, strength 0, invariance, NaN."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds
from birdgen_ray.generate.denoise import latent_height, steps_to_run
from birdgen_ray.generate.engine import AudioLDM2Engine
from birdgen_ray.generate.postprocess import to_output
from birdgen_ray.generate.renderer import reference_window
from birdgen_ray.rows import PlanRow
from tests.real_audio import AUDIO, needs_real_audio
from tests.test_engine import _nan_on_calls, relative_difference, relative_l2

pytestmark = [pytest.mark.usefixtures("tiny_cache_and_one_thread"), needs_real_audio]
STEPS = 4
SPINETAIL = "scikit-maad-spinetail.wav"


def make_engine(batch_size=1, scheduler="dpm", quality=None):
    generation = GenerationConfig(
        model="tiny",
        scheduler=scheduler,
        num_inference_steps=STEPS,
        output_sample_rate=16_000,
        quality=quality or QualityThresholds(max_retries=0),
    )
    return AudioLDM2Engine(generation, EngineConfig(batch_size=batch_size, device="cpu"))


def ref_row(clip_id, strength, seed=5, start=2.0, reference=SPINETAIL, prompt="a spinetail calling"):
    return PlanRow(clip_id, "spinet", prompt, "noise", seed, 1.0, reference, str(AUDIO), start, strength)


def count_unet_calls(engine) -> list[int]:
    calls = []
    engine.pipe.unet.register_forward_pre_hook(lambda _module, args: calls.append(1))
    return calls


def test_steps_to_run_rounds_half_up_and_stays_in_range():
    assert [steps_to_run(s, 4) for s in (0.0, 0.1, 0.125, 0.5, 0.6, 1.0)] == [0, 0, 1, 2, 2, 4]
    assert steps_to_run(None, 25) == 25 and steps_to_run(0.3, 25) == 8 and steps_to_run(0.7, 25) == 18


SCHEDULERS_THAT_START_PART_WAY = ["dpm", "ddim", "unipc"]


@pytest.mark.parametrize("scheduler", SCHEDULERS_THAT_START_PART_WAY)
def test_strength_selects_how_many_unet_steps_run(scheduler):
    engine = make_engine(scheduler=scheduler)
    calls = count_unet_calls(engine)
    counted = {}
    for strength in (0.0, 0.5, 0.75, 1.0):
        before = len(calls)
        (clip,) = engine.generate([ref_row(f"s{strength}", strength)])
        counted[strength] = len(calls) - before
        assert np.isfinite(clip.audio).all() and clip.verdict == "pass"
    assert counted == {0.0: 0, 0.5: 2, 0.75: 3, 1.0: STEPS}
    before = len(calls)
    engine.generate([replace(ref_row("text", None), reference=None, reference_root=None)])
    assert len(calls) - before == STEPS  # a text-only row runs the whole schedule too


def test_pndm_refuses_a_reference_row_and_still_renders_text_only_rows():
    engine = make_engine(scheduler="pndm")
    calls = count_unet_calls(engine)
    for strength in (0.0, 0.5, 1.0):
        with pytest.raises(ValueError, match="--scheduler pndm cannot start from a reference"):
            engine.generate([ref_row(f"s{strength}", strength)])
    assert calls == []
    (clip,) = engine.generate([replace(ref_row("text", None), reference=None, reference_root=None)])
    # PLMS's schedule has STEPS + 1 entries (its warm-up repeats one timestep): one UNet call each
    assert len(calls) == len(engine.pipe.scheduler.timesteps) == STEPS + 1 and np.isfinite(clip.audio).all()


@pytest.mark.parametrize("scheduler", SCHEDULERS_THAT_START_PART_WAY)
def test_strength_zero_decodes_the_encoded_reference(scheduler):
    engine = make_engine(scheduler=scheduler)
    row = ref_row("zero", 0.0)
    (clip,) = engine.generate([row])
    with torch.no_grad():
        latents = engine.references.latents(reference_window(row), latent_height(engine.pipe, 1.0))
        mel = engine.pipe.vae.decode(latents / engine.pipe.vae.config.scaling_factor).sample
        raw = engine.pipe.mel_spectrogram_to_waveform(mel)[0, :16_000].numpy()
    np.testing.assert_array_equal(clip.audio, to_output(raw, 16_000, 16_000, 1.0, -1.0))
    recorded = hashlib.sha256((AUDIO / SPINETAIL).read_bytes()).hexdigest()
    assert clip.reference_sha256 == recorded
    (other_seed,) = engine.generate([ref_row("zero", 0.0, seed=99)])  # no noise drawn: the seed is moot
    np.testing.assert_array_equal(other_seed.audio, clip.audio)


def test_reference_rows_are_deterministic_and_differ_from_text_only_and_from_each_other():
    engine = make_engine(batch_size=2)
    rows = [ref_row("half", 0.5), ref_row("full", 1.0), replace(ref_row("text", None), reference=None)]
    first, again = engine.generate(rows), make_engine(batch_size=2).generate(rows)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.audio, b.audio)
    assert all(relative_l2(first[i].audio, first[j].audio) > 1e-2 for i, j in ((0, 1), (0, 2), (1, 2)))
    assert first[2].reference_sha256 is None


MIXED = [
    ref_row("half", 0.5, seed=1),
    replace(ref_row("text", None, seed=2), reference=None, reference_root=None),
    ref_row("quarter", 0.25, seed=3, start=8.0),
    ref_row("full", 1.0, seed=4, prompt="bird song at dawn"),
    ref_row("half-b", 0.5, seed=6, start=12.5, prompt="frog"),
    ref_row("zero", 0.0, seed=7),
]


def test_mixed_references_and_strengths_do_not_depend_on_batch_mates_float64():
    alone, batched = make_engine(batch_size=1), make_engine(batch_size=3)
    alone.pipe.to(dtype=torch.float64)
    batched.pipe.to(dtype=torch.float64)
    together = batched.generate(MIXED)
    for row, clip in zip(MIXED, together):
        assert clip.clip_id == row.clip_id
        assert relative_difference(alone.generate([row])[0].audio, clip.audio) < 1e-12


def test_rows_with_different_start_steps_share_a_batch_and_the_counts_say_what_waited():
    """Sorted by start step, MIXED at batch 3 is [text 0, full 0, half 2] then [half-b 2, quarter 3, zero 4]
    (4 steps): the first batch runs 4 UNet calls with `half` held for 2, the second 2 calls with `quarter`
    held for 1 and `zero` (no step to run) for 2. Without mixing it would be 4 batches, 3 of them padded."""
    engine = make_engine(batch_size=3)
    unet_batches = []
    engine.pipe.unet.register_forward_pre_hook(lambda _m, args: unet_batches.append(args[0].shape[0]))
    engine.generate(MIXED)
    assert unet_batches == [6] * 6  # 3 rows x classifier-free guidance, 4 + 2 calls
    counts = engine.engine_counts
    assert (counts["unet_rows"], counts["padded_rows"]) == (3 * 4 + 3 * 2, 2 + 1 + 2)
    assert counts["encoder_calls"] >= 1


def test_mixed_references_and_strengths_do_not_depend_on_batch_mates_float32():
    alone, batched = make_engine(batch_size=1), make_engine(batch_size=3)
    together = batched.generate(MIXED)
    for row, clip in zip(MIXED, together):
        single = alone.generate([row])[0].audio
        assert relative_l2(single, clip.audio) < 1e-5  # the bounds of test_engine's invariance tests
        assert relative_difference(single, clip.audio) < 5e-5


def test_nan_reference_row_is_rerun_like_any_other():
    rows = [ref_row("a", 0.5, seed=1), ref_row("b", 0.5, seed=2)]
    clean = make_engine(batch_size=2).generate(rows)
    engine = make_engine(batch_size=2)
    calls = _nan_on_calls(engine.pipe.vocoder, {0}, rows=[1])
    clips = engine.generate(rows)
    assert calls[0] == 2 and [c.attempts for c in clips] == [1, 2]
    np.testing.assert_array_equal(clips[0].audio, clean[0].audio)
    assert relative_difference(clean[1].audio, clips[1].audio) < 5e-5
