"""An estimate of a plan's GPU time, from the reference figure in BENCHMARKS.md.

The figure: one NVIDIA H200, base `cvssp/audioldm2` architecture, fp16, DPM-Solver 25 steps,
batch 64, 5 s clips: 0.0386 s per clip (25.9 clips/s), measured with the diffusers pipeline before
this project's engine existed (BENCHMARKS.md, "Reference points measured earlier"). Time is scaled
linearly by clip length (latent frames), denoising steps and takes per clip. It is an estimate for
planning a budget, not a measurement of this engine; the card is named wherever it is printed.
"""

from __future__ import annotations

from dataclasses import dataclass

from birdgen_ray.config import GenerationConfig

REFERENCE_CARD = "NVIDIA H200"
REFERENCE_SECONDS_PER_CLIP = 0.0386  # BENCHMARKS.md: "batch 64, DPM-Solver 25"
REFERENCE_STEPS = 25
REFERENCE_DURATION_S = 5.0
REFERENCE_BATCH = 64


@dataclass(frozen=True)
class GpuEstimate:
    clips: int
    gpu_seconds: float  # on one REFERENCE_CARD

    def wall_seconds(self, gpus: int) -> float:
        return self.gpu_seconds / max(1, gpus)

    def line(self, gpus: int = 1, settings: str = "at the default settings") -> str:
        per = f"{_duration(self.wall_seconds(gpus))} on {gpus} GPUs, " if gpus > 1 else ""
        return (
            f"estimated GPU time: {_duration(self.gpu_seconds)} on one {REFERENCE_CARD} ({per}"
            f"{self.clips} clips {settings}; an estimate from BENCHMARKS.md's "
            f"{REFERENCE_SECONDS_PER_CLIP} s per {REFERENCE_DURATION_S:g} s clip at DPM-Solver {REFERENCE_STEPS} "
            f"steps, batch {REFERENCE_BATCH}, fp16)"
        )


def estimate_gpu_time(durations_s: list[float], generation: GenerationConfig | None = None) -> GpuEstimate:
    """GPU seconds on one reference card for clips of these lengths at these settings (default: submit's)."""
    generation = generation or GenerationConfig()
    per_second_of_audio = REFERENCE_SECONDS_PER_CLIP / REFERENCE_DURATION_S
    scale = generation.num_inference_steps / REFERENCE_STEPS * generation.candidates_per_clip
    return GpuEstimate(len(durations_s), sum(durations_s) * per_second_of_audio * scale)


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"about {seconds:.1f} s"
    if seconds < 120:
        return f"about {seconds:.0f} s"
    if seconds < 7200:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"
