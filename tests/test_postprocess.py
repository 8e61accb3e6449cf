"""Resampling, peak normalisation and WAV bytes, checked on real signals and real WAV files."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from birdgen_ray.generate.postprocess import peak_normalize
from birdgen_ray.io.audio import decode_wav, encode_wav, resample


def sine(freq_hz: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def peak_frequency(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[np.argmax(spectrum)])


def test_resample_keeps_frequency_and_length_ratio():
    audio = sine(1000.0, 16_000)
    out = resample(audio, 16_000, 32_000)
    assert out.dtype == np.float32
    assert len(out) == 2 * len(audio)
    assert abs(peak_frequency(out, 32_000) - 1000.0) <= 1.0
    down = resample(audio, 16_000, 22_050)
    assert len(down) == round(len(audio) * 22_050 / 16_000)
    assert abs(peak_frequency(down, 22_050) - 1000.0) <= 1.0


def test_upsampling_adds_no_energy_above_old_nyquist():
    rng = np.random.default_rng(0)
    noise = (0.3 * rng.standard_normal(16_000)).astype(np.float32)  # content right up to 8 kHz
    out = resample(noise, 16_000, 32_000)
    power = np.abs(np.fft.rfft(out)) ** 2
    freqs = np.fft.rfftfreq(len(out), 1 / 32_000)
    above = power[freqs > 8_500].sum() / power.sum()
    assert above < 1e-4


def test_resample_identity_and_bad_rates():
    audio = sine(440.0, 16_000)
    np.testing.assert_array_equal(resample(audio, 16_000, 16_000), audio)
    with pytest.raises(ValueError):
        resample(audio, 0, 16_000)


@pytest.mark.parametrize("peak_dbfs", [-1.0, -6.0, 0.0, -20.0])
def test_peak_normalize_hits_target(peak_dbfs):
    audio = sine(440.0, 16_000, amplitude=0.123)
    out = peak_normalize(audio, peak_dbfs)
    assert out.dtype == np.float32
    assert np.max(np.abs(out)) == pytest.approx(10 ** (peak_dbfs / 20), rel=1e-6)
    assert 20 * np.log10(np.max(np.abs(out))) == pytest.approx(peak_dbfs, abs=1e-5)


def test_peak_normalize_silence_stays_silent():
    out = peak_normalize(np.zeros(1000, dtype=np.float32), -1.0)
    assert np.all(out == 0) and np.all(np.isfinite(out))
    assert peak_normalize(np.zeros(0, dtype=np.float32), -1.0).size == 0


def test_peak_normalize_zeroes_nonfinite_samples():
    audio = sine(440.0, 16_000, amplitude=0.2)
    audio[10] = np.nan
    out = peak_normalize(audio, -1.0)
    assert np.all(np.isfinite(out))
    assert np.max(np.abs(out)) == pytest.approx(10 ** (-1 / 20), rel=1e-6)


def test_wav_round_trip_within_16_bit_quantisation():
    audio = peak_normalize(sine(1000.0, 32_000), -1.0)
    data = encode_wav(audio, 32_000)
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    back, rate = decode_wav(data)
    assert rate == 32_000 and back.dtype == np.float32 and back.shape == audio.shape
    assert np.max(np.abs(back - audio)) <= 1 / 32768 + 1e-7


def test_wav_header_says_pcm16_and_rate():
    data = encode_wav(sine(500.0, 22_050), 22_050)
    info = sf.info(io.BytesIO(data))
    assert info.samplerate == 22_050
    assert info.subtype == "PCM_16"
    assert info.channels == 1
    assert info.frames == 22_050


def test_encode_wav_clips_instead_of_wrapping():
    audio = np.array([2.0, -3.0, 0.5], dtype=np.float32)
    back, _ = decode_wav(encode_wav(audio, 16_000))
    assert back[0] == pytest.approx(1.0, abs=1 / 32768)
    assert back[1] == pytest.approx(-1.0, abs=1 / 32768)
    assert back[2] == pytest.approx(0.5, abs=1 / 32768)


def test_to_output_resamples_fits_the_length_and_normalises():
    from birdgen_ray.generate.postprocess import to_output

    raw = 0.3 * np.sin(2 * np.pi * 1000 * np.arange(16_013) / 16_000).astype(np.float32)  # 1.0008 s
    clip = to_output(raw, 16_000, 32_000, 1.0, -1.0)
    assert clip.dtype == np.float32 and len(clip) == 32_000
    assert float(np.abs(clip).max()) == pytest.approx(10 ** (-1 / 20), rel=1e-4)
    assert len(to_output(raw[:8_000], 16_000, 32_000, 1.0, -1.0)) == 32_000  # short audio is padded
