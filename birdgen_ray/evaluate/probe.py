"""The linear probe: shrinkage linear discriminant analysis over all classes on window embeddings, in
closed form, scored per recording.

Why closed form: a softmax regression fitted by L-BFGS per fold x variant x seed cost hours at
BirdCLEF-2022 size (105 fits of ~3 TFLOP each; BENCHMARKS.md). LDA needs only sufficient statistics
(per-class counts and sums, one Gram matrix), and these add: a fold's real training windows are
summarised once (`RealFold`), and each variant adds its own rows' statistics to a copy. The probe
works in the fold's top principal components of its real training windows (`COMPONENTS`), which makes
a variant's cost (its added rows x 1024 x COMPONENTS) small, and the test windows are real.

The decision rule is LDA's with equal class priors (a class with one recording among hundreds would
otherwise never win, as the class-balanced weights did for the softmax probe); the pooled within-class
covariance is shrunk towards a sphere with the Oracle Approximating Shrinkage coefficient (Chen et al.
2010, as scikit-learn's `oas`), since rare classes give few windows per dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COMPONENTS = 128  # principal components of the fold's real training windows the probe works in


@dataclass(frozen=True)
class Stats:
    """Sufficient statistics of labelled rows in a fold's basis: they add."""

    counts: np.ndarray  # [classes]
    sums: np.ndarray  # [classes, components]
    gram: np.ndarray  # [components, components]: sum of z z^T over all rows

    def __add__(self, other: Stats) -> Stats:
        return Stats(self.counts + other.counts, self.sums + other.sums, self.gram + other.gram)


@dataclass(frozen=True)
class RealFold:
    """A fold's basis (standardise, then project on the real training windows' top components) and its
    real training windows' statistics, computed once and shared by every variant and seed."""

    mean: np.ndarray
    projection: np.ndarray  # [dimensions, components], standardisation folded in
    real: Stats
    classes: list[str]

    def project(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.mean) @ self.projection

    def stats(self, x: np.ndarray, labels: np.ndarray) -> Stats:
        z = self.project(x) if len(x) else np.zeros((0, self.projection.shape[1]))
        lookup = {c: i for i, c in enumerate(self.classes)}
        index = np.array([lookup[label] for label in np.asarray(labels).tolist()], int)
        sums = np.zeros((len(self.classes), z.shape[1]))
        np.add.at(sums, index, z)
        return Stats(np.bincount(index, minlength=len(self.classes)).astype(float), sums, z.T @ z)


def real_fold(train_x: np.ndarray, train_labels: np.ndarray, classes: list[str]) -> RealFold:
    x = np.asarray(train_x, np.float64)
    mean, std = x.mean(0), x.std(0) + 1e-6
    scaled = (x - mean) / std
    rank = max(1, min(COMPONENTS, len(x) - 1, x.shape[1]))
    _, vectors = np.linalg.eigh(scaled.T @ scaled)
    projection = vectors[:, ::-1][:, :rank] / std[:, None]
    basis = RealFold(mean, projection, Stats(np.zeros(0), np.zeros(0), np.zeros(0)), classes)
    return RealFold(mean, projection, basis.stats(train_x, train_labels), classes)


def predict(fold: RealFold, stats: Stats, test_x: np.ndarray) -> np.ndarray:
    """[test windows, classes] posterior probabilities. A class without a training window scores 0."""
    out = np.zeros((len(test_x), len(fold.classes)), np.float32)
    present = np.flatnonzero(stats.counts > 0)
    if len(present) == 1:
        out[:, present[0]] = 1.0
    if len(present) < 2 or len(test_x) == 0:
        return out
    means = stats.sums[present] / stats.counts[present, None]
    n = stats.counts.sum()
    within = stats.gram - (stats.sums[present].T / stats.counts[present]) @ stats.sums[present]
    covariance = _oas(within / n, n)
    coefficients = np.linalg.solve(covariance, means.T)  # [components, present]
    logits = fold.project(test_x) @ coefficients - 0.5 * (means * coefficients.T).sum(1)
    logits -= logits.max(1, keepdims=True)
    probabilities = np.exp(logits)
    out[:, present] = probabilities / probabilities.sum(1, keepdims=True)
    return out


def _oas(covariance: np.ndarray, n: float) -> np.ndarray:
    """Oracle Approximating Shrinkage towards mu x I (scikit-learn's `oas` formula, from a matrix)."""
    p = len(covariance)
    mu = np.trace(covariance) / p
    alpha = np.mean(covariance**2)
    denominator = (n + 1) * (alpha - mu**2 / p)
    shrinkage = 1.0 if denominator <= 0 else min((alpha + mu**2) / denominator, 1.0)
    shrunk = (1 - shrinkage) * covariance
    shrunk[np.diag_indices(p)] += shrinkage * mu + 1e-9
    return shrunk


def fit_predict(
    train_x: np.ndarray, train_labels: np.ndarray, test_x: np.ndarray, classes: list[str], real_rows: int | None = None
) -> np.ndarray:
    """One fit from scratch: the first `real_rows` rows (all by default) make the basis; all rows train."""
    rows = len(train_x) if real_rows is None else real_rows
    fold = real_fold(train_x[:rows], train_labels[:rows], classes)
    return predict(fold, fold.real + fold.stats(train_x[rows:], train_labels[rows:]), test_x)


def per_recording(window_scores: np.ndarray, window_recording: np.ndarray, recordings: np.ndarray) -> np.ndarray:
    """Mean window probability of each recording in `recordings` (labels are per recording, not per window)."""
    position = {int(r): i for i, r in enumerate(recordings)}
    rows = np.array([position.get(int(r), -1) for r in window_recording])
    keep = rows >= 0
    sums = np.zeros((len(recordings), window_scores.shape[1]))
    np.add.at(sums, rows[keep], window_scores[keep])
    return sums / np.maximum(np.bincount(rows[keep], minlength=len(recordings)), 1)[:, None]
