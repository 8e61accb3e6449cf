"""One PNG spectrogram per clip, drawn with matplotlib's specgram (no hand-written STFT).

Figures are built with `matplotlib.figure.Figure` directly (Agg canvas, no pyplot): no global
backend state, nothing left open, safe to call from worker threads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

FFT_SIZE = 512  # 16 ms at 32 kHz: enough time detail for chirps, enough frequency detail for trills
OVERLAP = 384
DYNAMIC_RANGE_DB = 80.0  # colours span the loudest bin down to this many dB below it


def render_spectrogram(
    audio: np.ndarray,
    sample_rate: int,
    path: str | Path,
    bandwidth_hz: float | None = None,
    width_px: int = 480,
    height_px: int = 220,
) -> Path:
    """Write a log-power spectrogram of mono `audio` to `path` (PNG) and return the path.

    A dashed line marks `bandwidth_hz`: above it the model made nothing (its native rate's Nyquist),
    so an empty band there is expected, not a defect.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio, got shape {audio.shape}")
    dpi = 100
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.96, bottom=0.2)  # fixed margins: faster than a layout engine
    ax = fig.add_subplot()
    if audio.size >= FFT_SIZE:
        _, _, _, image = ax.specgram(
            audio, NFFT=FFT_SIZE, Fs=sample_rate, noverlap=OVERLAP, cmap="magma", scale="dB", mode="psd"
        )
        top = float(np.nanmax(image.get_array()))
        if np.isfinite(top):
            image.set_clim(top - DYNAMIC_RANGE_DB, top)
    else:  # too short for one FFT frame: keep the layout, say why it is empty
        ax.text(0.5, 0.5, "clip shorter than one FFT frame", ha="center", va="center", transform=ax.transAxes)
    if bandwidth_hz and bandwidth_hz < sample_rate / 2:
        ax.axhline(bandwidth_hz, color="white", linestyle="--", linewidth=0.8, alpha=0.7)
    ax.set_ylim(0, sample_rate / 2)
    ax.set_xlabel("s", fontsize=8)
    ax.set_ylabel("kHz", fontsize=8)
    ax.yaxis.set_major_formatter(lambda value, _pos: f"{value / 1000:g}")
    ax.tick_params(labelsize=7)
    path = Path(path)
    fig.savefig(path, format="png", metadata={"Software": None})
    return path
