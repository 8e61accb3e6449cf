"""The Stable Audio Open renderer on the tiny model (CPU): diffusers' audio, per-row independence,
strength, the band above 8 kHz, and what it refuses."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds
from birdgen_ray.generate.renderer import ReferenceWindow, RenderRow
from birdgen_ray.generate.renderers.stable_audio import StableAudioRenderer
from birdgen_ray.generate.stages import StageClock
from birdgen_ray.models.random_stable_audio import build_pipeline
from birdgen_ray.models.tiny_stable_audio import T5_TOKENIZER_MAX_LENGTH, TINY_CONFIGS
from birdgen_ray.models.tokenizers import fixed_t5_tokenizer

pytestmark = pytest.mark.usefixtures("tiny_cache_and_one_thread")
STEPS = 4
WINDOW = 64  # latent frames of the test model's whole window: 64 x 256 / 44100 = 0.37 s
WINDOW_S = WINDOW * 256 / 44_100
NEGATIVE = "Low quality, distorted, music, speech."


@pytest.fixture(scope="module")
def pipe():
    """The tiny model with a short window, so that diffusers renders it quickly too."""
    configs = {**TINY_CONFIGS, "transformer": {**TINY_CONFIGS["transformer"], "sample_size": WINDOW}}
    built = build_pipeline(configs, fixed_t5_tokenizer(T5_TOKENIZER_MAX_LENGTH))
    built.set_progress_bar_config(disable=True)
    return built


def renderer(pipe, guidance=3.5, **generation) -> StableAudioRenderer:
    config = GenerationConfig(
        model="tiny-stable-audio", num_inference_steps=STEPS, guidance_scale=guidance, **generation
    )
    clock = StageClock(torch.device("cpu"))
    return StableAudioRenderer(config, EngineConfig(batch_size=4, device="cpu"), clock.stage, pipe=pipe, model_id="t")


def render(r: StableAudioRenderer, rows: list[RenderRow], duration=WINDOW_S) -> np.ndarray:
    with torch.no_grad():
        return r.decode(r.denoise(r.prepare(rows, duration, len(rows))), duration)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> str:
    """A chirp sweeping 2-16 kHz at 44.1 kHz: a reference with content above 8 kHz."""
    t = np.arange(44_100) / 44_100
    path = tmp_path_factory.mktemp("refs") / "chirp.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * (2_000 * t + 7_000 * t**2)).astype(np.float32), 44_100)
    return str(path)


def test_a_whole_window_clip_is_diffusers_clip_bit_for_bit(pipe):
    prompts, seeds = ["A song of a wren", "frog chorus near a river"], [7, 8]
    negatives = ["noise", NEGATIVE]
    with torch.no_grad():
        stereo = pipe(
            prompts,
            negative_prompt=negatives,
            num_inference_steps=STEPS,
            audio_end_in_s=WINDOW_S,
            guidance_scale=3.5,
            generator=[torch.Generator().manual_seed(s) for s in seeds],
        ).audios
    ours = render(renderer(pipe), [RenderRow(p, n, s) for p, n, s in zip(prompts, negatives, seeds)])
    np.testing.assert_array_equal(ours, stereo.mean(dim=1).numpy())  # downmix: the mean of the two channels
    assert ours.shape == (2, int(WINDOW_S * 44_100))


def test_a_row_does_not_depend_on_its_batch_mates_or_their_start_steps(pipe, recording):
    reference = ReferenceWindow(recording, 0.0)
    rows = [
        RenderRow("A song of a wren", NEGATIVE, 1),
        RenderRow("frog", NEGATIVE, 2, start_step=2, reference=reference),
        RenderRow("owl hooting", "noise", 3, start_step=1, reference=reference),
    ]
    r = renderer(pipe)
    together = render(r, rows, duration=0.25)
    calls = r.counts.unet_rows
    assert calls == 3 * STEPS - 2 - 1  # a row goes through the DiT only from its start step on
    for i, row in enumerate(rows):
        alone = render(renderer(pipe), [row], duration=0.25)[0]
        assert np.abs(alone - together[i]).max() <= 1e-5 * np.abs(alone).max()


def test_strength_maps_to_the_start_sigma(pipe, recording):
    r = renderer(pipe)
    assert [r.start_step(s, STEPS) for s in (None, 1.0, 0.5, 0.0)] == [0, 0, 2, STEPS]
    reference = ReferenceWindow(recording, 0.0)
    rows = [RenderRow("frog", NEGATIVE, 5, start_step=step, reference=reference) for step in (0, 2, STEPS)]
    with torch.no_grad():
        start = r.prepare(rows, 0.25, len(rows))
        clean = r.references.latents(reference, start.latents.shape[2])
        noise = torch.randn(start.latents[:1].shape, generator=torch.Generator().manual_seed(5))
        sigmas = start.state["schedulers"][0].sigmas
        # strength 1 is diffusers' initial_audio_waveforms: the encoding plus noise at sigma_max
        torch.testing.assert_close(start.latents[0:1], clean + noise * sigmas[0])
        torch.testing.assert_close(start.latents[1:2], clean + noise * sigmas[2])
        torch.testing.assert_close(start.latents[2:3], clean)  # strength 0: nothing left to denoise
        before = r.counts.unet_rows
        r.denoise(start)
    assert r.counts.unet_rows - before == STEPS + (STEPS - 2)  # the strength-0 row never meets the DiT
    decoded = render(renderer(pipe), rows[2:], duration=0.25)[0]
    with torch.no_grad():
        direct = pipe.vae.decode(clean).sample[:, :, : int(0.25 * 44_100)].mean(dim=1)[0].numpy()
    np.testing.assert_array_equal(decoded, direct)  # strength 0 decodes the reference's encoding


def test_the_audio_has_energy_above_8_khz(pipe):
    audio = render(renderer(pipe), [RenderRow("A song of a wren", NEGATIVE, 11)], duration=0.25)[0]
    power = np.abs(np.fft.rfft(audio)) ** 2
    above = power[np.fft.rfftfreq(audio.size, 1 / 44_100) > 8_000].sum() / power.sum()
    assert above > 0.02  # 8% for this seed; an AudioLDM2 clip resampled to 44.1 kHz has none (< 1e-6)
    r = renderer(pipe)
    assert (r.sample_rate, r.bandwidth_hz, r.family) == (44_100, 22_050.0, "stable-audio-open")


def test_text_encodings_are_cached_per_text_and_match_diffusers(pipe):
    r = renderer(pipe)
    r.encode(["frog", "A song of a wren", "frog"])
    assert r.counts.encoder_calls == 1
    r.encode(["frog"])
    assert r.counts.encoder_calls == 1  # cached
    with torch.no_grad():
        expected = pipe.encode_prompt("frog", torch.device("cpu"), False)
    torch.testing.assert_close(r._states(["frog"]), expected, rtol=1e-5, atol=1e-6)  # encoded with another text


def test_clap_settings_are_refused_with_the_flag_named(pipe):
    with pytest.raises(ValueError, match="--min-clap"):
        renderer(pipe, quality=QualityThresholds(min_clap_score=0.1))
    with pytest.raises(ValueError, match="--rank-by species"):
        renderer(pipe, candidates_per_clip=2)
    renderer(pipe, candidates_per_clip=2, rank_by="species", verifier="birdnet")  # species ranking is fine
    with pytest.raises(ValueError, match="longer than the model's 0.37 s window"):
        renderer(pipe).latent_frames(1.0)
