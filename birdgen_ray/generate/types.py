"""What every generator returns for one plan row, whatever model (or none) made it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from birdgen_ray.rows import PlanRow


@dataclass
class GeneratedClip:
    """A finished clip: post-processed audio plus everything the index records about it."""

    clip_id: str
    audio: np.ndarray  # float32 mono in [-1, 1], at sample_rate
    sample_rate: int  # rate of `audio` (the run's output rate)
    source_sample_rate: int  # rate the model produced (AudioLDM2 16 kHz, Stable Audio Open 44.1 kHz)
    bandwidth_hz: float  # highest frequency with content: min(source_sample_rate, sample_rate) / 2
    final_seed: int  # seed of the kept take (== row seed unless a retry or candidate won)
    attempts: int = 1  # generations spent on this clip, retries and candidates included
    verdict: str = "pass"  # "pass" or "fail:<reason>[,<reason>]" after the retry budget ran out
    metrics: dict[str, float] = field(default_factory=dict)  # clap_score, peak_dbfs, rms_dbfs, ...
    reference_sha256: str | None = None  # of the reference recording's bytes, for a reference row
    # the species verifier's view of the kept take (metrics hold species_confidence, species_top1_confidence)
    species_top1: str = ""  # BirdNET label heard most confidently; "" when not verified
    embedding: np.ndarray | None = None  # [1024] float32 BirdNET embedding (mean over 3 s windows)
    verifier: str = ""  # e.g. "birdnet-2.4-fp32"; "" when not verified


# Told after each finished batch how many clips it made (a fraction when a clip takes several candidates):
# the actor's live count of clips not yet committed.
BatchCallback = Callable[[float], None]


class ClipGenerator(Protocol):
    """Held by one actor for its lifetime; `model_id` names what made the audio; `on_batch`, when set,
    is called after each batch."""

    model_id: str
    on_batch: BatchCallback | None

    def generate(self, rows: Sequence[PlanRow]) -> list[GeneratedClip]:
        """One clip per row, in row order."""
        ...
