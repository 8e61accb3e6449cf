"""Exact searches for the same audio on both sides of a fold, in bounded memory.

Two windows are the same audio when their embeddings are at cosine >= DUPLICATE_COSINE (re-encoded or
resampled at most). The search is exact: a blocked matrix product of unit vectors, `BLOCK` rows against
`BLOCK` rows at a time, so memory stays at BLOCK x BLOCK floats whatever the number of windows, and
cost grows with the product of the two sets' sizes (docs/evaluation.md gives figures).

  - real against real: recordings that share a window (a recording listed twice, overlapping cuts);
  - synthetic against real: clips that are near-copies of a real recording (a low-strength SDEdit
    clip, or a copy), withheld from every fold that tests that recording, like a clip whose
    `reference_sha256` is the recording's SHA-256.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

SILENT_RMS = 1e-4  # windows quieter than -80 dBFS look alike in any recording: not evidence of a leak
DUPLICATE_COSINE = 0.995  # embeddings this close are the same audio (re-encoded or resampled at most)
BLOCK = 2048  # rows per side of one block: 2048 x 2048 float32 = 16 MiB


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def close_pairs(
    a: np.ndarray, b: np.ndarray, threshold: float = DUPLICATE_COSINE, same: bool = False, block: int = BLOCK
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(rows of a, rows of b, cosines) of every pair at cosine >= threshold, block by block.

    `same`: a and b are one set; each unordered pair is given once (i < j).
    """
    ua, ub = unit_rows(a), unit_rows(b)
    for i0 in range(0, len(ua), block):
        for j0 in range(i0 if same else 0, len(ub), block):
            cos = ua[i0 : i0 + block] @ ub[j0 : j0 + block].T
            i, j = np.nonzero(cos >= threshold)
            if same:
                upper = i + i0 < j + j0
                i, j = i[upper], j[upper]
            if len(i):
                yield i + i0, j + j0, cos[i, j]


def duplicate_recording_pairs(window_recording: np.ndarray, embeddings: np.ndarray, window_rms: np.ndarray) -> set:
    """Pairs (a, b), a < b, of recordings with a near-identical non-silent window: exact."""
    loud = np.flatnonzero(window_rms >= SILENT_RMS)
    pairs = set()
    for i, j, _ in close_pairs(embeddings[loud], embeddings[loud], same=True):
        a, b = window_recording[loud[i]], window_recording[loud[j]]
        for x, y in zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()):
            if x != y:
                pairs.add((x, y))
    return pairs


def near_copies(
    clip_windows: np.ndarray, clip_owner: np.ndarray, real_windows: np.ndarray, real_owner: np.ndarray, real_rms
) -> dict[tuple[int, int], float]:
    """{(clip, recording): highest cosine} for every synthetic clip with a window at cosine >=
    DUPLICATE_COSINE to a non-silent window of a real recording."""
    loud = np.flatnonzero(np.asarray(real_rms) >= SILENT_RMS)
    found: dict[tuple[int, int], float] = {}
    for i, j, cos in close_pairs(clip_windows, real_windows[loud]):
        for clip, recording, c in zip(clip_owner[i].tolist(), real_owner[loud[j]].tolist(), cos.tolist()):
            found[(clip, recording)] = max(found.get((clip, recording), -1.0), float(c))
    return found
