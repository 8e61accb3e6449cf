"""The linear probe: one-vs-rest logistic regression on window embeddings, scored per recording."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler


def fit_predict(
    train_x: np.ndarray,
    train_labels: np.ndarray,
    test_x: np.ndarray,
    classes: list[str],
    c: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """[test windows, classes] probabilities. A class without a training window scores 0 everywhere.

    Each binary problem is class-weighted (balanced): a class with one recording among hundreds
    would otherwise never reach a probability of 0.5.
    """
    targets = (train_labels[:, None] == np.asarray(classes)[None, :]).astype(int)
    scaler = StandardScaler().fit(train_x)  # once, not once per class
    probe = OneVsRestClassifier(
        LogisticRegression(C=c, class_weight="balanced", solver="liblinear", max_iter=1000, random_state=seed)
    )
    with warnings.catch_warnings():
        # "Label not present in all training examples": such a column is a constant 0 predictor, by design
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(scaler.transform(train_x), targets)
        return probe.predict_proba(scaler.transform(test_x))


def per_recording(window_scores: np.ndarray, window_recording: np.ndarray, recordings: np.ndarray) -> np.ndarray:
    """Mean window probability of each recording in `recordings` (labels are per recording, not per window)."""
    position = {int(r): i for i, r in enumerate(recordings)}
    rows = np.array([position.get(int(r), -1) for r in window_recording])
    keep = rows >= 0
    sums = np.zeros((len(recordings), window_scores.shape[1]))
    np.add.at(sums, rows[keep], window_scores[keep])
    return sums / np.maximum(np.bincount(rows[keep], minlength=len(recordings)), 1)[:, None]
