"""The log-mel spectrogram AudioLDM and AudioLDM2's VAE were trained on, from a reference window.

As the original AudioLDM code computes it (float64 here, then float32 for the VAE):
  1. 16 kHz mono; the mean removed and the peak scaled to 0.5;
  2. STFT: n_fft 1024, hop 160, a periodic Hann window of 1024, reflect padding of n_fft/2; magnitude;
  3. 64 mel bands from 0 to 8000 Hz on the Slaney scale with Slaney (area) normalisation, i.e.
     librosa.filters.mel's defaults;
  4. natural log of max(mel, 1e-5);
  5. frames laid out as diffusers lays out latents: (time, mel), `frames` of them at 100 per second.
The window handed in holds frames * hop samples (real audio past `duration_s` where the recording
has it: diffusers rounds the latent grid up to whole VAE blocks and cuts the audio afterwards).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
N_FFT = 1024
HOP = 160
N_MELS = 64
F_MIN, F_MAX = 0.0, 8000.0
PEAK = 0.5
LOG_FLOOR = 1e-5


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's scale: linear below 1 kHz, logarithmic above (librosa's htk=False)."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, hz / f_sp)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filters() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) triangular filters, each scaled to unit area (Slaney norm)."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2))
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]


_FILTERS = mel_filters()
_WINDOW = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann


def log_mel(audio: np.ndarray, frames: int) -> np.ndarray:
    """float32 (frames, N_MELS) log-mel of a 16 kHz mono window (steps in the module docstring)."""
    # 1. mean removed, peak 0.5 (the small epsilon as in AudioLDM keeps near-silence finite)
    wave = np.asarray(audio, dtype=np.float64).reshape(-1)
    wave = wave - wave.mean()
    wave = PEAK * wave / (np.abs(wave).max() + 1e-8)
    # 2. centred STFT magnitude
    padded = np.pad(wave, N_FFT // 2, mode="reflect")
    count = 1 + (padded.size - N_FFT) // HOP
    index = np.arange(N_FFT)[None, :] + HOP * np.arange(count)[:, None]
    magnitude = np.abs(np.fft.rfft(padded[index] * _WINDOW, axis=1))
    # 3.-4. mel bands, natural log with a floor
    mel = np.log(np.maximum(magnitude @ _FILTERS.T, LOG_FLOOR))
    # 5. exactly `frames` frames (the centred STFT gives one more than samples / hop)
    if mel.shape[0] < frames:
        mel = np.pad(mel, ((0, frames - mel.shape[0]), (0, 0)), constant_values=np.log(LOG_FLOOR))
    return mel[:frames].astype(np.float32)
