"""Classification metrics of a probe's recording-level scores: per class, macro, per real-count bin,
with bootstrap 95% intervals and paired differences against real only.

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


def summarise(values: dict, class_bins: list[str]) -> dict:
    """Macro means, overall and per bin: {"macro": {metric: x}, "bins": {bin: {metric: x}}}."""
    bins = np.asarray(class_bins)
    return {
        "macro": {m: _mean(values[m]) for m in METRICS},
        "bins": {name: {m: _mean(values[m][bins == name]) for m in METRICS} for name, _, _ in BINS},
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


def _flatten(summary: dict) -> dict[tuple[str, str], float]:
    flat = {("macro", m): v for m, v in summary["macro"].items()}
    flat.update({(b, m): v for b, row in summary["bins"].items() for m, v in row.items()})
    return flat


def compare(
    truth: np.ndarray,
    scores: dict[str, np.ndarray],
    baseline: str,
    class_bins: list[str],
    config: BootstrapConfig,
    counted: np.ndarray | None = None,
) -> dict:
    """Every variant's per-class metrics and macro/bin means with 95% intervals, and its paired
    difference from `baseline` with the difference's interval.

    The resamples draw test recordings with replacement (the recording is the independent unit), and
    every variant is scored on the same resamples, so the differences are paired.
    """
    counted = np.ones(truth.shape, bool) if counted is None else counted
    point = {name: per_class(truth, s, config.threshold, config.padding, counted) for name, s in scores.items()}
    flat_point = {name: _flatten(summarise(values, class_bins)) for name, values in point.items()}
    keys = list(flat_point[baseline])
    draws = {name: np.full((config.resamples, len(keys)), np.nan) for name in scores}
    rng = np.random.default_rng(config.seed)
    for b in range(config.resamples):
        rows = rng.integers(0, len(truth), len(truth))
        for name, s in scores.items():
            values = per_class(truth[rows], s[rows], config.threshold, config.padding, counted[rows])
            flat = _flatten(summarise(values, class_bins))
            draws[name][b] = [flat[k] for k in keys]
    result = {}
    for name in scores:
        entry = {"per_class": {m: point[name][m].tolist() for m in METRICS}, "macro": {}, "bins": {}}
        for i, (group, metric) in enumerate(keys):
            cell = {"value": flat_point[name][(group, metric)], "ci": _interval(draws[name][:, i])}
            if name != baseline:
                cell["difference"] = flat_point[name][(group, metric)] - flat_point[baseline][(group, metric)]
                cell["difference_ci"] = _interval(draws[name][:, i] - draws[baseline][:, i])
            target = entry["macro"] if group == "macro" else entry["bins"].setdefault(group, {})
            target[metric] = cell
        result[name] = entry
    return result
