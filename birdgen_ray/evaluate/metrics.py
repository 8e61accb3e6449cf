"""Classification metrics of a probe's recording-level scores: per class, macro, per real-count bin,
with cluster-bootstrap 95% intervals (over groups, with the seeds folded in) and paired differences.

`truth` and `scores` are [recordings, classes]: one-hot labels and probabilities.
  ROC-AUC  per class with at least one positive and one negative; others are skipped (BirdCLEF 2024-26).
  cmAP     padded: `padding` rows of all-ones appended to truth and scores, so every class has a
           positive and a class with few positives cannot swing the mean alone (BirdCLEF 2023).
  F1       at `threshold`, per class with a positive.

They are computed here with numpy rather than by calling scikit-learn per class: the bootstrap scores
every variant on a thousand resamples, and scikit-learn's per-call checks would make that minutes.
tests/test_evaluate_units.py holds them equal to roc_auc_score, average_precision_score and f1_score.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

METRICS = ("roc_auc", "cmap", "f1")
BINS = (("1", 1, 1), ("2-5", 2, 5), ("6-10", 6, 10), ("11-50", 11, 50), (">50", 51, None))


def count_bin(real_count: int) -> str:
    """The real-count bin of a class: 1, 2-5, 6-10, 11-50 or >50 recordings."""
    for name, low, high in BINS:
        if real_count >= low and (high is None or real_count <= high):
            return name
    raise ValueError(f"a class needs at least one real recording, got {real_count}")


def per_class(
    truth: np.ndarray, scores: np.ndarray, threshold: float = 0.5, padding: int = 5, counted: np.ndarray | None = None
) -> dict:
    """{metric: [classes] float array}, NaN where a class is skipped.

    `counted` [recordings, classes] says which recordings count for which class (default: all).
    """
    counted = np.ones(truth.shape, bool) if counted is None else counted
    truth = np.where(counted, truth, 0.0)
    positives = truth.sum(0)
    negatives = counted.sum(0) - positives
    # ties share their mean rank, as in the Mann-Whitney form of ROC-AUC; uncounted cells are not ranked
    ranks = rankdata(np.where(counted, scores, np.nan), axis=0, nan_policy="omit")
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (np.nansum(ranks * truth, 0) - positives * (positives + 1) / 2) / (positives * negatives)
        predicted = (scores >= threshold) & counted
        true_pos = (predicted & (truth > 0)).sum(0)
        f1 = 2 * true_pos / (2 * true_pos + (predicted & (truth == 0)).sum(0) + (positives - true_pos))
    cmap = np.array(
        [
            average_precision(
                np.r_[truth[counted[:, c], c], np.ones(padding)], np.r_[scores[counted[:, c], c], np.ones(padding)]
            )
            for c in range(truth.shape[1])
        ]
    )
    return {
        "roc_auc": np.where((positives > 0) & (negatives > 0), auc, np.nan),
        "cmap": cmap,
        "f1": np.where(positives > 0, f1, np.nan),
    }


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """Sum over distinct score thresholds, high to low, of (recall step) x precision: sklearn's AP."""
    order = np.argsort(-scores, kind="stable")
    y, s = truth[order], scores[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    true_pos = np.cumsum(y)[last_of_tie]
    if true_pos[-1] == 0:
        return float("nan")
    precision = true_pos / (last_of_tie + 1)
    recall_steps = np.diff(np.r_[0.0, true_pos]) / true_pos[-1]
    return float((recall_steps * precision).sum())


def _mean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a group with every class skipped is NaN
        return float(np.nanmean(values)) if len(values) else float("nan")


def summarise(values: dict, class_bins: list[str], left_out: np.ndarray | None = None) -> dict:
    """Macro means, overall, per bin and over the left-out classes (classes never trained on real
    audio; empty when none): {"macro": {metric: x}, "bins": {bin: {metric: x}}, "left_out": {...}}."""
    bins = np.asarray(class_bins)
    left_out = np.zeros(len(bins), bool) if left_out is None else np.asarray(left_out, bool)
    return {
        "macro": {m: _mean(values[m]) for m in METRICS},
        "bins": {name: {m: _mean(values[m][bins == name]) for m in METRICS} for name, _, _ in BINS},
        "left_out": {m: _mean(values[m][left_out]) for m in METRICS},
    }


@dataclass(frozen=True)
class BootstrapConfig:
    resamples: int = 1000
    seed: int = 0
    threshold: float = 0.5
    padding: int = 5


def _interval(samples: np.ndarray) -> list[float] | None:
    finite = samples[np.isfinite(samples)]
    if len(finite) < 2:
        return None
    return [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))]


