"""Training-set variants and the rows each adds to a fold's real training windows.

real only                 nothing added
<output>: all / passed / verified
                          that output's clips (leak-free for this fold: see `usable`)
<output>: passed Nx real windows
                          dose-response: per class, whole passed clips until their windows reach
                          N x the class's real training windows in this fold (a left-out class has
                          none: N x its real windows, as if its recordings trained)
<output>: oversampled real (matched)
                          per class, the fold's own real training windows repeated, as many rows as
                          the output's `all` variant adds to that class in this fold
<output>: re-augmented real (matched)
                          the same budget of re-augmented real training windows, in embedding
                          space: gain, additive noise, a half-window time shift (the mean of a
                          window and the next of its recording) and same-class mixup
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from birdgen_ray.evaluate.embed import Windows
from birdgen_ray.evaluate.protocol import Fold, withheld

REAL = "real"
SYNTHETIC = "synthetic"
OVERSAMPLED = "oversampled"
AUGMENTED = "augmented"
NOISE_SCALE = 0.1  # of each dimension's spread over the training windows
GAIN_SD = 0.1  # log-gain
MIXUP_MIN = 0.7  # weight of the window itself; the rest is a same-class partner


@dataclass(frozen=True)
class Synthetic:
    """One output's clips as the protocol sees them."""

    name: str
    labels: np.ndarray
    clip_ids: list[str]
    made_from: list[frozenset[int]]  # real recordings each clip was made from (by SHA-256)
    near_copy_of: list[frozenset[int]]  # real recordings each clip is a near-copy of
    windows: Windows
    bandwidth_hz: float | None
    near_cosines: dict = field(default_factory=dict)  # {(clip, recording): cosine} of the near-copies


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str = REAL
    output: int | None = None
    clips: np.ndarray | None = None  # synthetic: the clips it may use
    ratio: float | None = None  # dose-response: synthetic windows per real training window


@dataclass(frozen=True)
class FoldData:
    """What one fold's variants draw from: its real training windows and the synthetic outputs."""

    fold: Fold
    real: Windows
    labels: np.ndarray  # per recording
    synthetic: list[Synthetic]


def usable(s: Synthetic, fold: Fold) -> np.ndarray:
    """Clips that may train this fold: neither made from nor a near-copy of a recording it tests."""
    return ~(withheld(fold, s.made_from) | withheld(fold, s.near_copy_of))


def added_rows(variant: Variant, data: FoldData, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, labels) the variant adds to this fold's real training windows."""
    dim = data.real.embeddings.shape[1]
    if variant.kind == REAL:
        return np.zeros((0, dim), np.float32), np.zeros(0, data.labels.dtype)
    s = data.synthetic[variant.output]
    if variant.kind == SYNTHETIC:
        clips = variant.clips & usable(s, data.fold)
        if variant.ratio is not None:
            clips = _dose(s, clips, _real_windows_per_class(data), variant.ratio, seed)
        chosen = clips[s.windows.owner]
        return s.windows.embeddings[chosen], s.labels[s.windows.owner[chosen]]
    budget = synthetic_budget(s, data.fold)
    return _matched_real(data, budget, variant.kind == AUGMENTED, seed)


def synthetic_budget(s: Synthetic, fold: Fold) -> dict[str, int]:
    """Windows per class that the output's `all` variant adds to this fold."""
    chosen = usable(s, fold)[s.windows.owner]
    labels, counts = np.unique(s.labels[s.windows.owner[chosen]], return_counts=True)
    return dict(zip(labels.tolist(), counts.tolist()))


def _real_windows_per_class(data: FoldData) -> dict[str, int]:
    owners = data.real.owner
    train = np.isin(owners, data.fold.train)
    labels, counts = np.unique(data.labels[owners[train]], return_counts=True)
    per_class = dict(zip(labels.tolist(), counts.tolist()))
    everywhere, totals = np.unique(data.labels[owners], return_counts=True)
    for label, total in zip(everywhere.tolist(), totals.tolist()):
        per_class.setdefault(label, total)  # never trained on real in this fold: its real windows
    return per_class


def _dose(s: Synthetic, eligible: np.ndarray, real_windows: dict[str, int], ratio: float, seed: int) -> np.ndarray:
    """Whole eligible clips, in one seeded order per seed (so nested across ratios), until each class's
    synthetic windows reach ceil(ratio x its real training windows)."""
    windows_per_clip = np.bincount(s.windows.owner, minlength=len(s.labels))
    chosen = np.zeros(len(s.labels), bool)
    taken: dict[str, int] = {}
    for i in np.random.default_rng(seed).permutation(len(s.labels)):
        label = s.labels[i]
        if eligible[i] and taken.get(label, 0) < math.ceil(ratio * real_windows.get(label, 0)):
            chosen[i] = True
            taken[label] = taken.get(label, 0) + int(windows_per_clip[i])
    return chosen


def _matched_real(data: FoldData, budget: dict[str, int], augment: bool, seed: int):
    """Per class, `budget` rows drawn from the fold's real training windows of that class (repeated in
    a seeded order; re-augmented when `augment`). A class without real training windows gets none."""
    rng = np.random.default_rng(seed)
    train = np.flatnonzero(np.isin(data.real.owner, data.fold.train))
    window_labels = data.labels[data.real.owner[train]]
    spread = data.real.embeddings[train].std(0) if len(train) else 0.0
    xs, ys = [np.zeros((0, data.real.embeddings.shape[1]), np.float32)], [np.zeros(0, data.labels.dtype)]
    for label, n in sorted(budget.items()):
        own = train[window_labels == label]
        if not len(own) or not n:
            continue
        picked = np.resize(rng.permutation(own), n)
        x = data.real.embeddings[picked]
        if augment:
            x = _augment(data.real, picked, rng.choice(own, n), spread, rng)
        xs.append(x.astype(np.float32))
        ys.append(np.full(n, label, dtype=data.labels.dtype))
    return np.concatenate(xs), np.concatenate(ys)


def _augment(real: Windows, picked: np.ndarray, partners: np.ndarray, spread, rng) -> np.ndarray:
    x = real.embeddings[picked].astype(np.float64)
    following = np.minimum(picked + 1, len(real.owner) - 1)
    same_recording = real.owner[following] == real.owner[picked]
    shift = same_recording & (rng.random(len(picked)) < 0.5)
    x[shift] = 0.5 * (x[shift] + real.embeddings[following[shift]])  # half a window later
    weight = rng.uniform(MIXUP_MIN, 1.0, (len(picked), 1))
    x = weight * x + (1 - weight) * real.embeddings[partners]  # mixup within the class: the label stays
    x *= np.exp(rng.normal(0, GAIN_SD, (len(picked), 1)))
    return x + rng.normal(0, 1, x.shape) * NOISE_SCALE * spread


def unmatched_rows(data: FoldData, budget: dict[str, int]) -> int:
    """Rows of the budget a real baseline cannot add: classes with no real training window in the fold."""
    trained = set(data.labels[data.real.owner[np.isin(data.real.owner, data.fold.train)]].tolist())
    return sum(n for label, n in budget.items() if label not in trained)
