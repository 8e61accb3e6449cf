"""When every class has one recording (one group): folds over time blocks inside the recordings.

Each recording's windows are cut into `n` contiguous blocks. Fold k tests block k of every recording
and trains on the blocks at least GAP_BLOCKS + 1 away, so a whole block lies between any training and
any test window of a recording (no window straddles the two, and a call bout rarely spans a block).

This is weaker than folds over recordings: training and test audio share the individual, the site,
the recorder and the background, so it measures recognising this recording's bird more than the
species. evaluation.json records it (`protocol.split`), and the page and terminal say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birdgen_ray.evaluate.protocol import Fold, Protocol, ProtocolError

GAP_BLOCKS = 1  # blocks left out between a test block and the training blocks of its recording
MIN_BLOCKS = 4  # with a one-block gap, the fewest blocks that leave every fold a training block


@dataclass(frozen=True)
class BlockSplit:
    owner: np.ndarray  # per window: its block (the unit tested and scored)
    recording: np.ndarray  # per block: the recording it was cut from
    position: np.ndarray  # per block: its place in the recording, 0 .. blocks-1
    blocks: int


def needs_time_blocks(labels: np.ndarray, groups: np.ndarray) -> bool:
    return all(len(set(groups[labels == c].tolist())) == 1 for c in set(labels.tolist()))


def time_blocks(window_recording: np.ndarray, labels: np.ndarray, max_folds: int) -> BlockSplit:
    """Blocks of every recording, or a ProtocolError saying exactly what more data is needed."""
    windows = np.bincount(window_recording, minlength=len(labels))
    n = max(MIN_BLOCKS, min(max_folds, int(windows.min())))
    short = np.flatnonzero(windows < n)
    if len(short):
        raise ProtocolError(
            f"every class has a single recording (one group), so folds must split recordings into {n} time "
            f"blocks of 3 s windows; recording {int(short[0])} ({labels[short[0]]}) has {int(windows[short[0]])} "
            f"window(s) and needs >= {n} (>= {3 * (n - 1) + 1} s of audio). Better: add a second recording, "
            "in another group, to each class you want tested (2+ groups per class allow folds over recordings)"
        )
    owner = np.zeros(len(window_recording), int)
    recording, position = [], []
    for r in range(len(labels)):
        at = np.flatnonzero(window_recording == r)
        for b, part in enumerate(np.array_split(at, n)):
            owner[part] = len(recording)
            recording.append(r)
            position.append(b)
    return BlockSplit(owner, np.array(recording), np.array(position), n)


def block_protocol(split: BlockSplit, labels: np.ndarray) -> Protocol:
    """Fold k tests every recording's block k and trains on its blocks more than GAP_BLOCKS away."""
    folds = []
    for k in range(split.blocks):
        test = np.flatnonzero(split.position == k)
        train = np.flatnonzero(np.abs(split.position - k) > GAP_BLOCKS)
        folds.append(Fold(train=train, test=test))
    classes = sorted(set(labels.tolist()))
    counts = {c: int((labels == c).sum()) for c in classes}
    return Protocol(folds=folds, classes=classes, real_counts=counts, left_out=[])


def blocks_of(split: BlockSplit, recordings: list[frozenset[int]]) -> list[frozenset[int]]:
    """Recording sets (what clips were made from) as the sets of those recordings' blocks."""
    per_recording: dict[int, set[int]] = {}
    for block, r in enumerate(split.recording.tolist()):
        per_recording.setdefault(r, set()).add(block)
    return [frozenset().union(*(per_recording[r] for r in s)) if s else frozenset() for s in recordings]
