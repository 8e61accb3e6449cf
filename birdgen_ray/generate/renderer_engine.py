"""Today's engine driving a renderer (generate/renderer.py) in place of its built-in AudioLDM2 code.

A bridge until the engine is rebuilt on the take queue (issue 22): AudioLDM2Engine keeps the queue,
candidates, retries, the quality gate, the verifier, NaN reruns and post-processing; this subclass
hands each batch to the renderer (prepare, denoise, decode) instead of AudioLDM2's own stages.
Used for the Stable Audio Open family; AudioLDM2 itself still runs in AudioLDM2Engine.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any, Sequence

import numpy as np
import torch

from birdgen_ray.config import EngineConfig, GenerationConfig
from birdgen_ray.generate.engine import STAGES, AudioLDM2Engine
from birdgen_ray.generate.model import resolve_device
from birdgen_ray.generate.renderer import ReferenceWindow, RenderRow
from birdgen_ray.generate.renderers.stable_audio import StableAudioRenderer
from birdgen_ray.generate.species import SpeciesVerifier
from birdgen_ray.generate.stages import StageClock
from birdgen_ray.io.recordings import reference_uri
from birdgen_ray.rows import PlanRow


def reference_window(row: PlanRow) -> ReferenceWindow | None:
    if not row.reference:
        return None
    return ReferenceWindow(reference_uri(row.reference_root, row.reference), float(row.reference_start_s or 0.0))


class _RowReferences:
    """The engine's `references.sha256(row)`, answered by the renderer."""

    def __init__(self, renderer):
        self.renderer = renderer

    def sha256(self, row: PlanRow) -> str | None:
        return self.renderer.reference_sha256(reference_window(row))


class RendererEngine(AudioLDM2Engine):
    """ClipGenerator whose batches a renderer makes (Stable Audio Open by default)."""

    def __init__(
        self,
        generation: GenerationConfig,
        engine: EngineConfig,
        storage_options: dict[str, Any] | None = None,
        renderer_class=StableAudioRenderer,
    ):
        self.generation, self.engine = generation, engine
        self.clock = StageClock(torch.device(resolve_device(engine.device)), STAGES)
        self._stage = self.clock.stage
        self.renderer = renderer_class(generation, engine, self._stage, storage_options)
        self.pipe, self.model_id = self.renderer.pipe, self.renderer.model_id
        self.device = self.renderer.device
        self.source_rate = self.renderer.sample_rate
        self.bandwidth_hz = self.renderer.bandwidth_hz
        self.choices = self.renderer.choices
        self.scorer = self.renderer.scorer
        self.references = _RowReferences(self.renderer)
        self.batch_size = self.choices["batch_size"].value
        self._postprocess_pool = ThreadPoolExecutor(max_workers=max(1, engine.postprocess_threads))
        self.verifier = None
        if generation.verifier == "birdnet":
            threads = engine.verifier_threads_for(gpu=self.device.type == "cuda")
            self.verifier = SpeciesVerifier(generation, threads, engine.verifier_batch_size)

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"batch_size must be >= 1, got {value}")
        self._batch_size = int(value)
        if self.scorer is not None:
            self.scorer.batch_size = int(value)

    @property
    def scores_takes(self) -> bool:
        return self.scorer is not None and super().scores_takes

    def _encode_up_front(self, rows: Sequence[PlanRow]) -> None:
        self.renderer.encode(list(dict.fromkeys(t for row in rows for t in (row.prompt, row.negative_prompt))))

    def _synthesize(
        self, rows: list[PlanRow], seeds: list[int], first_step: int, duration: float, dtype=None
    ) -> np.ndarray:
        """One batch through the renderer: float32 audio (batch, samples) at its native rate."""
        batch = [
            RenderRow(row.prompt, row.negative_prompt, int(seed), first_step, reference_window(row))
            for row, seed in zip(rows, seeds)
        ]
        with self.renderer.in_precision(dtype) if dtype is not None else nullcontext():
            start = self.renderer.prepare(batch, duration, len(batch))
            return self.renderer.decode(self.renderer.denoise(start), duration)
