"""Reference recordings: where one is, its bytes' sha256, and the window of it a row uses.

Planning (which picks a recording's window and checks it) and the engine (which renders from that
window) read a reference the same way, through here, so a row names exactly the audio it was made from.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass
from typing import Any

import numpy as np

from birdgen_ray.io.audio import AudioReadError, decode_audio, resample

REFERENCE_RATE = 16_000  # AudioLDM's VAE was trained on 16 kHz log-mels
MIN_REFERENCE_S = 0.5
SILENT_PEAK = 1e-4  # -80 dBFS: a recording with no sample above this is taken as silent


@dataclass(frozen=True)
class Recording:
    uri: str
    audio: np.ndarray  # float32 mono at `rate`
    rate: int
    sha256: str  # of the file's bytes, as stored


def reference_uri(root: str | None, reference: str) -> str:
    """The reference's full location: `reference` joined to the plan's reference root, unless absolute."""
    if not root or "://" in reference or os.path.isabs(reference):
        return reference
    if "://" in root:
        return posixpath.join(root, reference)
    return os.path.join(root, reference)


def load_recording(uri: str, storage_options: dict[str, Any] | None = None, rate: int = REFERENCE_RATE) -> Recording:
    """Read, hash, decode and resample a recording (local or fsspec URI); AudioReadError names it."""
    import fsspec  # as in io.audio.read_audio: the engine imports this module

    try:
        with fsspec.open(uri, "rb", **(storage_options or {})) as fh:
            data = fh.read()
    except FileNotFoundError:
        raise AudioReadError(f"{uri}: file not found") from None
    except OSError as exc:
        raise AudioReadError(f"{uri}: cannot be read ({exc})") from None
    audio, source_rate = decode_audio(data, name=uri)
    return Recording(uri, resample(audio, source_rate, rate), rate, hashlib.sha256(data).hexdigest())


def reference_problem(recording: Recording) -> str | None:
    """Why a recording cannot serve as a reference (too short, silent), or None when it can."""
    seconds = recording.audio.size / recording.rate
    if seconds < MIN_REFERENCE_S:
        return f"{recording.uri}: {seconds:.2f} s long, shorter than {MIN_REFERENCE_S} s"
    if not np.isfinite(recording.audio).all() or float(np.abs(recording.audio).max()) < SILENT_PEAK:
        return f"{recording.uri}: silent (no sample above {20 * np.log10(SILENT_PEAK):.0f} dBFS)"
    return None


def loudest_window_start(audio: np.ndarray, rate: int, duration_s: float, hop_s: float = 0.1) -> float:
    """Start (s, a multiple of hop_s) of the `duration_s` window with the most energy; 0 if the
    recording is no longer than the window. Ties keep the earliest window."""
    window, hop = int(round(duration_s * rate)), int(round(hop_s * rate))
    if audio.size <= window:
        return 0.0
    energy = np.concatenate([[0.0], np.cumsum(np.square(audio, dtype=np.float64))])
    starts = np.arange(0, audio.size - window + 1, hop)
    sums = energy[starts + window] - energy[starts]
    return round(float(starts[int(np.argmax(sums))]) / rate, 6)


def window(recording: Recording, start_s: float, num_samples: int) -> np.ndarray:
    """`num_samples` of the recording from `start_s`, zero-padded past its end."""
    start = int(round(start_s * recording.rate))
    piece = recording.audio[start : start + num_samples]
    return np.pad(piece, (0, num_samples - piece.size)).astype(np.float32, copy=False)
