"""One PNG spectrogram per clip: matplotlib's `mlab.specgram` and a colormap, written as pixels.

No axes: drawing tick labels was 80% of a report's time (about 90 ms a clip; 92 s for 300 classes
x 4 clips). The page says what the axes are (time over the whole clip left to right, 0 Hz at the
bottom to half the sample rate at the top). Pure functions of their inputs, safe from worker threads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps, mlab
from PIL import Image

FFT_SIZE = 512  # 16 ms at 32 kHz: enough time detail for chirps, enough frequency detail for trills
OVERLAP = 384
DYNAMIC_RANGE_DB = 80.0  # colours span the loudest bin down to this many dB below it
COLORMAP = "magma"
LINE_INDEX = 255  # palette entry of the bandwidth line (white); the colormap gets 0..254
_PALETTE = colormaps[COLORMAP](np.linspace(0.0, 1.0, LINE_INDEX), bytes=True)[:, :3].ravel().tolist() + [255, 255, 255]


def render_spectrogram(
    audio: np.ndarray,
    sample_rate: int,
    path: str | Path,
    bandwidth_hz: float | None = None,
    width_px: int = 480,
    height_px: int = 220,
) -> Path:
    """Write a log-power spectrogram of mono `audio` to `path` (PNG, width_px x height_px) and return it.

    A dashed white line marks `bandwidth_hz`: above it the model made nothing (its native rate's
    Nyquist), so an empty band there is expected, not a defect.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio, got shape {audio.shape}")
    if audio.size >= FFT_SIZE:
        power, _, _ = mlab.specgram(audio, NFFT=FFT_SIZE, Fs=sample_rate, noverlap=OVERLAP, mode="psd")
        level = 10.0 * np.log10(np.maximum(power, 1e-20))
        top = float(level.max())
        shade = np.clip((level - (top - DYNAMIC_RANGE_DB)) / DYNAMIC_RANGE_DB, 0.0, 1.0)
    else:  # too short for one FFT frame: an empty (darkest) picture of the right size
        shade = np.zeros((FFT_SIZE // 2 + 1, 1))
    # nearest bin per pixel; row 0 of the picture is the top, i.e. the highest frequency
    rows = np.linspace(shade.shape[0] - 1, 0, height_px).round().astype(int)
    cols = np.linspace(0, shade.shape[1] - 1, width_px).round().astype(int)
    # a palette image: 255 shades of the colormap plus white for the line, one byte a pixel
    pixels = (shade[np.ix_(rows, cols)] * (LINE_INDEX - 1)).round().astype(np.uint8)
    if bandwidth_hz and bandwidth_hz < sample_rate / 2:
        y = round((1.0 - bandwidth_hz / (sample_rate / 2)) * (height_px - 1))
        dashes = (np.arange(width_px) // 6) % 2 == 0
        pixels[y, dashes] = LINE_INDEX
    image = Image.fromarray(pixels, mode="P")
    image.putpalette(_PALETTE)
    path = Path(path)
    image.save(path, format="PNG")
    return path
