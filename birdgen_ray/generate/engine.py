"""The engine inside one actor: plan rows in, finished clips out, for any model family.

A composition of four parts: the take queue (generate/take_queue.py) picks each batch, a renderer
(generate/renderer.py; AudioLDM2 in generate/renderers/audioldm2.py) renders it, the quality gate
and ranking (generate/quality.py, generate/species.py) judge it, and a thread pool post-processes
finished clips. First every text of the shard is encoded once. Then, for each group of rows with
the same duration (one tensor shape):
  1. every clip gets `candidates_per_clip` takes, each with its own torch.Generator seeded from the
     row (take 0 uses the row seed), rendered in fixed-size batches from per-prompt encodings, so a
     clip's audio never depends on its batch-mates; reference rows start part-way (SDEdit), and
     rows with different start steps share a batch;
  2. each take is scored against its own prompt (CLAP, when the renderer has a scorer and anything
     uses the score) and, with a verifier, its species on CPU threads; the best take is kept;
  3. the quality gate measures the kept take's raw audio; a rejected clip is redone with a derived
     seed, up to `quality.max_retries` times, and is kept with a "fail:..." verdict after that; its
     new takes join the queue behind the waiting ones, so retries fill full batches;
  4. a clip that is done goes to the post-processing pool at once (resample to the output rate, fit
     to the exact length, peak-normalise) while the next batches render.
Non-finite model output is never returned: its takes are rerun (in fp32 when fp16 keeps failing);
a take still non-finite fails the gate ("nonfinite") and its clip is redone with a derived seed.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from birdgen_ray.config import EngineConfig, GenerationConfig
from birdgen_ray.generate.postprocess import to_output
from birdgen_ray.generate.quality import judge, measure, verdict
from birdgen_ray.generate.renderer import RenderRow, reference_strength, reference_window
from birdgen_ray.generate.renderers import renderer_class
from birdgen_ray.generate.renderers.audioldm2 import STAGES as AUDIOLDM2_STAGES
from birdgen_ray.generate.renderers.audioldm2 import make_scheduler  # noqa: F401 (callers import it from here)
from birdgen_ray.generate.species import PendingScores, SpeciesVerifier, rank_key
from birdgen_ray.generate.stages import StageClock
from birdgen_ray.generate.take_queue import Take, TakeBatch, TakeQueue
from birdgen_ray.generate.types import BatchCallback, GeneratedClip
from birdgen_ray.rows import PlanRow
from birdgen_ray.verify.score import ClipScore

logger = logging.getLogger(__name__)

# species_wait: the GPU waiting for the BirdNET threads (the verifier's own time is `species`, off the GPU)
ENGINE_STAGES = ("scoring", "species_wait", "postprocess")
STAGES = AUDIOLDM2_STAGES + ENGINE_STAGES


@dataclass
class _ClipState:
    row: PlanRow
    attempts: int = 0  # generations spent: takes, retries and non-finite reruns
    seed: int | None = None  # seed of the kept take
    audio: np.ndarray | None = None  # kept take, raw model output at the source rate
    score: float = float("-inf")  # its CLAP similarity to the row's prompt (-inf when not scored)
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    species: ClipScore | None = None  # BirdNET's scores of the kept take (None: not verifying)
    rank: tuple = ()  # what the kept take won with (generate/species.py: rank_key)


@dataclass
class _Rendered:
    """A rendered batch waiting for its species scores before its takes compete."""

    batch: TakeBatch
    audio: np.ndarray  # (takes, samples) raw audio of the real takes, non-finite samples kept
    spent: np.ndarray  # generations spent per take (reruns included)
    scores: list[float]  # CLAP score per take (-inf: none)
    species: PendingScores | None  # None: not verifying

    def ready(self) -> bool:
        return self.species is None or self.species.done()


class ClipEngine:
    """ClipGenerator over one renderer family, loaded once per actor."""

    on_batch: BatchCallback | None = None  # the actor's progress count (retries make no new clips)

    def __init__(
        self,
        generation: GenerationConfig,
        engine: EngineConfig,
        storage_options: dict[str, Any] | None = None,
        family: str = "audioldm2",
    ):
        self.generation = generation
        self.engine = engine
        make = renderer_class(family)
        self.clock = StageClock(torch.device("cpu"), (*make.stages, *ENGINE_STAGES))
        self._stage = self.clock.stage
        self.renderer = make(generation, engine, self._stage, storage_options)
        self.clock.device = self.device = self.renderer.device
        self.model_id, self.source_rate = self.renderer.model_id, self.renderer.sample_rate
        self.choices = self.renderer.choices
        self.scorer = self.renderer.scorer
        self.batch_size = self.choices["batch_size"].value
        self._postprocess_pool = ThreadPoolExecutor(max_workers=max(1, engine.postprocess_threads))
        self.verifier = None
        if generation.verifier == "birdnet":
            threads = engine.verifier_threads_for(gpu=self.device.type == "cuda")
            self.verifier = SpeciesVerifier(generation, threads, engine.verifier_batch_size)

    @property
    def pipe(self):
        """The renderer's diffusers pipeline (every family has one)."""
        return self.renderer.pipe

    @property
    def batch_size(self) -> int:
        """Clips per model call. Settable: the actor halves it after a CUDA out-of-memory error."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"batch_size must be >= 1, got {value}")
        self._batch_size = int(value)
        if self.scorer is not None:
            self.scorer.batch_size = int(value)

    @property
    def stage_times(self) -> dict[str, float]:
        """Seconds per stage since the engine was built (or since stage_times was last set); when
        verifying, `species` is the BirdNET threads' time, which overlaps the other stages."""
        if self.verifier is None:
            return self.clock.times
        return {**self.clock.times, "species": self.verifier.busy_seconds}

    @stage_times.setter
    def stage_times(self, times: dict[str, float]) -> None:
        self.clock.times = {k: v for k, v in times.items() if k != "species"}
        if self.verifier is not None:
            self.verifier.busy_seconds = times.get("species", 0.0)

    @property
    def engine_counts(self) -> dict[str, int]:
        """Encoder calls, denoiser rows and padded rows since the engine was built (summary.json)."""
        return self.renderer.counts.as_dict()

    @property
    def scores_takes(self) -> bool:
        """Whether CLAP scoring has a use: ranking candidate takes, or a CLAP threshold in the gate.
        Without one it is skipped and `clap_score` is None (null in the index); the audio is the same."""
        gen = self.generation
        wanted = gen.candidates_per_clip > 1 or gen.quality.min_clap_score is not None
        return wanted and self.scorer is not None

    def generate(self, rows: Sequence[PlanRow]) -> list[GeneratedClip]:
        clips: list[GeneratedClip | None] = [None] * len(rows)
        by_duration: dict[float, list[int]] = {}
        for index, row in enumerate(rows):
            by_duration.setdefault(float(row.duration_s), []).append(index)
        with torch.no_grad():
            # every text of the shard at once: the encoder's buckets are fullest when it sees all of them
            self.renderer.encode([t for row in rows for t in (row.prompt, row.negative_prompt)])
            for duration, indices in by_duration.items():
                group = self._generate_same_length([rows[i] for i in indices], duration)
                for index, clip in zip(indices, group):
                    clips[index] = clip
        return clips  # type: ignore[return-value]

    def _generate_same_length(self, rows: list[PlanRow], duration: float) -> list[GeneratedClip]:
        """Batches from the take queue until every clip is done; a clip that is done (passed, or out of
        retries) goes to the post-processing pool at once, which works while the next batches render."""
        gen = self.generation
        steps = gen.num_inference_steps
        start_steps = [self.renderer.start_step(reference_strength(r), steps) for r in rows]
        queue = TakeQueue([r.seed for r in rows], start_steps, gen.candidates_per_clip, gen.quality.max_retries)
        states = [_ClipState(row) for row in rows]
        finished: dict[int, Future] = {}
        inflight: deque[_Rendered] = deque()  # rendered batches whose species scores are still being computed
        while True:
            awaiting = any(queue.can_retry(t.clip) for entry in inflight for t in entry.batch.takes)
            batch = queue.next_batch(self.batch_size, awaiting_verdicts=awaiting)
            if batch is not None:
                inflight.append(self._render(batch, rows, duration))
                if self.on_batch is not None:  # progress: first takes only, retries make no new clips
                    self.on_batch(sum(1 for t in batch.takes if t.round == 0) / gen.candidates_per_clip)
                while inflight and inflight[0].ready():
                    self._offer(queue, states, inflight.popleft(), finished, duration)
            elif inflight:  # nothing to render until the verifier's scores decide the retries
                with self._stage("species_wait"):  # the GPU idles here: the verifier fell behind
                    entry = inflight.popleft()
                    if entry.species is not None:
                        entry.species.result()
                self._offer(queue, states, entry, finished, duration)
            else:
                break
        with self._stage("postprocess"):  # only what the pool has not finished while later batches rendered
            audios = [finished[i].result() for i in range(len(states))]
        return [self._clip(state, audio) for state, audio in zip(states, audios)]

    def _clip(self, state: _ClipState, audio: np.ndarray) -> GeneratedClip:
        species = state.species
        return GeneratedClip(
            clip_id=state.row.clip_id,
            audio=audio,
            sample_rate=self.generation.output_sample_rate,
            source_sample_rate=self.source_rate,
            # the stored audio's band: the model's, at most half the output rate
            bandwidth_hz=min(self.renderer.bandwidth_hz, self.generation.output_sample_rate / 2),
            final_seed=int(state.seed),
            attempts=state.attempts,
            verdict=verdict(state.reasons),
            metrics=state.metrics,
            reference_sha256=self.renderer.reference_sha256(reference_window(state.row)),
            species_top1=species.species_top1 if species is not None else "",
            embedding=species.embedding if species is not None else None,
            verifier=self.verifier.verifier if self.verifier is not None else "",
        )

    def _render(self, batch: TakeBatch, rows: list[PlanRow], duration: float) -> _Rendered:
        """Render a batch, start its species scoring on CPU threads (while CLAP and the next batch use
        the GPU) and score it with CLAP."""
        render_rows = [self._render_row(take, rows[take.clip]) for take in batch.rows]
        audio, spent = self._render_batch(render_rows, len(batch.takes), duration)
        finite = np.isfinite(audio).all(axis=1)
        clean = np.where(finite[:, None], audio, 0.0)
        species = None
        if self.verifier is not None:
            species = self.verifier.submit(clean, [rows[t.clip].label for t in batch.takes], self.source_rate)
        return _Rendered(batch, audio, spent, self._scores(batch.takes, rows, clean, finite), species)

    @staticmethod
    def _render_row(take: Take, row: PlanRow) -> RenderRow:
        return RenderRow(row.prompt, row.negative_prompt, take.seed, take.start_step, reference_window(row))

    def _offer(
        self, queue: TakeQueue, states: list[_ClipState], entry: _Rendered, finished: dict, duration: float
    ) -> None:
        """A rendered batch's takes compete for their clips (ties keep the earlier take); a clip whose
        attempt is complete is judged, then retried or sent to post-processing."""
        verified = entry.species.result() if entry.species is not None else [None] * len(entry.batch.takes)
        for take, audio, spent, score, species in zip(
            entry.batch.takes, entry.audio, entry.spent, entry.scores, verified
        ):
            state = states[take.clip]
            state.attempts += int(spent)
            key = rank_key(self.generation.rank_by, score, species)
            if state.audio is None or key > state.rank:
                state.seed, state.audio, state.score, state.rank, state.species = (
                    take.seed,
                    audio.copy(),
                    score,
                    key,
                    species,
                )
        with self._stage("scoring"):
            for clip in queue.rendered(entry.batch.takes):
                state = states[clip]
                self._judge(state)
                if state.reasons and queue.can_retry(clip):
                    state.audio, state.seed, state.score, state.species = None, None, float("-inf"), None
                    queue.retry(clip)  # a retry starts over: only its own takes compete
                else:
                    finished[clip] = self._postprocess_pool.submit(self._postprocess, state.audio, duration)

    def _judge(self, state: _ClipState) -> None:
        """The quality gate on a clip's kept take: its metrics and the reasons to reject it."""
        gen = self.generation
        clap_score = state.score if self.scores_takes else None
        state.metrics = {**measure(state.audio, self.source_rate, gen.quality), "clap_score": clap_score}
        if state.species is not None:
            state.metrics["species_confidence"] = state.species.species_confidence
            state.metrics["species_top1_confidence"] = state.species.species_top1_confidence
        state.reasons = judge(state.metrics, clap_score, gen.quality, gen.species_ceilings.get(state.row.label))

    def _scores(self, takes: Sequence[Take], rows: list[PlanRow], clean: np.ndarray, finite: np.ndarray) -> list[float]:
        """Each take's CLAP similarity to its own prompt; -inf for all when scoring has no use (one take each,
        so nothing is ranked by it) and for takes without a usable score."""
        if not self.scores_takes:
            return [float("-inf")] * len(takes)
        scores = self.scorer.score([rows[t.clip].prompt for t in takes], list(clean), self.source_rate)
        # no usable score (non-finite audio, or a NaN from an fp16 CLAP overflow) ranks below every
        # real one: a NaN would otherwise win or lose every comparison whatever the other scores
        return [score if ok and math.isfinite(score) else float("-inf") for score, ok in zip(scores, finite)]

    def _postprocess(self, raw: np.ndarray, duration: float) -> np.ndarray:
        gen = self.generation
        return to_output(raw, self.source_rate, gen.output_sample_rate, duration, gen.peak_dbfs)

    def _render_batch(self, rows: list[RenderRow], real_rows: int, duration: float) -> tuple[np.ndarray, np.ndarray]:
        """(raw audio (takes, samples), generations spent per take) of a batch whose first `real_rows` rows
        are takes; reruns the takes that came out NaN/inf. Padding rows' output is dropped."""
        audio = self._synthesize(rows, real_rows, duration)[:real_rows]
        spent = np.ones(real_rows, dtype=np.int64)
        # Only the bad takes are rerun (an fp32 rerun of a whole batch needs twice the activation
        # memory), and eagerly: a compiled UNet must not recompile for a rerun's batch size or dtype.
        for precision in self.renderer.rerun_precisions():
            bad = np.flatnonzero(~np.isfinite(audio).all(axis=1))
            if not bad.size:
                return audio, spent
            logger.warning(
                "non-finite audio for seeds %s; rerunning them in %s", [rows[i].seed for i in bad], precision
            )
            with _eager(), self.renderer.in_precision(precision):
                audio[bad] = self._synthesize([rows[i] for i in bad], len(bad), duration)
            spent[bad] += 1
        bad = ~np.isfinite(audio).all(axis=1)
        if bad.any():
            # Left non-finite: the quality gate rejects these takes ("nonfinite") and the clip is
            # redone with a derived seed; the rest of the batch (and the shard) goes on.
            seeds = [r.seed for r, b in zip(rows, bad) if b]
            logger.error("model %s kept producing NaN/inf audio for seeds %s", self.model_id, seeds)
        return audio, spent

    def _synthesize(self, rows: list[RenderRow], real_rows: int, duration: float) -> np.ndarray:
        """One batch through the renderer: float32 audio (rows, samples) at the source rate."""
        start = self.renderer.prepare(rows, duration, real_rows)
        return self.renderer.decode(self.renderer.denoise(start), duration)


class AudioLDM2Engine(ClipEngine):
    """The engine over the AudioLDM2 renderer (the name the actor, the benches and the tests use)."""

    def __init__(
        self, generation: GenerationConfig, engine: EngineConfig, storage_options: dict[str, Any] | None = None
    ):
        super().__init__(generation, engine, storage_options, family="audioldm2")

    @property
    def encoder(self):
        return self.renderer.encoder

    @property
    def references(self):
        return self.renderer.references


class StableAudioEngine(ClipEngine):
    """The engine over the Stable Audio Open renderer (generate/renderers/stable_audio.py)."""

    def __init__(
        self, generation: GenerationConfig, engine: EngineConfig, storage_options: dict[str, Any] | None = None
    ):
        super().__init__(generation, engine, storage_options, family="stable-audio-open")


def _eager():
    """Run a compiled UNet without compiling (torch >= 2.6); plain eager modules are unaffected."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    return set_stance("force_eager") if set_stance is not None else nullcontext()
