"""The quality gate: cheap measurements of raw model output and the verdict they lead to.

`measure` runs on the model's audio before normalisation (so clipping and level mean something);
`judge` turns the measurements plus an optional CLAP score into stable rejection reasons.
"""

from __future__ import annotations

import math

import numpy as np

from birdgen_ray.config import QualityThresholds

FLOOR_DBFS = -120.0  # level reported for digital silence instead of -inf
FRAME_S = 0.020  # silence is judged per 20 ms frame
CLIP_LEVEL = 0.999  # |x| at or above this counts as a clipped sample

# Rejection reasons, in the order `judge` reports them. Stored in index rows: never rename.
NONFINITE = "nonfinite"
TOO_QUIET = "too_quiet"
SILENT = "silent"
CLIPPING = "clipping"
LOW_CLAP = "low_clap"
SPECIES = "species"  # BirdNET's confidence in the clip's own species is below min_species_confidence


def _dbfs(amplitude: float) -> float:
    return max(FLOOR_DBFS, 20.0 * math.log10(amplitude)) if amplitude > 0 else FLOOR_DBFS


def _frame_rms(audio: np.ndarray, frame: int) -> np.ndarray:
    """RMS of consecutive frames; a shorter last frame counts as a frame of its own length."""
    full = audio.size // frame
    frames = audio[: full * frame].reshape(full, frame)
    rms = np.sqrt(np.einsum("ij,ij->i", frames, frames) / frame)
    tail = audio[full * frame :]
    if tail.size:
        rms = np.append(rms, math.sqrt(float(np.dot(tail, tail)) / tail.size))
    return rms


def measure(audio: np.ndarray, sample_rate: int, thresholds: QualityThresholds) -> dict[str, float]:
    """Level, silence, clipping and finiteness of one mono clip.

    NaN/inf samples set `nonfinite` to 1.0 and are treated as zeros for the other measurements,
    so every value returned is a finite float.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    finite = np.isfinite(audio)
    nonfinite = 0.0 if finite.all() else 1.0
    if nonfinite:
        audio = np.where(finite, audio, np.float32(0.0))
    if audio.size == 0:
        return {
            "peak_dbfs": FLOOR_DBFS,
            "rms_dbfs": FLOOR_DBFS,
            "silence_fraction": 1.0,
            "clipping_fraction": 0.0,
            "nonfinite": nonfinite,
        }
    magnitude = np.abs(audio)
    frame_rms = _frame_rms(audio, max(1, int(round(FRAME_S * sample_rate))))
    silence_level = 10.0 ** (thresholds.silence_dbfs / 20.0)
    return {
        "peak_dbfs": _dbfs(float(magnitude.max())),
        "rms_dbfs": _dbfs(math.sqrt(float(np.dot(audio, audio)) / audio.size)),
        "silence_fraction": float(np.count_nonzero(frame_rms < silence_level)) / len(frame_rms),
        "clipping_fraction": float(np.count_nonzero(magnitude >= CLIP_LEVEL)) / audio.size,
        "nonfinite": nonfinite,
    }


def judge(
    metrics: dict[str, float],
    clap_score: float | None,
    thresholds: QualityThresholds,
    species_ceiling: float | None = None,
) -> list[str]:
    """Reasons to reject the clip, in the order of the constants above; an empty list means it passes.

    A relative species threshold (`0.5x`) asks for that share of `species_ceiling`, the class's
    reference_ceiling; the runner refuses such a run when a verifiable class has none.

    With `min_clap_score` set, a missing score is a caller bug (the scorer did not run) and raises,
    rather than silently failing or passing every clip.
    """
    reasons: list[str] = []
    if metrics["nonfinite"] >= 0.5:
        reasons.append(NONFINITE)
    if metrics["peak_dbfs"] < thresholds.min_peak_dbfs:
        reasons.append(TOO_QUIET)
    if metrics["silence_fraction"] > thresholds.max_silence_fraction:
        reasons.append(SILENT)
    if metrics["clipping_fraction"] > thresholds.max_clipping_fraction:
        reasons.append(CLIPPING)
    if thresholds.min_clap_score is not None:
        if clap_score is None:
            raise ValueError("quality.min_clap_score is set but no CLAP score was computed for this clip")
        if not (clap_score >= thresholds.min_clap_score):  # NaN scores fail too
            reasons.append(LOW_CLAP)
    if thresholds.min_species_confidence is not None:
        if "species_confidence" not in metrics:
            raise ValueError("quality.min_species_confidence is set but the species verifier did not run")
        # NaN: the class has no BirdNET label (unverifiable). A retry cannot change that, so it is not
        # rejected here; it never counts as a species pass either (report, status).
        confidence = metrics["species_confidence"]
        needed = thresholds.min_species_confidence
        if thresholds.species_confidence_relative:
            needed = needed * species_ceiling if species_ceiling is not None else float("nan")
        if not math.isnan(confidence) and confidence < needed:  # a NaN `needed` rejects nothing
            reasons.append(SPECIES)
    return reasons


def verdict(reasons: list[str]) -> str:
    """The index's `verdict` text: "pass", or "fail:<reason>[,<reason>]"."""
    return "pass" if not reasons else "fail:" + ",".join(reasons)
