"""AudioLDM2 inside one actor: plan rows in, finished clips out.

First every text of the shard is encoded once (equal token lengths in one group, no padding). Then,
for each group of rows with the same duration (one tensor shape):
  1. every clip gets `candidates_per_clip` takes, each with its own torch.Generator seeded from the
     row (take 0 uses the row seed), rendered in fixed-size batches from per-prompt encodings, so a
     clip's audio never depends on its batch-mates;
  2. each take is scored with CLAP against its own prompt only (and, with a verifier, its species on
     CPU threads); the best take of each clip is kept. CLAP scoring is skipped when nothing uses it
     (one take per clip and no CLAP threshold): `clap_score` is then None, and the audio is the same;
  3. the quality gate measures the kept take's raw audio; a rejected clip is redone with a derived
     seed, up to `quality.max_retries` times, and is kept with a "fail:..." verdict after that. Its
     new takes join the same queue as everyone's first takes, so retries fill full batches;
  4. a clip that is done goes to a thread pool at once, which resamples it to the output rate, fits
     it to the exact length and peak-normalises it while the next batches render.
A row with a reference recording starts its diffusion part-way, from the recording's encoding
(SDEdit: generate/denoise.py, generate/references.py); rows are batched with others that start at
the same step, so a batch shares one scheduler state.
Non-finite model output is never returned: its clips are rerun (in fp32 when fp16 keeps failing);
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
from birdgen_ray.generate.batch_size import Choice, engine_choices
from birdgen_ray.generate.denoise import DenoiseBatch, denoise, latent_height
from birdgen_ray.generate.encode import PromptEncoder
from birdgen_ray.generate.model import load_pipeline
from birdgen_ray.generate.postprocess import to_output
from birdgen_ray.generate.quality import judge, measure, verdict
from birdgen_ray.generate.ranking import ClapScorer
from birdgen_ray.generate.references import ReferenceLatents, start_step
from birdgen_ray.generate.seeds import attempt_seed, take_seed
from birdgen_ray.generate.species import SpeciesVerifier, rank_key
from birdgen_ray.generate.stages import StageClock
from birdgen_ray.generate.types import BatchCallback, GeneratedClip
from birdgen_ray.generate.weights import named_tensors, weights_in
from birdgen_ray.rows import PlanRow
from birdgen_ray.verify.score import ClipScore

logger = logging.getLogger(__name__)

# species_wait: the GPU waiting for the BirdNET threads (the verifier's own time is `species`, off the GPU)
STAGES = ("text_encoding", "gpt2", "unet", "vae", "vocoder", "scoring", "species_wait", "postprocess")


def make_scheduler(name: str, config):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler, UniPCMultistepScheduler

    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "dpm":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
    if name == "unipc":
        return UniPCMultistepScheduler.from_config(config)
    if name == "pndm":
        return PNDMScheduler.from_config(config, skip_prk_steps=True)
    raise ValueError(f"unknown scheduler {name!r}; expected ddim, dpm, unipc or pndm")


@dataclass
class _Take:
    clip: int  # index of the clip within its duration group
    seed: int


@dataclass
class _ClipState:
    row: PlanRow
    attempts: int = 0  # generations spent: takes, retries and non-finite reruns
    seed: int | None = None  # seed of the kept take
    audio: np.ndarray | None = None  # kept take, raw model output at the source rate
    score: float = float("-inf")  # its CLAP similarity to the row's prompt (-inf when not scored)
    round: int = 0  # gate attempt: 0, then one more per retry
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    species: ClipScore | None = None  # BirdNET's scores of the kept take (None: not verifying)
    rank: tuple = ()  # what the kept take won with (generate/species.py: rank_key)


class AudioLDM2Engine:
    """ClipGenerator backed by an AudioLDM2 pipeline, loaded once per actor."""

    on_batch: BatchCallback | None = None  # the actor's progress count (retries make no new clips)

    def __init__(
        self, generation: GenerationConfig, engine: EngineConfig, storage_options: dict[str, Any] | None = None
    ):
        self.generation = generation
        self.engine = engine
        self.pipe, self.model_id = load_pipeline(generation.model, engine.device)
        self.pipe.scheduler = make_scheduler(generation.scheduler, self.pipe.scheduler.config)
        self.device = self.pipe._execution_device
        self.source_rate = int(self.pipe.vocoder.config.sampling_rate)
        self.clock = StageClock(self.device, STAGES)
        self._stage = self.clock.stage
        self.encoder = PromptEncoder(self.pipe, self._stage)
        self.choices = self._device_fitting_choices(engine)
        self.scorer = ClapScorer(self.pipe, self._stage, self.encoder, batch_size=self.choices["batch_size"].value)
        self.references = ReferenceLatents(self.pipe, storage_options)  # fsspec options of the run
        self.batch_size = self.choices["batch_size"].value
        if self.choices["compile_unet"].value:
            self.pipe.unet.compile()  # fixed batch shapes: compiles once per clip duration
        if self.choices["cudnn_benchmark"].value:
            torch.backends.cudnn.benchmark = True
        self._postprocess_pool = ThreadPoolExecutor(max_workers=max(1, engine.postprocess_threads))
        self.verifier = None
        if generation.verifier == "birdnet":
            threads = engine.verifier_threads_for(gpu=self.device.type == "cuda")
            self.verifier = SpeciesVerifier(generation, threads, engine.verifier_batch_size)

    def _device_fitting_choices(self, engine: EngineConfig) -> dict[str, Choice]:
        """Batch size, compile and cuDNN autotuning: as asked, or fitted to this device after the model loaded."""
        free_bytes = torch.cuda.mem_get_info(self.device)[0] if self.device.type == "cuda" else None
        weights = [t for _, _, _, t, _ in named_tensors(self.pipe)]
        return engine_choices(
            engine.batch_size,
            engine.compile_unet,
            engine.clip_duration_s,
            engine.clips_per_actor,
            self.device.type,
            free_bytes=free_bytes,
            # an fp32 rerun of non-finite clips casts the weights up: as many bytes again as fp16 weights
            weight_bytes=sum(t.numel() * t.element_size() for t in weights) if self.pipe.dtype != torch.float32 else 0,
            bytes_per_element=self.pipe.unet.dtype.itemsize,
        )

    @property
    def batch_size(self) -> int:
        """Clips per model call. Settable: the actor halves it after a CUDA out-of-memory error."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"batch_size must be >= 1, got {value}")
        self._batch_size = self.scorer.batch_size = int(value)

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
    def scores_takes(self) -> bool:
        """Whether CLAP scoring has a use: ranking candidate takes, or a CLAP threshold in the gate.
        Without one it is skipped and `clap_score` is None (null in the index); the audio is the same."""
        gen = self.generation
        return gen.candidates_per_clip > 1 or gen.quality.min_clap_score is not None

    def generate(self, rows: Sequence[PlanRow]) -> list[GeneratedClip]:
        clips: list[GeneratedClip | None] = [None] * len(rows)
        by_duration: dict[float, list[int]] = {}
        for index, row in enumerate(rows):
            by_duration.setdefault(float(row.duration_s), []).append(index)
        with torch.no_grad():
            self._encode_up_front(rows)
            for duration, indices in by_duration.items():
                group = self._generate_same_length([rows[i] for i in indices], duration)
                for index, clip in zip(indices, group):
                    clips[index] = clip
        return clips  # type: ignore[return-value]

    def _encode_up_front(self, rows: Sequence[PlanRow]) -> None:
        """Encode every text of the shard once, before any batch: the encoder groups texts of equal token
        lengths, and the groups are largest when it sees all of them at once (a batch's texts alone make
        groups of one or two). Skipped when the texts would not fit the cache (the batches encode them)."""
        texts = list(dict.fromkeys(t for row in rows for t in (row.prompt, row.negative_prompt)))
        if len(texts) <= self.encoder.cache_size:
            self.encoder.encode_many(texts)

    def _generate_same_length(self, rows: list[PlanRow], duration: float) -> list[GeneratedClip]:
        """Takes flow through one queue per start step: a clip whose attempt the gate rejects puts its next
        attempt's takes at the end of its queue, so retries fill the same full batches as first takes and
        only a queue's last batch is padded. A clip that is done (passed, or out of retries) goes to the
        post-processing pool at once, which works while the next batches render."""
        gen = self.generation
        states = [_ClipState(row) for row in rows]
        queues: dict[int, deque[_Take]] = {}  # by the scheduler step the take starts at
        outstanding = [0] * len(rows)  # takes of the clip's current attempt not offered yet
        finished: dict[int, Future] = {}
        inflight: deque = deque()  # rendered batches whose species scores are still being computed

        def start_attempt(i: int) -> None:
            state = states[i]  # a retry starts over: only its own takes compete
            state.audio, state.seed, state.score, state.species = None, None, float("-inf"), None
            queue = queues.setdefault(start_step(rows[i], gen.num_inference_steps), deque())
            seed = attempt_seed(rows[i].seed, state.round)
            queue.extend(_Take(i, take_seed(seed, j)) for j in range(gen.candidates_per_clip))
            outstanding[i] = gen.candidates_per_clip

        def offer(entry) -> None:
            """A rendered batch's takes compete for their clips; a clip whose attempt is complete is judged."""
            batch = entry[0]
            self._offer(states, *entry)
            done = []
            for take in batch:
                outstanding[take.clip] -= 1
                if not outstanding[take.clip]:
                    done.append(take.clip)
            with self._stage("scoring"):
                for i in done:
                    self._judge(states[i])
                    if states[i].reasons and states[i].round < gen.quality.max_retries:
                        states[i].round += 1
                        start_attempt(i)
                    else:
                        finished[i] = self._postprocess_pool.submit(self._postprocess, states[i].audio, duration)

        for i in range(len(rows)):
            start_attempt(i)
        while any(queues.values()) or inflight:
            if any(queues.values()):
                batch, audio, spent = self._render_next(queues, rows, duration)
                finite = np.isfinite(audio).all(axis=1)
                clean = np.where(finite[:, None], audio, 0.0)
                # species on CPU threads first, so they run while CLAP and the next batch use the GPU
                species = None
                if self.verifier is not None:
                    species = self.verifier.submit(clean, [rows[t.clip].label for t in batch], self.source_rate)
                inflight.append((batch, audio, spent, self._scores(batch, rows, clean, finite), species))
                if self.on_batch is not None:  # progress: first takes only, retries make no new clips
                    first_takes = sum(1 for take in batch if states[take.clip].round == 0)
                    self.on_batch(first_takes / gen.candidates_per_clip)
                while inflight and (inflight[0][4] is None or inflight[0][4].done()):
                    offer(inflight.popleft())
            else:  # nothing left to render until the verifier's scores decide the retries
                with self._stage("species_wait"):  # the GPU idles here: the verifier fell behind
                    entry = inflight.popleft()
                    if entry[4] is not None:
                        entry[4].result()
                offer(entry)

        with self._stage("postprocess"):  # only what the pool has not finished while later batches rendered
            audios = [finished[i].result() for i in range(len(states))]
        return [
            GeneratedClip(
                clip_id=state.row.clip_id,
                audio=audio,
                sample_rate=gen.output_sample_rate,
                source_sample_rate=self.source_rate,
                bandwidth_hz=min(self.source_rate, gen.output_sample_rate) / 2,  # the stored audio's band
                final_seed=int(state.seed),
                attempts=state.attempts,
                verdict=verdict(state.reasons),
                metrics=state.metrics,
                reference_sha256=self.references.sha256(state.row),
                species_top1=state.species.species_top1 if state.species is not None else "",
                embedding=state.species.embedding if state.species is not None else None,
                verifier=self.verifier.verifier if self.verifier is not None else "",
            )
            for state, audio in zip(states, audios)
        ]

    def _judge(self, state: _ClipState) -> None:
        """The quality gate on a clip's kept take: its metrics and the reasons to reject it."""
        gen = self.generation
        clap_score = state.score if self.scores_takes else None
        state.metrics = {**measure(state.audio, self.source_rate, gen.quality), "clap_score": clap_score}
        if state.species is not None:
            state.metrics["species_confidence"] = state.species.species_confidence
            state.metrics["species_top1_confidence"] = state.species.species_top1_confidence
        state.reasons = judge(state.metrics, clap_score, gen.quality)

    def _scores(self, batch: list[_Take], rows: list[PlanRow], clean: np.ndarray, finite: np.ndarray) -> list[float]:
        """Each take's CLAP similarity to its own prompt; -inf for all when scoring has no use (one take each,
        so nothing is ranked by it) and for takes without a usable score."""
        if not self.scores_takes:
            return [float("-inf")] * len(batch)
        scores = self.scorer.score([rows[t.clip].prompt for t in batch], list(clean), self.source_rate)
        # no usable score (non-finite audio, or a NaN from an fp16 CLAP overflow) ranks below every
        # real one: a NaN would otherwise win or lose every comparison whatever the other scores
        return [score if ok and math.isfinite(score) else float("-inf") for score, ok in zip(scores, finite)]

    def _offer(self, states: list[_ClipState], batch, audio, spent, scores, species) -> None:
        """Each take of a rendered batch competes for its clip's place (ties keep the earlier take)."""
        verified = species.result() if species is not None else [None] * len(batch)
        for take, take_audio, take_spent, score, take_species in zip(batch, audio, spent, scores, verified):
            state = states[take.clip]
            state.attempts += int(take_spent)
            key = rank_key(self.generation.rank_by, score, take_species)
            if state.audio is None or key > state.rank:
                state.seed, state.audio, state.score, state.rank = take.seed, take_audio.copy(), score, key
                state.species = take_species

    def _postprocess(self, raw: np.ndarray, duration: float) -> np.ndarray:
        gen = self.generation
        return to_output(raw, self.source_rate, gen.output_sample_rate, duration, gen.peak_dbfs)

    def _render_next(
        self, queues: dict[int, deque[_Take]], rows: list[PlanRow], duration: float
    ) -> tuple[list[_Take], np.ndarray, np.ndarray]:
        """(takes, raw audio, generations spent per take) of the next batch, taken from the queues.

        Takes are batched with takes that start at the same scheduler step (text-only rows at 0,
        reference rows at steps - round(strength x steps)), in their order otherwise: a full batch from
        the earliest start step that has one, else the earliest start step's remainder. Batches always
        hold batch_size items (a short one is padded by repeating its last take, whose output is
        dropped), so the UNet sees one shape per duration.
        """
        size = self.batch_size
        waiting = sorted(step for step, queue in queues.items() if queue)
        first_step = next((step for step in waiting if len(queues[step]) >= size), waiting[0])
        queue = queues[first_step]
        batch = [queue.popleft() for _ in range(min(size, len(queue)))]
        padded = batch + [batch[-1]] * (size - len(batch))
        audio, spent = self._render_batch(
            [rows[t.clip] for t in padded], [t.seed for t in padded], first_step, duration
        )
        return batch, audio[: len(batch)], spent[: len(batch)]

    def _render_batch(
        self, rows: list[PlanRow], seeds: list[int], first_step: int, duration: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw audio (batch, samples) with only finite samples; reruns clips that came out NaN/inf."""
        audio = self._synthesize(rows, seeds, first_step, duration)
        spent = np.ones(len(seeds), dtype=np.int64)
        # Once more as is (a transient fault), then in fp32 when running fp16 (overflow). Only the
        # bad clips are rerun (an fp32 rerun of a whole batch needs twice the activation memory),
        # and eagerly: a compiled UNet must not recompile for a rerun's batch size or dtype.
        reruns = [self.pipe.dtype] + ([torch.float32] if self.pipe.dtype != torch.float32 else [])
        for dtype in reruns:
            bad = np.flatnonzero(~np.isfinite(audio).all(axis=1))
            if not bad.size:
                return audio, spent
            logger.warning("non-finite audio for seeds %s; rerunning them in %s", [seeds[i] for i in bad], dtype)
            with _eager():
                audio[bad] = self._synthesize(
                    [rows[i] for i in bad], [seeds[i] for i in bad], first_step, duration, dtype=dtype
                )
            spent[bad] += 1
        bad = ~np.isfinite(audio).all(axis=1)
        if bad.any():
            # Left non-finite: the quality gate rejects these takes ("nonfinite") and the clip is
            # redone with a derived seed; the rest of the batch (and the shard) goes on.
            logger.error(
                "model %s kept producing NaN/inf audio for seeds %s",
                self.model_id,
                [s for s, b in zip(seeds, bad) if b],
            )
        return audio, spent

    def _synthesize(
        self, rows: list[PlanRow], seeds: list[int], first_step: int, duration: float, dtype=None
    ) -> np.ndarray:
        """One batch through the UNet loop, VAE and vocoder: float32 audio (batch, samples)."""
        pipe, gen = self.pipe, self.generation
        native = pipe.dtype
        with weights_in(pipe, dtype) if dtype is not None and dtype != native else nullcontext():
            # the fp32 rerun encodes afresh: a NaN may have come from the fp16 text encoders themselves
            conditioning = self.encoder.batch(
                [r.prompt for r in rows], [r.negative_prompt for r in rows], cached=pipe.dtype == native
            )
            height = latent_height(pipe, duration)
            with self._stage("vae"):  # reference encodings (cached per dtype: a rerun's are its own)
                references = [self.references.latents(r, height) for r in rows]
            # CPU generators: the starting noise of a seed is the same on every device
            generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
            batch = DenoiseBatch(conditioning, generators, height, first_step, references)
            with self._stage("unet"):
                latents = denoise(pipe, batch, gen.num_inference_steps, gen.guidance_scale)
            with self._stage("vae"):
                mel = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
            with self._stage("vocoder"):
                waveform = pipe.mel_spectrogram_to_waveform(mel)  # float32 on the CPU
        # the pipeline's own cut: the latent grid is rounded up to whole VAE blocks
        return waveform[:, : int(duration * self.source_rate)].numpy()


def _eager():
    """Run a compiled UNet without compiling (torch >= 2.6); plain eager modules are unaffected."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    return set_stance("force_eager") if set_stance is not None else nullcontext()
