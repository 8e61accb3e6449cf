"""A generator with no model: deterministic bird-like chirps from the plan row alone.

It goes through the same post-processing and quality measurement as the real engine, so the whole
pipeline (scheduling, shards, index, resume) can be exercised and benchmarked without a GPU.
The fault-injection tests extend it from the test suite (tests/fault_hooks.py): it reads nothing
from the environment.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import replace
from typing import Sequence

import numpy as np

from birdgen_ray.config import EngineConfig, GenerationConfig
from birdgen_ray.generate.postprocess import to_output
from birdgen_ray.generate.quality import judge, measure, verdict
from birdgen_ray.generate.types import BatchCallback, GeneratedClip
from birdgen_ray.rows import PlanRow

SOURCE_RATE = 16_000  # what AudioLDM2 produces; the null audio is made at the same rate


def synthesize(row: PlanRow, sample_rate: int = SOURCE_RATE) -> np.ndarray:
    """A few short frequency sweeps over faint noise, decided by the row's seed and prompt only.

    Amplitudes are kept small enough that even overlapping sweeps never clip, so with default
    thresholds every clip passes the quality gate.
    """
    rng = np.random.default_rng([row.seed, zlib.crc32(row.prompt.encode("utf-8"))])
    num_samples = max(1, round(row.duration_s * sample_rate))
    # uniform noise: several times cheaper to draw than Gaussian, and it is only a noise floor
    audio = rng.random(num_samples, dtype=np.float32)
    audio -= 0.5
    audio *= 0.02
    for _ in range(int(rng.integers(2, 5))):
        length = min(num_samples, int(rng.uniform(0.04, 0.15) * sample_rate))
        start = int(rng.integers(0, num_samples - length + 1))
        f_start, f_end = (float(f) for f in rng.uniform(1_500.0, 7_000.0, size=2))
        amplitude = float(rng.uniform(0.1, 0.24))  # 4 overlapping sweeps + noise stay below 0.999
        span_s = length / sample_rate
        t = np.arange(length, dtype=np.float32) * np.float32(1.0 / sample_rate)
        # linear chirp (phase is the integral of the instantaneous frequency), sine-squared envelope
        phase = t * np.float32(2 * np.pi) * (np.float32(f_start) + np.float32(0.5 * (f_end - f_start) / span_s) * t)
        envelope = np.sin(t * np.float32(np.pi / span_s)) ** 2
        audio[start : start + length] += np.float32(amplitude) * envelope * np.sin(phase)
    return audio


class NullGenerator:
    """ClipGenerator with no model. Same row -> same samples, in any batch, on any machine."""

    model_id = "null"
    on_batch: BatchCallback | None = None  # each row is a batch of one here

    def __init__(self, generation: GenerationConfig, engine: EngineConfig):
        self.generation = generation
        self.engine = engine
        self.stage_times: dict[str, float] = {"generate": 0.0, "postprocess": 0.0}
        # No CLAP scorer here, so a CLAP threshold cannot apply; every other gate does.
        self._thresholds = replace(generation.quality, min_clap_score=None)

    def generate(self, rows: Sequence[PlanRow]) -> list[GeneratedClip]:
        clips = []
        for row in rows:
            clips.append(self._one(row))
            if self.on_batch is not None:
                self.on_batch(1)
        return clips

    def _raw(self, row: PlanRow) -> np.ndarray:
        """The row's audio at the source rate, before post-processing."""
        return synthesize(row)

    def _one(self, row: PlanRow) -> GeneratedClip:
        started = time.perf_counter()
        raw = self._raw(row)
        generated = time.perf_counter()

        gen = self.generation
        metrics = measure(raw, SOURCE_RATE, gen.quality)
        audio = to_output(raw, SOURCE_RATE, gen.output_sample_rate, row.duration_s, gen.peak_dbfs)
        reasons = judge(metrics, None, self._thresholds)
        self.stage_times["generate"] += generated - started
        self.stage_times["postprocess"] += time.perf_counter() - generated
        return GeneratedClip(
            clip_id=row.clip_id,
            audio=audio,
            sample_rate=gen.output_sample_rate,
            source_sample_rate=SOURCE_RATE,
            bandwidth_hz=SOURCE_RATE / 2,
            final_seed=row.seed,
            attempts=1,
            verdict=verdict(reasons),
            metrics=metrics,
        )
