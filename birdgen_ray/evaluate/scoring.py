"""Scoring one evaluation band: every variant's model per fold (and seed), each held-out recording
scored by the model of the fold that held it out, and the design the comparison bootstraps over."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from birdgen_ray.evaluate.config import EvaluateConfig
from birdgen_ray.evaluate.embed import Windows
from birdgen_ray.evaluate.metrics import BootstrapConfig, Design, per_class_summary
from birdgen_ray.evaluate.probe import per_recording, predict, real_fold
from birdgen_ray.evaluate.protocol import Protocol
from birdgen_ray.evaluate.variants import AUGMENTED, OVERSAMPLED, SYNTHETIC, FoldData, Variant, added_rows

# (fold index, added rows, their labels, test-window mask, seed) -> window probabilities
Fit = Callable[[int, np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


def make_design(labels: np.ndarray, clusters: np.ndarray, protocol: Protocol, class_bins) -> Design:
    """What the comparison bootstraps over: truth per unit and class, clusters, bins, left-out classes."""
    return Design(
        truth=(labels[:, None] == np.array(protocol.classes)[None, :]).astype(float),
        groups=clusters,
        class_bins=class_bins,
        left_out=np.isin(protocol.classes, protocol.left_out),
        counted=counted_cells(labels, protocol),
    )


def bootstrap_config(config: EvaluateConfig) -> BootstrapConfig:
    return BootstrapConfig(config.bootstrap, config.seed, config.threshold, config.padding_rows)


def counted_cells(labels: np.ndarray, protocol: Protocol) -> np.ndarray:
    """[recordings, classes]: a left-out class is scored among the left-out recordings only.

    Every left-out recording is unlike anything the probe trained on, so against the trained classes'
    recordings any synthetic set, noise included, would rank it first: a novelty detector passing for
    a species detector. Among the left-out recordings all are equally new, and only species matter.
    """
    is_left_out = np.isin(labels, protocol.left_out)
    counted = np.ones((len(labels), len(protocol.classes)), bool)
    for c, label in enumerate(protocol.classes):
        if label in protocol.left_out and is_left_out.sum() >= 2:
            counted[:, c] = is_left_out
    return counted


def real_fold_stats(fold, real: Windows, labels, protocol: Protocol):
    """The fold's real training statistics, computed once and shared by every variant."""
    train_windows = np.isin(real.owner, fold.train)
    return real_fold(real.embeddings[train_windows], labels[real.owner[train_windows]], protocol.classes)


def probe_fit(real: Windows, folds) -> Fit:
    """The probe: the variant's rows added to the fold's real statistics (`folds`, computed once)."""
    return lambda k, x_added, y_added, test, seed: predict(
        folds[k], folds[k].real + folds[k].stats(x_added, y_added), real.embeddings[test]
    )


def variant_scores(
    variant: Variant, real: Windows, labels, synthetic, protocol: Protocol, fit: Fit, config, seeded=False
):
    """[seeds, recordings, classes]: each recording scored by the model of the fold that held it out.

    `fit(fold index, added rows, their labels, test-window mask, seed)` -> window probabilities. A
    variant that samples nothing (real only, all, passed, verified) gives one probe whatever the seed
    (the probe is closed-form): it is fitted once and its scores stand for every seed; a `seeded`
    model (the CNN) is fitted once per seed.
    """
    scores = np.zeros((config.seeds, len(labels), len(protocol.classes)))
    samples = seeded or variant.kind in (OVERSAMPLED, AUGMENTED) or variant.ratio is not None
    for seed in range(config.seeds if samples else 1):
        for k, fold in enumerate(protocol.folds):
            x_added, y_added = added_rows(variant, FoldData(fold, real, labels, synthetic), config.seed + seed)
            test_windows = np.isin(real.owner, fold.test)
            probabilities = fit(k, x_added, y_added, test_windows, config.seed + seed)
            scores[seed, fold.test] = per_recording(probabilities, real.owner[test_windows], fold.test)
    if not samples:
        scores[1:] = scores[0]
    return scores


def better_baselines(design: Design, scores: dict, variants: list[Variant], synthetic, bootstrap) -> dict:
    """{synthetic variant: the better (macro ROC-AUC) of its output's two matched real baselines}."""
    everyone = np.arange(len(design.truth))

    def macro(name: str) -> float:
        values = [per_class_summary(design, s, everyone, bootstrap)[1][("macro", "roc_auc")] for s in scores[name]]
        return float(np.nanmean(values)) if np.isfinite(values).any() else -np.inf

    against = {}
    for i in range(len(synthetic)):
        baselines = [v.name for v in variants if v.output == i and v.kind in (OVERSAMPLED, AUGMENTED)]
        best = max(baselines, key=macro)
        against.update({v.name: best for v in variants if v.output == i and v.kind == SYNTHETIC})
    return against
