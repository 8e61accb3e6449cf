"""From audio to the index's species columns: BirdNET over 3 s windows, max over windows per clip.

A clip's `species_confidence` is its target species' probability in its best window (a call fills
only part of a clip); `species_top1` is the label with the highest probability in any window, with
that probability. Its embedding is the mean of its windows' embeddings.

Windows go through the model in fixed batches of `batch_size` (the last padded with silence, its
rows dropped), so the interpreter is allocated once and a clip's score never depends on which other
clips shared its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from birdgen_ray.verify.birdnet import EMBEDDING_DIM, MODEL_VERSION, WINDOW_S, WINDOW_SAMPLES, BirdNet, split_windows

DEFAULT_BATCH_SIZE = 4  # windows per model call: the fastest per window on one core (BENCHMARKS.md)
VERIFIER_NAME = "birdnet"


def verifier_id(model: BirdNet) -> str:
    """What the index's `verifier` column records: model id and version, e.g. 'birdnet-2.4-fp32'."""
    return model.model_id if MODEL_VERSION in model.model_id else f"{model.model_id} v{MODEL_VERSION}"


@dataclass(frozen=True)
class ClipScore:
    species_confidence: float  # NaN when the clip's class has no BirdNET label
    species_top1: str
    species_top1_confidence: float
    embedding: np.ndarray  # [1024] float32
    window_probs: np.ndarray  # [windows, 6522] float32


def infer_batched(model: BirdNet, windows: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE):
    """model.infer over any number of windows in fixed-size batches -> (probs, embeddings)."""
    probs, embeddings = [], []
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        padded = np.zeros((batch_size, WINDOW_SAMPLES), np.float32)
        padded[: len(chunk)] = chunk
        p, e = model.infer(padded)
        probs.append(p[: len(chunk)])
        embeddings.append(e[: len(chunk)])
    if not probs:
        return np.zeros((0, len(model.labels)), np.float32), np.zeros((0, EMBEDDING_DIM), np.float32)
    return np.concatenate(probs), np.concatenate(embeddings)


def score_clips(
    model: BirdNet,
    audios: Sequence[np.ndarray],
    sample_rate: int | Sequence[int],
    targets: Sequence[int | None],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[ClipScore]:
    """One ClipScore per audio; targets[i] is the BirdNET label index of clip i's class (None: unmapped)."""
    rates = [sample_rate] * len(audios) if isinstance(sample_rate, int) else list(sample_rate)
    per_clip = [split_windows(audio, rate) for audio, rate in zip(audios, rates)]
    if not per_clip:
        return []
    probs, embeddings = infer_batched(model, np.concatenate(per_clip), batch_size)
    scores, start = [], 0
    for windows, target in zip(per_clip, targets):
        clip_probs = probs[start : start + len(windows)]
        clip_embeddings = embeddings[start : start + len(windows)]
        start += len(windows)
        best = clip_probs.max(axis=0)
        top1 = int(best.argmax())
        scores.append(
            ClipScore(
                species_confidence=float(best[target]) if target is not None else float("nan"),
                species_top1=model.labels[top1],
                species_top1_confidence=float(best[top1]),
                embedding=clip_embeddings.mean(axis=0).astype(np.float32),
                window_probs=clip_probs,
            )
        )
    return scores


def window_rows(model: BirdNet, score: ClipScore, target: int | None) -> list[dict]:
    """The per-window table of `verify --audio`: start/end seconds, target confidence, top-1."""
    rows = []
    for i, probs in enumerate(score.window_probs):
        top1 = int(probs.argmax())
        rows.append(
            {
                "window": i,
                "start_s": round(i * WINDOW_S, 3),
                "end_s": round((i + 1) * WINDOW_S, 3),
                "species_confidence": None if target is None else round(float(probs[target]), 4),
                "top1": model.labels[top1],
                "top1_confidence": round(float(probs[top1]), 4),
            }
        )
    return rows
