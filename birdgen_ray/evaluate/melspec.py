"""Log-mel spectrograms of the same 3 s windows BirdNET embeds, for the second model (`cnn.py`).

The windows come from `embed.window_audio`, so the n-th spectrogram of a recording is its n-th BirdNET
window: the folds, owners and variants of the embeddings apply to them unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from birdgen_ray.evaluate.embed import Windows, window_audio
from birdgen_ray.evaluate.inputs import RealRecording, SyntheticOutput
from birdgen_ray.index.reader import as_output, read_clip_bytes
from birdgen_ray.io.audio import decode_audio, decode_wav
from birdgen_ray.verify.birdnet import SAMPLE_RATE, WINDOW_S

MELS = 64
N_FFT = 2048  # 43 ms at 48 kHz
HOP = 1920  # 40 ms
FRAMES = 1 + int(WINDOW_S * SAMPLE_RATE) // HOP  # 76 per 3 s window (centred frames)
LOW_HZ, HIGH_HZ = 150.0, 11_000.0  # where most bird song is; above, real and 16 kHz synthetic audio differ most


def mel_filters() -> np.ndarray:
    """[MELS, N_FFT // 2 + 1] triangular filters on the HTK mel scale."""
    mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)  # noqa: E731
    edges_mel = np.linspace(mel(LOW_HZ), mel(HIGH_HZ), MELS + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    bins = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    rising = (bins[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    falling = (edges[2:, None] - bins[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    return np.clip(np.minimum(rising, falling), 0, None).astype(np.float32)


_FILTERS = torch.from_numpy(mel_filters())


def log_mel(windows: np.ndarray) -> np.ndarray:
    """[windows, samples at 48 kHz] -> [windows, MELS, frames] float32, each window standardised (so gain
    and recording level carry no label)."""
    if not len(windows):
        return np.zeros((0, MELS, FRAMES), np.float32)
    audio = torch.from_numpy(np.ascontiguousarray(windows, np.float32))
    spectrum = torch.stft(audio, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True).abs() ** 2
    logs = torch.log(torch.einsum("mf,bft->bmt", _FILTERS, spectrum) + 1e-10)
    logs = (logs - logs.mean((1, 2), keepdim=True)) / (logs.std((1, 2), keepdim=True) + 1e-6)
    return logs.numpy()


def mel_real(recordings: list[RealRecording]) -> np.ndarray:
    """[windows, MELS * frames] of every recording, in embed_real's window order."""
    parts = []
    for recording in recordings:
        audio, rate = decode_audio(Path(recording.path).read_bytes(), name=f"{recording.path} ({recording.where})")
        parts.append(log_mel(window_audio(audio, rate)))
    return np.concatenate(parts).reshape(sum(len(p) for p in parts), -1)


def mel_synthetic(output: SyntheticOutput) -> Windows:
    """Every clip's windows (owner = the clip's row in `output.index`); rms is not measured (1.0)."""
    out = as_output(output.uri, output.storage_options)
    parts, owners = [np.zeros((0, MELS * (FRAMES)), np.float32)], []
    for i, row in enumerate(output.index.to_pylist()):
        audio, rate = decode_wav(read_clip_bytes(out, row))
        spectra = log_mel(window_audio(audio, rate))
        parts.append(spectra.reshape(len(spectra), -1))
        owners += [i] * len(spectra)
    features = np.concatenate(parts)
    return Windows(features, np.array(owners, int), np.ones(len(features), np.float32))
