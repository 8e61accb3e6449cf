"""The reference log-mel front-end against an independent computation with the same parameters."""

from __future__ import annotations

import numpy as np
import pytest

from birdgen_ray.generate import reference_mel
from birdgen_ray.io.recordings import load_recording, loudest_window_start, reference_problem, window
from tests.real_audio import AUDIO, needs_real_audio


def transformers_log_mel(wave: np.ndarray) -> np.ndarray:
    """transformers.audio_utils (its own Slaney filters, framing and FFT), float64, (frames, mels)."""
    from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

    wave = wave.astype(np.float64) - wave.mean()
    wave = 0.5 * wave / (np.abs(wave).max() + 1e-8)
    filters = mel_filter_bank(513, 64, 0.0, 8000.0, 16_000, norm="slaney", mel_scale="slaney")
    mel = spectrogram(
        wave,
        window_function(1024, "hann", periodic=True),
        frame_length=1024,
        hop_length=160,
        fft_length=1024,
        power=1.0,
        center=True,
        pad_mode="reflect",
        mel_filters=filters,
        mel_floor=1e-5,
        log_mel="log",
        dtype=np.float64,
    )
    return mel.T


@needs_real_audio
@pytest.mark.parametrize("name", ["scikit-maad-spinetail.wav", "birdnet-soundscape.ogg"])
def test_log_mel_matches_transformers_on_a_real_recording(name):
    recording = load_recording(str(AUDIO / name))
    assert recording.rate == 16_000 and len(recording.sha256) == 64
    start = loudest_window_start(recording.audio, recording.rate, 2.0)
    wave = window(recording, start, 200 * 160)
    ours = reference_mel.log_mel(wave, frames=200)
    theirs = transformers_log_mel(wave)
    assert ours.shape == (200, 64) and ours.dtype == np.float32
    assert theirs.shape[0] == 201  # centred framing gives one frame more; diffusers' grid has 200
    assert np.abs(ours - theirs[:200]).max() < 1e-4
    assert ours.max() > np.log(1e-5) + 5  # real content, not the floor


def test_filters_match_transformers_slaney_bank():
    from transformers.audio_utils import mel_filter_bank

    theirs = mel_filter_bank(513, 64, 0.0, 8000.0, 16_000, norm="slaney", mel_scale="slaney").T
    np.testing.assert_allclose(reference_mel.mel_filters(), theirs, rtol=1e-9, atol=1e-12)


def test_short_window_is_padded_to_the_latent_grid_with_the_log_floor():
    wave = np.sin(np.linspace(0, 2000, 16_000)).astype(np.float32)  # 1 s: 101 centred frames
    mel = reference_mel.log_mel(wave, frames=104)
    assert mel.shape == (104, 64)
    np.testing.assert_array_equal(mel[101:], np.float32(np.log(1e-5)))


@needs_real_audio
def test_loudest_window_is_where_the_energy_is():
    recording = load_recording(str(AUDIO / "opensoundscape-birds_10s.wav"))
    start = loudest_window_start(recording.audio, recording.rate, 1.0)
    energy = lambda s: float(np.sum(window(recording, s, 16_000).astype(np.float64) ** 2))  # noqa: E731
    assert all(energy(start) >= energy(s) for s in np.arange(0.0, 9.0, 0.5))
    assert reference_problem(recording) is None
