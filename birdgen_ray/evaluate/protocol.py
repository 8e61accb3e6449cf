"""The evaluation protocol: which real recordings train and test each fold, which synthetic clips each
training-set variant adds, and the checks that no test recording leaks into its own training set.

  - Folds are over real recordings, grouped (a recording's windows, and every recording of one group,
    stay on one side) and stratified by class, so every class with two or more groups is tested.
  - Classes whose recordings all sit in one group are left out: their recordings are only ever tested
    (spread over the folds), so such a class is learnt from synthetic clips alone.
  - A synthetic clip made from a recording (its `reference_sha256` is the recording's SHA-256), or a
    near-copy of one, is withheld from the fold that tests it.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from birdgen_ray.evaluate.leakage import duplicate_recording_pairs


class ProtocolError(ValueError):
    """The folds would let a test recording, or a copy of it, into its own training set."""


@dataclass(frozen=True)
class Fold:
    train: np.ndarray  # real recording indices
    test: np.ndarray


@dataclass(frozen=True)
class Protocol:
    folds: list[Fold]
    classes: list[str]  # every class, sorted: the probe's columns
    real_counts: dict[str, int]  # recordings per class
    left_out: list[str]  # classes with a single group: tested, never trained on real


def make_protocol(labels: np.ndarray, groups: np.ndarray, max_folds: int, seed: int) -> Protocol:
    """Grouped, stratified folds over the recordings; left-out classes' recordings only in test sets."""
    classes = sorted(set(labels.tolist()))
    real_counts = dict(sorted(Counter(labels.tolist()).items()))
    groups_per_class = {c: len(set(groups[labels == c].tolist())) for c in classes}
    left_out = [c for c in classes if groups_per_class[c] < 2]
    in_cv = ~np.isin(labels, left_out)
    cv_index = np.flatnonzero(in_cv)
    n_groups = len(set(groups[in_cv].tolist()))
    if n_groups < 2:
        raise ProtocolError(
            "the real set needs at least one class with recordings in two or more groups to cross-validate; "
            f"every class here has one ({', '.join(classes)})"
        )
    n_splits = min(max_folds, n_groups)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = []
    left_out_index = np.flatnonzero(~in_cv)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)  # tiny classes are the point
        splits = list(splitter.split(cv_index, labels[in_cv], groups[in_cv]))
    for k, (train, test) in enumerate(splits):
        tested_left_out = left_out_index[k::n_splits]  # each left-out recording is tested exactly once
        folds.append(
            Fold(train=np.sort(cv_index[train]), test=np.sort(np.concatenate([cv_index[test], tested_left_out])))
        )
    return Protocol(folds=folds, classes=classes, real_counts=real_counts, left_out=left_out)


def check_protocol(
    protocol: Protocol,
    labels: np.ndarray,
    groups: np.ndarray,
    window_recording: np.ndarray,
    embeddings: np.ndarray,
    window_rms: np.ndarray,
) -> dict:
    """Raise ProtocolError if any fold leaks; otherwise return what was checked, for the report.

    Leaks: a group on both sides of a fold; a left-out class trained on real audio; a recording tested
    twice or never; the same audio (near-identical window embeddings) in a training and a test
    recording of one fold, as when one recording is listed twice or cut into overlapping pieces.
    """
    n = len(labels)
    tested = np.zeros(n, int)
    duplicates = duplicate_recording_pairs(window_recording, embeddings, window_rms)
    untrained = []
    for k, fold in enumerate(protocol.folds):
        tested[fold.test] += 1
        shared = sorted(set(groups[fold.train].tolist()) & set(groups[fold.test].tolist()))
        if shared:
            raise ProtocolError(f"fold {k}: group {shared[0]!r} has recordings in both the training and the test set")
        trained_left_out = sorted(set(labels[fold.train].tolist()) & set(protocol.left_out))
        if trained_left_out:
            raise ProtocolError(f"fold {k}: left-out class {trained_left_out[0]!r} has a real training recording")
        train, test = np.zeros(n, bool), np.zeros(n, bool)
        train[fold.train], test[fold.test] = True, True
        for a, b in duplicates:
            if (train[a] and test[b]) or (train[b] and test[a]):
                raise ProtocolError(
                    f"fold {k}: recordings {a} and {b} share audio (near-identical windows) and sit on both sides "
                    "of the fold: list each recording once, or give copies and overlapping cuts one group"
                )
        trained = set(labels[fold.train].tolist())
        untrained += [c for c in set(labels[fold.test].tolist()) - trained if c not in protocol.left_out]
    if (tested != 1).any():
        raise ProtocolError(
            f"recording {int(np.flatnonzero(tested != 1)[0])} is tested {int(tested[tested != 1][0])} times"
        )
    return {
        "folds": len(protocol.folds),
        "grouped": True,
        "every_recording_tested_once": True,
        "left_out_never_trained_on_real": True,
        "duplicate_window_pairs": len(duplicates),
        "tested_without_real_training_recording": sorted(set(untrained)),
    }


def made_from(
    recording_sha256: list[str],
    recording_names: list[frozenset[str]],
    sha256s: list[str | None],
    texts: list[str | None],
) -> list[frozenset[int]]:
    """Per synthetic clip, the real recordings it was made from: those whose file SHA-256 equals the
    clip's `reference_sha256` (the bytes, whatever path either table wrote). Only a clip without a
    hash (an output written before the index had the column) falls back to its `reference` text."""
    by_hash: dict[str, set[int]] = {}
    by_name: dict[str, set[int]] = {}
    for i, (h, names) in enumerate(zip(recording_sha256, recording_names)):
        by_hash.setdefault(h, set()).add(i)
        for name in names:
            by_name.setdefault(name, set()).add(i)
    return [frozenset(by_hash.get(h, ()) if h else by_name.get(t, ()) if t else ()) for h, t in zip(sha256s, texts)]


def withheld(fold: Fold, sources: list[frozenset[int]]) -> np.ndarray:
    """Mask of clips that may not train this fold: made from (or near-copies of) a recording it tests."""
    tested = set(fold.test.tolist())
    return np.array([bool(s & tested) for s in sources], bool)
