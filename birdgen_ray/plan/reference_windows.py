"""Where in a recording its class sings: BirdNET's 3 s windows, scored once per file and cached.

`plan --references` asks here which windows of a class's recordings to start its clips from:
  1. every recording is cut into BirdNET's 3 s windows and scored twice, full band and band-limited
     to the model's band (soxr down to 2 x band and back up: what AudioLDM2's 16 kHz audio keeps);
  2. both score tables are cached under the file's SHA-256 (the cache holds every label, so another
     class or a rerun reads them back without running the model);
  3. the K windows with the class's highest confidence at or above the floor are the recording's
     windows; a recording without one has none here (the caller falls back to energy).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdgen_ray.io.audio import resample
from birdgen_ray.io.recordings import Recording, load_recording
from birdgen_ray.verify.birdnet import SAMPLE_RATE, WINDOW_S, load_birdnet, split_windows
from birdgen_ray.verify.score import infer_batched

MODEL_BAND_HZ = 8_000  # AudioLDM2 renders 16 kHz audio: nothing above 8 kHz survives
CACHE_FORMAT = 1  # bump when what a cache file holds changes


@dataclass(frozen=True)
class WindowScores:
    full_band: np.ndarray  # [windows, labels] float32: BirdNET's sigmoid confidences per 3 s window
    band_limited: np.ndarray  # the same windows band-limited to MODEL_BAND_HZ
    duration_s: float  # the recording's length


@dataclass(frozen=True)
class ChosenWindow:
    window: int  # index of the 3 s window (it starts at window * 3 s)
    confidence: float  # the class's full-band confidence in it
    band_limited: float  # and once band-limited to the model's band

    @property
    def start_s(self) -> float:
        return self.window * WINDOW_S


def default_cache_dir() -> Path:
    """$BIRDGEN_CACHE_DIR, else $XDG_CACHE_HOME/birdgen-ray, else ~/.cache/birdgen-ray."""
    base = os.environ.get("BIRDGEN_CACHE_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "birdgen-ray"


def window_scores(recording: Recording, storage_options: dict, cache_dir: Path) -> WindowScores:
    """The recording's window scores from the cache, or computed (and cached) with BirdNET."""
    path = cache_dir / "reference-windows" / f"{recording.sha256}.v{CACHE_FORMAT}.{MODEL_BAND_HZ}.npz"
    if path.is_file():
        with np.load(path) as cached:
            return WindowScores(cached["full_band"], cached["band_limited"], float(cached["duration_s"]))
    full = load_recording(recording.uri, storage_options, rate=SAMPLE_RATE)  # the file as BirdNET hears it
    narrow = resample(resample(full.audio, SAMPLE_RATE, 2 * MODEL_BAND_HZ), 2 * MODEL_BAND_HZ, SAMPLE_RATE)
    model = load_birdnet()
    scores = WindowScores(
        infer_batched(model, split_windows(full.audio, SAMPLE_RATE))[0],
        infer_batched(model, split_windows(narrow, SAMPLE_RATE))[0],
        full.audio.size / SAMPLE_RATE,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial.npz")  # atomic: a killed plan leaves no torn file
    np.savez(partial, **{k: getattr(scores, k) for k in ("full_band", "band_limited")}, duration_s=scores.duration_s)
    os.replace(partial, path)
    return scores


def best_windows(scores: WindowScores, target: int, count: int, floor: float) -> list[ChosenWindow]:
    """The `count` windows with the class's highest confidence at or above `floor`, best first
    (ties: the earlier window)."""
    confidence = scores.full_band[:, target]
    order = sorted(range(len(confidence)), key=lambda w: (-float(confidence[w]), w))
    return [
        ChosenWindow(w, round(float(confidence[w]), 4), round(float(scores.band_limited[w, target]), 4))
        for w in order[:count]
        if confidence[w] >= floor
    ]


def clip_start(window: ChosenWindow, duration_s: float, recording_s: float) -> float:
    """Where a `duration_s` clip's reference starts so that it is centred on the 3 s window, kept
    inside the recording where the recording is long enough."""
    start = window.start_s + WINDOW_S / 2 - duration_s / 2
    return round(max(0.0, min(start, recording_s - duration_s)), 6)
