"""AudioLDM2 inside one actor: plan rows in, finished clips out.

For each group of rows with the same duration (one tensor shape):
  1. every clip gets `candidates_per_clip` takes, each with its own torch.Generator seeded from the
     row (take 0 uses the row seed), rendered in fixed-size batches from per-prompt encodings, so a
     clip's audio never depends on its batch-mates;
  2. each take is scored with CLAP against its own prompt only; the best take of each clip is kept;
  3. the quality gate measures the kept take's raw audio; a rejected clip is redone with a derived
     seed, up to `quality.max_retries` times, and is kept with a "fail:..." verdict after that;
  4. the kept audio is resampled to the output rate, fitted to the exact length and peak-normalised.
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
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from birdgen_ray.config import EngineConfig, GenerationConfig
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


def _named_tensors(pipe) -> Iterator[tuple[str, torch.nn.Module, str, torch.Tensor, bool]]:
    """(qualified name, owning module, attribute, tensor, is_parameter) for every weight and buffer."""
    for component, module in pipe.components.items():
        if not isinstance(module, torch.nn.Module):
            continue
        for prefix, owner in module.named_modules():
            for is_parameter, tensors in ((True, owner._parameters), (False, owner._buffers)):
                for attribute, tensor in tensors.items():
                    if tensor is not None:
                        yield f"{component}.{prefix}.{attribute}", owner, attribute, tensor, is_parameter


@contextmanager
def _weights_in(pipe, dtype: torch.dtype) -> Iterator[None]:
    """Run the block with the pipeline cast to `dtype`, then give every tensor back the dtype it had.

    Not `pipe.to(dtype=native)` afterwards: from_pretrained(dtype=fp16) keeps some weights in fp32
    (transformers' _keep_in_fp32_modules: Flan-T5's `wo`, which overflows in fp16), and a blanket
    cast back would leave them fp16 for the rest of the actor's life.
    """
    loaded = {name: tensor.dtype for name, _, _, tensor, _ in _named_tensors(pipe)}
    try:
        pipe.to(dtype=dtype)
        yield
    finally:  # also after an out-of-memory error halfway through the cast
        for name, owner, attribute, tensor, is_parameter in list(_named_tensors(pipe)):
            if tensor.dtype != loaded[name]:
                if is_parameter:
                    tensor.data = tensor.data.to(loaded[name])
                else:
                    owner._buffers[attribute] = tensor.to(loaded[name])


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
    score: float = float("-inf")  # its CLAP similarity to the row's prompt
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
        self.scorer = ClapScorer(self.pipe, self._stage, self.encoder, batch_size=engine.batch_size)
        self.references = ReferenceLatents(self.pipe, storage_options)  # fsspec options of the run
        self.batch_size = engine.batch_size
        if engine.compile_unet:
            self.pipe.unet.compile()  # fixed batch shapes: compiles once per clip duration
        self._postprocess_pool = ThreadPoolExecutor(max_workers=max(1, engine.postprocess_threads))
        self.verifier = None
        if generation.verifier == "birdnet":
            threads = engine.verifier_threads_for(gpu=self.device.type == "cuda")
            self.verifier = SpeciesVerifier(generation, threads, engine.verifier_batch_size)

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

    def generate(self, rows: Sequence[PlanRow]) -> list[GeneratedClip]:
        clips: list[GeneratedClip | None] = [None] * len(rows)
        by_duration: dict[float, list[int]] = {}
        for index, row in enumerate(rows):
            by_duration.setdefault(float(row.duration_s), []).append(index)
        with torch.no_grad():
            for duration, indices in by_duration.items():
                group = self._generate_same_length([rows[i] for i in indices], duration)
                for index, clip in zip(indices, group):
                    clips[index] = clip
        return clips  # type: ignore[return-value]

    def _generate_same_length(self, rows: list[PlanRow], duration: float) -> list[GeneratedClip]:
        gen = self.generation
        states = [_ClipState(row) for row in rows]
        pending = list(range(len(rows)))
        for attempt in range(gen.quality.max_retries + 1):
            for state in (states[i] for i in pending):  # a retry starts over: only its own takes compete
                state.audio, state.seed, state.score, state.species = None, None, float("-inf"), None
            takes = [
                _Take(i, take_seed(attempt_seed(rows[i].seed, attempt), take))
                for i in pending
                for take in range(gen.candidates_per_clip)
            ]
            inflight: deque = deque()  # batches whose species scores are still being computed
            for batch, audio, spent in self._render(takes, rows, duration):
                finite = np.isfinite(audio).all(axis=1)
                clean = np.where(finite[:, None], audio, 0.0)
                # species on CPU threads first, so they run while CLAP and the next batch use the GPU
                species = None
                if self.verifier is not None:
                    species = self.verifier.submit(clean, [rows[t.clip].label for t in batch], self.source_rate)
                scores = self.scorer.score([rows[t.clip].prompt for t in batch], list(clean), self.source_rate)
                # no usable score (non-finite audio, or a NaN from an fp16 CLAP overflow) ranks below every
                # real one: a NaN would otherwise win or lose every comparison whatever the other scores
                scores = [score if ok and math.isfinite(score) else float("-inf") for score, ok in zip(scores, finite)]
                inflight.append((batch, audio, spent, scores, species))
                if self.on_batch is not None and attempt == 0:
                    self.on_batch(len(batch) / gen.candidates_per_clip)
                while inflight and (inflight[0][4] is None or inflight[0][4].done()):
                    self._offer(states, *inflight.popleft())
            with self._stage("species_wait"):  # the GPU idles here: the verifier fell behind
                while inflight:
                    self._offer(states, *inflight.popleft())
            with self._stage("scoring"):
                for state in (states[i] for i in pending):
                    state.metrics = {**measure(state.audio, self.source_rate, gen.quality), "clap_score": state.score}
                    if state.species is not None:
                        state.metrics["species_confidence"] = state.species.species_confidence
                        state.metrics["species_top1_confidence"] = state.species.species_top1_confidence
                    state.reasons = judge(state.metrics, state.score, gen.quality)
            pending = [i for i in pending if states[i].reasons]
            if not pending:
                break

        with self._stage("postprocess"):
            raw = [state.audio for state in states]
            audios = list(self._postprocess_pool.map(self._postprocess, raw, [duration] * len(states)))
        return [
            GeneratedClip(
                clip_id=state.row.clip_id,
                audio=audio,
                sample_rate=gen.output_sample_rate,
                source_sample_rate=self.source_rate,
                bandwidth_hz=self.source_rate / 2,
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

    def _render(
        self, takes: list[_Take], rows: list[PlanRow], duration: float
    ) -> Iterator[tuple[list[_Take], np.ndarray, np.ndarray]]:
        """Yield (takes, raw audio, generations spent per take) batch by batch.

        Takes are batched with takes that start at the same scheduler step (text-only rows at 0,
        reference rows at steps - round(strength x steps)), in their order otherwise. Batches always
        hold batch_size items (the last is padded by repeating its last take, whose output is
        dropped), so the UNet sees one shape per duration.
        """
        size, steps = self.batch_size, self.generation.num_inference_steps
        by_start: dict[int, list[_Take]] = {}
        for take in takes:
            by_start.setdefault(start_step(rows[take.clip], steps), []).append(take)
        for first_step, group in sorted(by_start.items()):
            for start in range(0, len(group), size):
                batch = group[start : start + size]
                padded = batch + [batch[-1]] * (size - len(batch))
                audio, spent = self._render_batch(
                    [rows[t.clip] for t in padded], [t.seed for t in padded], first_step, duration
                )
                yield batch, audio[: len(batch)], spent[: len(batch)]

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
        with _weights_in(pipe, dtype) if dtype is not None and dtype != native else nullcontext():
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