def verdict(ci: list[float] | None) -> str:
    """A difference is a gain or a loss only when its whole 95% interval is on one side of 0."""
    if not ci:
        return "undetermined"
    return "gain" if ci[0] > 0 else "loss" if ci[1] < 0 else "no clear difference"


def _flatten(summary: dict) -> dict[tuple[str, str], float]:
    flat = {("macro", m): v for m, v in summary["macro"].items()}
    flat.update({(b, m): v for b, row in summary["bins"].items() for m, v in row.items()})
    flat.update({("left_out", m): v for m, v in summary["left_out"].items()})
    return flat


@dataclass(frozen=True)
class Design:
    """What the scores are scored against: one-hot truth [recordings, classes], which cells count,
    each recording's group (the bootstrap's unit), each class's bin and whether it is left out."""

    truth: np.ndarray
    groups: np.ndarray
    class_bins: list[str]
    left_out: np.ndarray
    counted: np.ndarray | None = None


def _summary(design: Design, scores: np.ndarray, rows: np.ndarray, config: BootstrapConfig) -> dict:
    counted = np.ones(design.truth.shape, bool) if design.counted is None else design.counted
    values = per_class(design.truth[rows], scores[rows], config.threshold, config.padding, counted[rows])
    return values


def compare(
    design: Design, scores: dict[str, np.ndarray], baseline: str, config: BootstrapConfig, against: dict | None = None
) -> dict:
    """Every variant's per-class metrics and macro / bin / left-out means with 95% intervals, its
    paired difference from `baseline`, and from `against[variant]` where given, with intervals.

    `scores[name]` is [seeds, recordings, classes]: one fit per seed. The point is the mean over
    seeds. Each resample draws groups with replacement (a cluster bootstrap: recordings of one site
    or recordist are not independent) and, per variant, one seed at random, so the intervals hold
    both the test-set variance and the variance of the probe and of the synthetic sampling. All
    variants are scored on the same resampled groups, so the differences are paired.
    """
    against = against or {}
    everyone = np.arange(len(design.truth))
    point, flat_point = {}, {}
    for name, s in scores.items():
        per_seed = [per_class_summary(design, seed_scores, everyone, config) for seed_scores in s]
        point[name] = {m: np.nanmean(np.stack([p[0][m] for p in per_seed]), 0) if len(per_seed) > 1
                       else per_seed[0][0][m] for m in METRICS}  # fmt: skip
        flat_point[name] = {k: _mean(np.array([p[1][k] for p in per_seed])) for k in per_seed[0][1]}
    keys = list(flat_point[baseline])
    draws = {name: np.full((config.resamples, len(keys)), np.nan) for name in scores}
    rng = np.random.default_rng(config.seed)
    group_ids, group_of = np.unique(design.groups, return_inverse=True)
    members = [np.flatnonzero(group_of == g) for g in range(len(group_ids))]
    for b in range(config.resamples):
        picked = rng.integers(0, len(members), len(members))
        rows = np.concatenate([members[g] for g in picked])
        for name, s in scores.items():
            flat = per_class_summary(design, s[rng.integers(0, len(s))], rows, config)[1]
            draws[name][b] = [flat[k] for k in keys]
    return {name: _entry(name, point, flat_point, draws, keys, baseline, against.get(name)) for name in scores}


def per_class_summary(design: Design, scores: np.ndarray, rows: np.ndarray, config: BootstrapConfig):
    values = _summary(design, scores, rows, config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return values, _flatten(summarise(values, design.class_bins, design.left_out))


def _entry(name, point, flat_point, draws, keys, baseline, other) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        entry = {"per_class": {m: point[name][m].tolist() for m in METRICS}, "macro": {}, "bins": {}, "left_out": {}}
    for i, (group, metric) in enumerate(keys):
        cell = {"value": flat_point[name][(group, metric)], "ci": _interval(draws[name][:, i])}
        for prefix, base in (("", baseline), ("vs_baseline_", other)):
            if base is None or name == base:
                continue
            cell[f"{prefix}difference"] = flat_point[name][(group, metric)] - flat_point[base][(group, metric)]
            cell[f"{prefix}difference_ci"] = _interval(draws[name][:, i] - draws[base][:, i])
            cell[f"{prefix}verdict"] = verdict(cell[f"{prefix}difference_ci"])
        if other is not None:
            cell["vs_baseline"] = other
        if group in ("macro", "left_out"):
            entry[group][metric] = cell
        else:
            entry["bins"].setdefault(group, {})[metric] = cell
    return entry
