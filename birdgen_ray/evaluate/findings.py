"""What evaluation.json says about the run beside the scores: what each fold withheld (leakage), and
the baselines a reader must not take for a gain (degenerate)."""

from __future__ import annotations

import numpy as np

from birdgen_ray.evaluate.leakage import DUPLICATE_COSINE
from birdgen_ray.evaluate.protocol import Protocol, withheld
from birdgen_ray.evaluate.variants import Synthetic


def leakage_report(protocol: Protocol, synthetic: list[Synthetic], recording_names: list[str]) -> dict:
    """Clips withheld from folds because they were made from (reference_sha256) or are near-copies of
    (cosine >= 0.995, exact search) a recording the fold tests. Totals count each clip once."""
    by_reference, by_near = set(), set()
    folds = []
    for k, fold in enumerate(protocol.folds):
        row = {"fold": k, "withheld_by_reference": 0, "withheld_near_copies": 0}
        for s in synthetic:
            referenced, near = withheld(fold, s.made_from), withheld(fold, s.near_copy_of)
            row["withheld_by_reference"] += int(referenced.sum())
            row["withheld_near_copies"] += int((near & ~referenced).sum())
            by_reference |= {(s.name, int(i)) for i in np.flatnonzero(referenced)}
            by_near |= {(s.name, int(i)) for i in np.flatnonzero(near & ~referenced)}
        folds.append(row)
    listed = [
        {"output": s.name, "clip_id": s.clip_ids[clip], "recording": recording_names[recording], "cosine": cos}
        for s in synthetic
        for (clip, recording), cos in sorted(s.near_cosines.items())
    ]
    return {
        "key": "reference_sha256 = SHA-256 of the real recording's bytes",
        "withheld_by_reference": len(by_reference),
        "withheld_near_copies": len(by_near - by_reference),
        "near_copy_cosine": DUPLICATE_COSINE,
        "folds": folds,
        "near_copies": listed,
    }


def degenerate_flags(protocol: Protocol, labels: np.ndarray, synthetic: list[Synthetic]) -> list[str]:
    """Situations in which a difference cannot mean what it seems: a fold whose real-only probe trained
    fewer than 2 classes (it scores chance), and classes an output has no clips of (any change there
    comes from other classes' clips, not from help for that class)."""
    flags = []
    for k, fold in enumerate(protocol.folds):
        trained = sorted(set(labels[fold.train].tolist()))
        if len(trained) < 2:
            flags.append(
                f"fold {k}: real only trained {len(trained)} class{'es' if len(trained) != 1 else ''}"
                f" ({', '.join(trained) or 'none'}): its scores are chance, not a baseline"
            )
    for s in synthetic:
        missing = [c for c in protocol.classes if not (s.labels == c).any()]
        if missing:
            flags.append(f"{s.name}: no synthetic clips of {', '.join(missing)}: a change there is not help")
    return flags
