"""`export --background DIR`: each clip mixed over a window of a real soundscape, at a drawn SNR.

BirdCLEF practitioners train on calls mixed into soundscapes without the target classes; a clip
made on silence teaches a model that birds sing in silence. For every exported clip:
  1. u = sha256(seed, clip_id) seeds a generator: the clip's choice never depends on the others;
  2. it draws a background file (sorted list), a window offset in it and an SNR in [lo, hi] dB;
  3. the background window is scaled so that 10 log10(P_clip / P_background) is that SNR, added,
     and the sum is scaled down only if it would clip.
Backgrounds are a folder (every audio file under it) or a table (CSV or Parquet) with a `path`
column, paths relative to the table's folder. Every one is opened at start: an unreadable one is
named before any clip is written.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from birdgen_ray.config import parse_range
from birdgen_ray.io.audio import AUDIO_SUFFIXES, AudioReadError, read_audio


class BackgroundError(ValueError):
    """A background folder, table or file that cannot be used; the message names it."""


@dataclass(frozen=True)
class Mix:
    audio: np.ndarray
    background_file: str
    background_offset_s: float
    background_snr_db: float


def parse_snr(text: str, flag: str = "--snr-db") -> tuple[float, float]:
    """'3:15' -> (3.0, 15.0); '6' -> (6.0, 6.0); ValueError names the option."""
    return parse_range(text, flag)


def find_backgrounds(source: str | Path) -> list[str]:
    """Sorted background paths; each one checked readable (BackgroundError names the first bad one)."""
    source = Path(source)
    if source.is_dir():
        paths = sorted(str(p) for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    elif source.is_file():
        paths = _table_paths(source)
    else:
        raise BackgroundError(f"--background {source}: not found")
    if not paths:
        raise BackgroundError(f"--background {source}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    for path in paths:
        try:
            info = sf.info(path)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise BackgroundError(f"--background {path}: not a readable audio file ({exc})") from None
        if info.frames == 0:
            raise BackgroundError(f"--background {path}: empty (no samples)")
    return paths


def _table_paths(table: Path) -> list[str]:
    import pyarrow.csv as pv
    import pyarrow.parquet as pq

    try:
        data = pq.read_table(table) if table.suffix.lower() == ".parquet" else pv.read_csv(table)
    except Exception as exc:  # noqa: BLE001 - any parse error is the table's problem, named here
        raise BackgroundError(f"--background {table}: not a readable CSV or Parquet table ({exc})") from None
    if "path" not in data.column_names:
        raise BackgroundError(f"--background {table}: needs a 'path' column, found {data.column_names}")
    return [str(p if os.path.isabs(p) else table.parent / p) for p in data["path"].to_pylist() if p]


class Backgrounds:
    """Draws and mixes; decoded backgrounds are kept (a few at a time) at the export's rate."""

    def __init__(self, paths: list[str], snr_db: tuple[float, float], seed: int, sample_rate: int):
        self.paths, self.snr_db, self.seed, self.sample_rate = paths, snr_db, int(seed), int(sample_rate)
        self._decode = functools.lru_cache(maxsize=8)(self._read)

    def _read(self, path: str) -> np.ndarray:
        try:
            return read_audio(path, self.sample_rate)[0]
        except AudioReadError as exc:
            raise BackgroundError(f"--background {exc}") from None

    def mix(self, clip: np.ndarray, clip_id: str) -> Mix:
        digest = hashlib.sha256(f"birdgen-ray:background:{self.seed}:{clip_id}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
        path = self.paths[int(rng.integers(len(self.paths)))]
        background = self._decode(path)
        span = max(0, background.size - clip.size)
        offset = int(rng.integers(span + 1))
        snr = float(rng.uniform(*self.snr_db)) if self.snr_db[0] < self.snr_db[1] else self.snr_db[0]
        window = np.resize(background[offset:], clip.size) if background.size else np.zeros_like(clip)
        mixed = clip + _gain(clip, window, snr) * window
        peak = float(np.abs(mixed).max(initial=0.0))
        if peak > 1.0:
            mixed = mixed / peak
        return Mix(mixed.astype(np.float32), path, round(offset / self.sample_rate, 6), round(snr, 4))


def _gain(clip: np.ndarray, window: np.ndarray, snr_db: float) -> float:
    """The factor that puts the background window `snr_db` below the clip (0 for a silent window)."""
    clip_power = float(np.mean(np.square(clip, dtype=np.float64)))
    window_power = float(np.mean(np.square(window, dtype=np.float64)))
    if window_power == 0.0:
        return 0.0
    return float(np.sqrt(clip_power / (window_power * 10 ** (snr_db / 10))))
