"""Finishing a clip after the model: loudness and the exact length at the output rate.

The codec and the resampler live on the ground floor (`birdgen_ray.io.audio`); this is the
generation-side policy every generator (real or null) applies the same way.
"""

from __future__ import annotations

import numpy as np

from birdgen_ray.io.audio import fit_length, resample


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


def to_output(raw: np.ndarray, source_rate: int, output_rate: int, duration_s: float, peak_dbfs: float) -> np.ndarray:
    """Raw model audio -> a finished clip: resampled, exactly `duration_s` long, peak-normalised, float32."""
    audio = resample(raw, source_rate, output_rate)
    audio = fit_length(audio, max(1, round(duration_s * output_rate)))
    return peak_normalize(audio, peak_dbfs).astype(np.float32, copy=False)
