"""Pinned clips: what the tiny model's audio must stay, bit for bit on the platform it was pinned on.

A pin is a clip's sha256 (of its float32 samples) plus a short signature: 16 seeded random projections
of the audio and its L2 norm. On the platform the pins were taken on (CPU architecture, torch's CPU
kernel level, torch release), clips must match the sha256 exactly. On another platform a legitimately
different rounding cannot match the bits, so the clips are compared to the signature instead, within
SIGNATURE_RTOL of the norm: rounding moves a projection by ~1e-6 of it, a behaviour change (another
seed, scheduler, step count or prompt) by tens of percent. tests/test_pins_control.py shows both
comparisons failing on such changes.

All pins were taken under constraints.txt (the lock); after upgrading it, rerun the pin tests and
re-pin with the reason in the commit message (docs/reproducibility.md).
"""

from __future__ import annotations

import hashlib
import platform

import numpy as np

SIGNATURE_RTOL = 1e-3  # of the clip's norm, per projection


def platform_key() -> str:
    import torch

    return f"{platform.machine()}-{torch.backends.cpu.get_cpu_capability()}-torch{torch.__version__.split('+')[0]}"


def _projections(audio: np.ndarray) -> np.ndarray:
    rows = np.random.default_rng(len(audio)).standard_normal((16, len(audio)))
    return rows @ audio.astype(np.float64) / np.sqrt(len(audio))


def pin_of(audio: np.ndarray) -> dict:
    """{sha256, norm, projections} of a clip, as stored in a pin table."""
    samples = np.asarray(audio, dtype=np.float32)
    return {
        "sha256": hashlib.sha256(samples.tobytes()).hexdigest(),
        "norm": round(float(np.linalg.norm(samples.astype(np.float64))), 6),
        "projections": [round(float(p), 6) for p in _projections(samples)],
    }


def mismatch(pinned: dict, audio: np.ndarray, exact: bool) -> str | None:
    """Why `audio` fails its pin (None when it matches): bit for bit when `exact`, else to the signature."""
    got = pin_of(audio)
    if exact:
        return None if got["sha256"] == pinned["sha256"] else f"sha256 {got['sha256'][:12]} != {pinned['sha256'][:12]}"
    tolerance = SIGNATURE_RTOL * max(pinned["norm"], 1e-12)
    errors = np.abs(np.array(got["projections"]) - np.array(pinned["projections"]))
    if abs(got["norm"] - pinned["norm"]) > tolerance or errors.max() > tolerance:
        return (
            f"signature off by {errors.max():.3g} (norm {got['norm']:.6g} vs {pinned['norm']:.6g}, tol {tolerance:.3g})"
        )
    return None


def check_pins(pins: dict, pinned_on: str, clips: dict[str, np.ndarray]) -> dict[str, str]:
    """{clip_id: why} for every clip that fails its pin; exact on the pinning platform, signatures elsewhere."""
    exact = platform_key() == pinned_on
    problems = {clip_id: mismatch(pins[clip_id], audio, exact) for clip_id, audio in clips.items()}
    missing = set(pins) - set(clips)
    problems.update({clip_id: "not generated" for clip_id in missing})
    return {k: v for k, v in problems.items() if v}
