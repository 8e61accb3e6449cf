"""The second model, independent of BirdNET: a small log-mel CNN trained from scratch per fold, variant
and seed, scored per recording like the probe.

Why: BirdNET is the probe's embedding, the "verified" filter, the in-run ranking and the label source,
and it was very likely trained on the same Xeno-canto audio; a gain seen only through BirdNET may be
BirdNET's (docs/evaluation.md). Two conv blocks on 64-mel log spectrograms of the same 3 s windows,
a few epochs, class-balanced loss; seeded (initialisation and batch order), on the GPU when there is one.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from birdgen_ray.evaluate.melspec import FRAMES, MELS

EPOCHS = 6
BATCH = 64
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4
DESCRIPTION = (
    f"log-mel CNN from scratch: {MELS} mels x {FRAMES} frames per 3 s window, 2 strided conv blocks (8, 16 channels), "
    f"{EPOCHS} epochs of Adam, class-balanced loss, equal for every variant; full band only"
)


class SmallCnn(nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, stride=2, padding=1),  # strided: a few CPU seconds per fit
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(1),  # the loudest call anywhere in the window
        )
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.view(len(x), 1, MELS, FRAMES)).flatten(1))


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fit_predict(
    train_x: np.ndarray, train_labels: np.ndarray, test_x: np.ndarray, classes: list[str], seed: int, threads: int = 1
) -> np.ndarray:
    """[test windows, classes] softmax probabilities over the classes with a training window (others 0).

    `train_x`, `test_x`: flattened log-mel windows ([windows, MELS * FRAMES]). `threads`: torch's on
    the CPU for this fit (restored after); more than one spins on a busy machine.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _fit_predict(train_x, train_labels, test_x, classes, seed)
    finally:
        torch.set_num_threads(previous)


def _fit_predict(train_x, train_labels, test_x, classes: list[str], seed: int) -> np.ndarray:
    out = np.zeros((len(test_x), len(classes)), np.float32)
    present = [i for i, label in enumerate(classes) if (train_labels == label).any()]
    if len(present) == 1:
        out[:, present[0]] = 1.0
    if len(present) < 2 or len(test_x) == 0:
        return out
    where = device()
    torch.manual_seed(seed)
    lookup = {classes[i]: k for k, i in enumerate(present)}
    y = torch.tensor([lookup[label] for label in np.asarray(train_labels).tolist()], device=where)
    x = torch.from_numpy(np.ascontiguousarray(train_x, np.float32)).to(where)
    counts = torch.bincount(y, minlength=len(present)).float()
    model = SmallCnn(len(present)).to(where)
    _train(model, x, y, len(y) / (len(present) * counts), seed)
    model.eval()
    with torch.no_grad():
        test = torch.from_numpy(np.ascontiguousarray(test_x, np.float32)).to(where)
        logits = torch.cat([model(test[i : i + 256]) for i in range(0, len(test), 256)])
        out[:, present] = torch.softmax(logits, 1).cpu().numpy()
    return out


def _train(model: SmallCnn, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, seed: int) -> None:
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    order = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(y), generator=order).split(BATCH):
            if len(batch) < 2:  # batch norm needs two rows
                continue
            batch = batch.to(x.device)
            optimiser.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimiser.step()
