"""Signal processing after the model: resampling, loudness, WAV bytes.

Small wrappers over soxr and soundfile so every generator (real or null) treats audio the same way.
"""
from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import soxr


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr high quality); float32 mono out, a copy-free no-op when equal."""
    audio = np.asarray(audio, dtype=np.float32)
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if from_rate == to_rate:
        return audio
    return np.asarray(soxr.resample(audio, from_rate, to_rate, quality="HQ"), dtype=np.float32)


def peak_normalize(audio: np.ndarray, peak_dbfs: float) -> np.ndarray:
    """Scale so max |x| is exactly `peak_dbfs`; all-zero input stays all-zero (no divide by zero)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size == 0:
        return audio.copy()
    peak = float(np.max(np.abs(audio)))
    if not np.isfinite(peak):
        # Non-finite samples carry no usable level; zero them rather than spread NaN over the clip.
        audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(np.max(np.abs(audio)))
    if peak == 0.0:
        return audio
    target = 10.0 ** (peak_dbfs / 20.0)
    return (audio * np.float32(target / peak)).astype(np.float32)


def encode_wav(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes; samples are clipped to [-1, 1] first so nothing wraps around."""
    clipped = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    buffer = io.BytesIO()
    sf.write(buffer, clipped, int(sample_rate), format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """WAV bytes back to (float32 samples, sample rate)."""
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    return audio, int(rate)


def fit_length(audio: np.ndarray, num_samples: int) -> np.ndarray:
    """Trim or zero-pad the end to exactly `num_samples` (resampling can be off by a sample)."""
    if len(audio) >= num_samples:
        return audio[:num_samples]
    return np.pad(audio, (0, num_samples - len(audio)))


def to_output(raw: np.ndarray, source_rate: int, output_rate: int, duration_s: float, peak_dbfs: float) -> np.ndarray:
    """Raw model audio -> a finished clip: resampled, exactly `duration_s` long, peak-normalised, float32."""
    audio = resample(raw, source_rate, output_rate)
    audio = fit_length(audio, max(1, round(duration_s * output_rate)))
    return peak_normalize(audio, peak_dbfs).astype(np.float32, copy=False)
