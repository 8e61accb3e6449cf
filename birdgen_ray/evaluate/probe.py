"""The linear probe: one multinomial (softmax) logistic regression over all classes on window embeddings,
fitted with torch's L-BFGS, scored per recording.

One fit per fold and variant, whatever the number of classes: a one-vs-rest fit per class made the
cost grow with classes x windows (11.8 s for one binary liblinear fit on 20k windows).
"""

from __future__ import annotations

import numpy as np
import torch

MAX_ITER = 30  # L-BFGS iterations: the loss is convex; at 152 classes its probabilities equal 100 iterations


def fit_predict(
    train_x: np.ndarray,
    train_labels: np.ndarray,
    test_x: np.ndarray,
    classes: list[str],
    c: float = 1.0,
    seed: int = 0,
    threads: int = 1,
) -> np.ndarray:
    """[test windows, classes] softmax probabilities. A class without a training window scores 0.

    Windows are class-weighted (balanced): a class with one recording among hundreds would otherwise
    never win. The penalty is sklearn's: C x (weighted log-loss sum) + ||W||^2 / 2, divided by C x n.
    The loss is convex and starts at 0, so `seed` changes nothing. `threads`: torch's for this fit
    (restored after); more than one only pays for large fits on an otherwise idle machine.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _fit_predict(train_x, train_labels, test_x, classes, c)
    finally:
        torch.set_num_threads(previous)


def _fit_predict(train_x, train_labels, test_x, classes: list[str], c: float) -> np.ndarray:
    out = np.zeros((len(test_x), len(classes)), np.float32)
    present = [i for i, label in enumerate(classes) if (train_labels == label).any()]
    if len(present) == 1:
        out[:, present[0]] = 1.0
    if len(present) < 2 or len(test_x) == 0:
        return out
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = torch.from_numpy(((train_x - mean) / std).astype(np.float32))
    lookup = {classes[i]: k for k, i in enumerate(present)}
    y = torch.tensor([lookup[label] for label in train_labels.tolist()])
    counts = torch.bincount(y, minlength=len(present)).float()
    weight = len(y) / (len(present) * counts)
    w = torch.zeros(x.shape[1], len(present), requires_grad=True)
    b = torch.zeros(len(present), requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], max_iter=MAX_ITER, line_search_fn="strong_wolfe", tolerance_grad=1e-6)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight, reduction="sum")

    def closure():
        optimiser.zero_grad()
        loss = (c * loss_fn(x @ w + b, y) + 0.5 * (w * w).sum()) / (c * len(y))
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        test = torch.from_numpy(((test_x - mean) / std).astype(np.float32))
        out[:, present] = torch.softmax(test @ w + b, 1).numpy()
    return out


def per_recording(window_scores: np.ndarray, window_recording: np.ndarray, recordings: np.ndarray) -> np.ndarray:
    """Mean window probability of each recording in `recordings` (labels are per recording, not per window)."""
    position = {int(r): i for i, r in enumerate(recordings)}
    rows = np.array([position.get(int(r), -1) for r in window_recording])
    keep = rows >= 0
    sums = np.zeros((len(recordings), window_scores.shape[1]))
    np.add.at(sums, rows[keep], window_scores[keep])
    return sums / np.maximum(np.bincount(rows[keep], minlength=len(recordings)), 1)[:, None]
