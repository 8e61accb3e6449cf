"""BirdNET beside the model: every take's species is scored on CPU threads while the GPU renders on.

The engine hands each rendered batch to `SpeciesVerifier.submit` and goes straight on to the next
batch; the scores are collected when the quality gate needs them (after the attempt's last batch).
Each thread has its own interpreter (a LiteRT interpreter runs one call at a time), and a batch is
split across the threads, so N threads score one batch about N times faster.
"""

from __future__ import annotations

import dataclasses
import queue
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Sequence

import numpy as np

from birdgen_ray.config import GenerationConfig
from birdgen_ray.verify.birdnet import WINDOW_SAMPLES, BirdNet, birdnet_labels
from birdgen_ray.verify.score import ClipScore, score_clips, verifier_id


class PendingScores:
    """The species scores of one batch, being computed: `.done()` without waiting, `.result()` waits."""

    def __init__(self, parts: list[Future]):
        self._parts = parts

    def done(self) -> bool:
        return all(part.done() for part in self._parts)

    def result(self) -> list[ClipScore]:
        return [score for part in self._parts for score in part.result()]


class SpeciesVerifier:
    def __init__(self, generation: GenerationConfig, threads: int, batch_size: int = 4):
        index = {name: i for i, name in enumerate(birdnet_labels())}
        self.targets = {label: index[name] for label, name in generation.species_labels.items()}
        self.threads = max(1, int(threads))
        self.batch_size = batch_size
        self._models: queue.Queue[BirdNet] = queue.Queue()
        silence = np.zeros((batch_size, WINDOW_SAMPLES), np.float32)
        for _ in range(self.threads):
            model = BirdNet(num_threads=1)
            model.infer(silence)  # allocate at the batch size now (seconds), not inside the first shard
            self._models.put(model)
        self.verifier = verifier_id(self._models.queue[0])
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="birdnet")
        self.busy_seconds = 0.0  # thread time spent scoring (summed over threads)

    def submit(self, audios: Sequence[np.ndarray], labels: Sequence[str], sample_rate: int) -> PendingScores:
        """Start scoring takes (raw model audio at `sample_rate`); returns at once."""
        audios = [np.array(a, dtype=np.float32, copy=True) for a in audios]  # the engine reuses its buffers
        targets = [self.targets.get(label) for label in labels]
        step = -(-len(audios) // self.threads) if audios else 1
        parts = [
            self._pool.submit(self._score, audios[i : i + step], targets[i : i + step], sample_rate)
            for i in range(0, len(audios), step)
        ]
        return PendingScores(parts)

    def _score(self, audios: list[np.ndarray], targets: list[int | None], sample_rate: int) -> list[ClipScore]:
        model = self._models.get()
        started = time.perf_counter()
        try:
            scores = score_clips(model, audios, sample_rate, targets, self.batch_size)
        finally:
            self._models.put(model)
            self.busy_seconds += time.perf_counter() - started
        # the per-window probabilities are not kept: 26 kB per window, and the index needs the max only
        return [dataclasses.replace(s, window_probs=None) for s in scores]


def rank_key(rank_by: str, clap_score: float, species: ClipScore | None) -> tuple[float, float]:
    """What picks the kept take: species confidence then CLAP (rank_by="species"), or CLAP alone.

    An unverifiable class (NaN confidence) ranks by CLAP; no usable score ranks below every real one.
    """
    if rank_by == "species" and species is not None and np.isfinite(species.species_confidence):
        return (species.species_confidence, clap_score)
    return (float("-inf") if rank_by == "species" else 0.0, clap_score)
