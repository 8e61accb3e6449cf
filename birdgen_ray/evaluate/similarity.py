"""How far synthetic embeddings are from real ones, per class: the Fréchet distance between the two
Gaussians, and how well a cross-validated probe tells them apart (ROC-AUC; 0.5 = indistinguishable)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def frechet_distance(real: np.ndarray, synthetic: np.ndarray) -> float | None:
    """||mu_r - mu_s||^2 + Tr(S_r + S_s - 2 (S_r S_s)^(1/2)); None with fewer than 2 windows a side.

    Tr((S_r S_s)^(1/2)) is the sum of the singular values of A_r A_s^T / sqrt((n_r-1)(n_s-1)), A the
    centred windows: exact, and an n_r x n_s problem instead of a 1024 x 1024 matrix square root.
    With far fewer windows than dimensions the covariances are rank-deficient and the distance is
    biased upwards: compare classes of similar sizes (the counts are reported with it).
    """
    if len(real) < 2 or len(synthetic) < 2:
        return None
    a_r = (real - real.mean(0)).astype(np.float64)
    a_s = (synthetic - synthetic.mean(0)).astype(np.float64)
    scale_r, scale_s = len(real) - 1, len(synthetic) - 1
    cross = np.linalg.svd(a_r @ a_s.T, compute_uv=False).sum() / np.sqrt(scale_r * scale_s)
    trace = (a_r**2).sum() / scale_r + (a_s**2).sum() / scale_s - 2.0 * cross
    mean_term = float(((real.mean(0) - synthetic.mean(0)).astype(np.float64) ** 2).sum())
    return mean_term + max(float(trace), 0.0)


def separability_auc(
    real: np.ndarray, real_groups: np.ndarray, synthetic: np.ndarray, synthetic_groups: np.ndarray, seed: int = 0
) -> float | None:
    """Out-of-fold ROC-AUC of a logistic probe telling synthetic (1) from real (0) windows.

    Folds are grouped (a real recording's or a synthetic clip's windows stay together), so the probe
    cannot win by recognising a recording it has seen. None with fewer than 2 groups a side.
    """
    n_groups = min(len(np.unique(real_groups)), len(np.unique(synthetic_groups)))
    if n_groups < 2:
        return None
    x = np.concatenate([real, synthetic])
    y = np.concatenate([np.zeros(len(real), int), np.ones(len(synthetic), int)])
    groups = np.concatenate([[f"r{g}" for g in real_groups], [f"s{g}" for g in synthetic_groups]])
    folds = StratifiedGroupKFold(n_splits=min(5, n_groups), shuffle=True, random_state=seed)
    scores = np.full(len(y), np.nan)
    for train, test in folds.split(x, y, groups):
        if len(np.unique(y[train])) < 2:
            continue
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
        probe.fit(x[train], y[train])
        scores[test] = probe.predict_proba(x[test])[:, 1]
    scored = np.isfinite(scores)
    if len(np.unique(y[scored])) < 2:
        return None
    return float(roc_auc_score(y[scored], scores[scored]))
