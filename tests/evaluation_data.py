"""Real evaluation inputs made from the field recordings in ../shared/audio: 3 s windows written as
48 kHz WAVs, labelled with the species BirdNET finds in them (its README's list), a label,path table of
them, and "synthetic" outputs.

The positive control's clips are augmentations of held-in windows: other 3 s windows of the same
species that are not in the real table and do not overlap any window of it in time (on the grid, or on
the grid shifted by 1.5 s where neither grid window it spans is in the table), so no fold ever tests
their audio. Augmenting them stands in for a generator that learnt the species from audio no fold
tests. (Until issue 25 the shifted windows included halves of tested windows: leaked audio.)"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import soundfile as sf

from birdgen_ray.config import GenerationConfig
from birdgen_ray.generate.types import GeneratedClip
from birdgen_ray.index.reader import consolidate
from birdgen_ray.io.audio import decode_audio, resample
from birdgen_ray.io.storage import Output
from birdgen_ray.plan.schema import PLAN_SCHEMA
from birdgen_ray.verify.birdnet import SAMPLE_RATE, WINDOW_SAMPLES
from birdgen_ray.write.shard_writer import commit_shard
from tests.real_audio import AUDIO

FILES = (
    "opensoundscape-1min.wav",
    "opensoundscape-birds_10s.wav",
    "scikit-maad-spinetail.wav",
    "birdnet-soundscape.ogg",
)
REAL_MIN = 0.5  # a window is a real recording of its top species at this probability (the README's cut)
HELD_IN_MIN = 0.25  # other windows with this top species, overlapping no real window, are "synthetic"
FREQUENT = 2  # classes with more confident windows than this keep them all; the others keep one (left out)


@dataclass
class Window:
    source: str
    start: int  # sample at 48 kHz
    audio: np.ndarray
    label: str = ""
    score: float = 0.0


def cut_windows(offset_s: float = 0.0) -> list[Window]:
    windows = []
    for name in FILES:
        audio, rate = decode_audio((AUDIO / name).read_bytes(), name)
        audio = resample(audio, rate, SAMPLE_RATE)
        first = int(offset_s * SAMPLE_RATE)
        for start in range(first, len(audio) - WINDOW_SAMPLES + 1, WINDOW_SAMPLES):
            windows.append(Window(name, start, audio[start : start + WINDOW_SAMPLES]))
    return windows


def label_windows(model, windows: list[Window]) -> None:
    stacked = np.stack([w.audio for w in windows])
    probs = np.concatenate([model.infer(stacked[i : i + 8])[0] for i in range(0, len(stacked), 8)])
    for w, p in zip(windows, probs):
        top = int(np.argmax(p))
        # the common name as a label the plan's label rule accepts: "House Finch" -> "House_Finch"
        w.label, w.score = re.sub(r"[^A-Za-z0-9_.-]", "_", model.labels[top].split("_", 1)[1]), float(p[top])


@dataclass
class EvaluationData:
    real_table: Path
    real: list[Window]
    held_in: list[Window]  # same species, never tested, no overlap with a tested window: an informative generator
    counts: Counter


def build(model, folder: Path) -> EvaluationData:
    grid, shifted = cut_windows(0.0), cut_windows(1.5)
    label_windows(model, grid + shifted)
    confident = [w for w in grid if w.score >= REAL_MIN]
    counts = Counter(w.label for w in confident)
    real, seen = [], Counter()
    for w in confident:
        if counts[w.label] > FREQUENT or seen[w.label] == 0:
            real.append(w)
            seen[w.label] += 1
    held_in = [w for w in grid + shifted if w.label in seen and w.score >= HELD_IN_MIN and not _overlaps(w, real)]
    # a rare class with no other audio anywhere cannot be helped by any generator that never heard its
    # test recording: it would only dilute the positive control, so it is not in the real set
    helped = {w.label for w in held_in}
    real = [w for w in real if counts[w.label] > FREQUENT or w.label in helped]
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "real.csv"
    with open(table, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["label", "path"])
        for i, w in enumerate(real):
            path = folder / "audio" / f"{i:03d}.wav"
            path.parent.mkdir(exist_ok=True)
            sf.write(path, w.audio, SAMPLE_RATE, subtype="PCM_16")
            writer.writerow([w.label, path.name and f"audio/{path.name}"])
    return EvaluationData(table, real, held_in, Counter(w.label for w in real))


def _overlaps(window: Window, real: list[Window]) -> bool:
    """Shares any sample with a window of the real table (which the folds test)."""
    return any(w.source == window.source and abs(w.start - window.start) < WINDOW_SAMPLES for w in real)


def augment(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light: a gain within +-3 dB, a circular shift of up to 0.3 s, noise 45 dB below the peak."""
    out = np.roll(audio, int(rng.integers(-0.3 * SAMPLE_RATE, 0.3 * SAMPLE_RATE)))
    out = out * 10 ** (rng.uniform(-3, 3) / 20)
    out = out + rng.standard_normal(len(out)).astype(np.float32) * np.abs(out).max() * 10 ** (-45 / 20)
    return np.clip(out, -1, 1).astype(np.float32)


def write_output(
    folder: Path,
    labels: list[str],
    audio: list[np.ndarray],
    seed: int = 0,
    reference_sha256: list[str] | None = None,
    augmented: bool = True,
    **columns,
) -> Path:
    """A real output (shard tar + index, consolidated) holding these clips, as submit would write it.
    With a `reference` column, `reference_sha256` is what the engine would record: the reference's hash."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    ids = [f"held-in-{i:04d}" for i in range(n)]
    plan = pa.table(
        {
            "clip_id": ids,
            "label": labels,
            "prompt": [f"{label}, held-in window" for label in labels],
            "negative_prompt": [""] * n,
            "seed": pa.array(range(n), pa.int64()),
            "duration_s": [len(a) / SAMPLE_RATE for a in audio],
            **columns,
        },
    )
    plan = plan.cast(pa.schema([*PLAN_SCHEMA, *[plan.schema.field(c) for c in columns]]))
    hashes = reference_sha256 or [None] * n
    clips = [
        GeneratedClip(
            i,
            augment(a, rng) if augmented else a,
            SAMPLE_RATE,
            SAMPLE_RATE,
            SAMPLE_RATE / 2,
            j,
            metrics={},
            reference_sha256=h,
        )
        for j, (i, a, h) in enumerate(zip(ids, audio, hashes))
    ]
    output = Output(str(folder))
    commit_shard(output, "held-in-0", plan, clips, GenerationConfig(), "held-in-windows")
    consolidate(output)
    return folder
