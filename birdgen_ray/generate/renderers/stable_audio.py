"""Stable Audio Open as a renderer (generate/renderer.py): 44.1 kHz, band to 22.05 kHz, mono out.

diffusers' StableAudioPipeline.__call__, step for step, split into the renderer's parts:
  1. encode: T5 states padded to the tokenizer's 128 tokens (as diffusers pads), projected and zeroed
     past each text's mask; cached per text, so a text's conditioning never depends on its batch-mates;
  2. prepare: each row's noise from its own CPU generator (first draw) times the scheduler's initial
     sigma; a reference row starts from its window's VAE encoding (posterior mean) noised to the sigma
     of its start step (SDEdit: strength s runs round(s x steps) of the steps);
  3. denoise: the DiT with classifier-free guidance and the cosine DPM-Solver++ (SDE) scheduler. Rows
     that start at the same step share one scheduler state; every started row goes through each DiT
     call (all rows at one step share its timestep). The scheduler's Brownian noise is seeded per row
     from the row's generator, as diffusers seeds it;
  4. decode: the Oobleck VAE gives 44.1 kHz stereo, cut to the clip and downmixed to mono as the mean
     of the two channels (no channel is favoured, and a centred source keeps its level).
One difference from the pipeline, for speed: the latent window covers the clip (rounded up to whole
latent frames) where diffusers renders the model's whole 47.55 s window and cuts it afterwards. The
rotary positions and the seconds_total conditioning follow the window, so a clip as long as the
window is diffusers' clip (tests/test_stable_audio.py). diffusers' own audio-to-audio
(`initial_audio_waveforms`) adds the encoding to noise at sigma_max: that is strength 1 here.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Sequence

import numpy as np
import torch

from birdgen_ray.config import EngineConfig, GenerationConfig
from birdgen_ray.generate.batch_size import STABLE_AUDIO_ACTIVATION_MIB, fitted_choices
from birdgen_ray.generate.denoise import steps_to_run
from birdgen_ray.generate.model import load_pipeline, pipeline_family
from birdgen_ray.generate.renderer import EngineCounts, RenderRow, StageTimer, StartLatents
from birdgen_ray.generate.renderers.stable_audio_references import StableAudioReferences
from birdgen_ray.generate.weights import weights_in

FAMILY = "stable-audio-open"


def refuse_clap(generation: GenerationConfig) -> None:
    """Stable Audio has no CLAP model: the settings that need one get one line naming their flag."""
    if generation.quality.min_clap_score is not None:
        raise ValueError("--min-clap needs a CLAP model, which Stable Audio Open has not (use --min-species)")
    if generation.candidates_per_clip > 1 and generation.rank_by == "clap":
        raise ValueError("--candidates with --rank-by clap needs CLAP; with Stable Audio Open use --rank-by species")


class StableAudioRenderer:
    """One Stable Audio pipeline per actor; batches of rows that share a duration."""

    family = FAMILY
    stages = ("text_encoding", "transformer", "vae")
    scorer = None  # no CLAP: candidates are ranked by species, and the gate has no CLAP threshold

    def __init__(
        self,
        generation: GenerationConfig,
        engine: EngineConfig,
        stage: StageTimer,
        storage_options: dict[str, Any] | None = None,
        pipe=None,
        model_id: str | None = None,
    ):
        refuse_clap(generation)
        if pipe is None:
            pipe, model_id = load_pipeline(generation.model, engine.device)
        if pipeline_family(pipe) != FAMILY:
            raise ValueError(f"model {generation.model!r} is not a Stable Audio Open snapshot")
        self.pipe, self.model_id, self.generation = pipe, str(model_id), generation
        self._stage = stage
        self.device = pipe._execution_device
        self.sample_rate = int(pipe.vae.config.sampling_rate)  # 44100
        self.bandwidth_hz = self.sample_rate / 2  # the VAE decodes the full band, up to Nyquist
        self.hop = int(np.prod(pipe.vae.config.downsampling_ratios))
        self.max_duration_s = pipe.transformer.config.sample_size * self.hop / self.sample_rate
        self.counts = EngineCounts()
        self.references = StableAudioReferences(pipe, storage_options)
        self._texts: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.cache_size = 4096
        self.choices = fitted_choices(pipe, pipe.transformer, self.device, engine, STABLE_AUDIO_ACTIVATION_MIB)
        if self.choices["compile_unet"].value:
            self.pipe.transformer.compile()
        if self.choices["cudnn_benchmark"].value:
            torch.backends.cudnn.benchmark = True

    def start_step(self, strength: float | None, steps: int) -> int:
        return 0 if strength is None else steps - steps_to_run(float(strength), steps)

    # 1. texts -------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], chunk: int = 64) -> None:
        """Projected, masked T5 states (1, 128, D) of every text not cached yet, `chunk` texts a call."""
        pipe = self.pipe
        missing = list(dict.fromkeys(t for t in texts if self._key(t) not in self._texts))
        with self._stage("text_encoding"):
            for start in range(0, len(missing), chunk):
                part = missing[start : start + chunk]
                tokens = pipe.tokenizer(
                    part, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True,
                    return_tensors="pt",
                )  # fmt: skip
                mask = tokens.attention_mask.to(self.device)
                states = pipe.text_encoder(tokens.input_ids.to(self.device), attention_mask=mask)[0]
                # diffusers zeroes a negative text's masked states before the projection and every text's
                # after it; after the projection both come to the same, so one encoding serves either role
                projected = pipe.projection_model(text_hidden_states=states).text_hidden_states
                projected = projected * mask.unsqueeze(-1).to(projected.dtype)
                self.counts.encoder_calls += 1
                for i, text in enumerate(part):
                    self._texts[self._key(text)] = projected[i : i + 1].clone()  # not a view of the chunk
        while len(self._texts) > self.cache_size:
            self._texts.popitem(last=False)

    def _key(self, text: str) -> tuple:
        return (text, self.pipe.text_encoder.dtype)

    def _states(self, texts: Sequence[str]) -> torch.Tensor:
        self.encode(texts)
        return torch.cat([self._texts[self._key(t)] for t in texts])

    def _conditioning(self, rows: Sequence[RenderRow], duration_s: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-attention states, global states) per row; with guidance [negatives; prompts], as diffusers."""
        prompts = self._states([r.prompt for r in rows])
        seconds = self.pipe.projection_model(
            start_seconds=torch.zeros(len(rows), device=self.device),
            end_seconds=torch.full((len(rows),), float(duration_s), device=self.device),
        )
        start, end = seconds.seconds_start_hidden_states, seconds.seconds_end_hidden_states
        if self.generation.guidance_scale > 1.0:
            prompts = torch.cat([self._states([r.negative_prompt for r in rows]), prompts])
            start, end = torch.cat([start, start]), torch.cat([end, end])
        return torch.cat([prompts, start, end], dim=1), torch.cat([start, end], dim=2)

    # 2. starting latents --------------------------------------------------------------------------
    def latent_frames(self, duration_s: float) -> int:
        if duration_s > self.max_duration_s + 1e-9:
            raise ValueError(f"a {duration_s} s clip is longer than the model's {self.max_duration_s:.2f} s window")
        return math.ceil(duration_s * self.sample_rate / self.hop - 1e-6)  # a whole window stays whole

    def prepare(self, rows: Sequence[RenderRow], duration_s: float, real_rows: int) -> StartLatents:
        from diffusers.utils.torch_utils import randn_tensor

        pipe, steps = self.pipe, self.generation.num_inference_steps
        dtype = pipe.transformer.dtype
        generators = [torch.Generator().manual_seed(int(row.seed)) for row in rows]
        shape = (len(rows), pipe.transformer.config.in_channels, self.latent_frames(duration_s))
        noise = randn_tensor(shape, generator=generators, device=self.device, dtype=dtype)
        latents = noise * pipe.scheduler.init_noise_sigma
        schedulers = {}  # per start step: its own scheduler state (multistep history, Brownian noise)
        for start_step in sorted({row.start_step for row in rows}):
            scheduler = copy.deepcopy(pipe.scheduler)
            scheduler.set_timesteps(steps, device=self.device)
            scheduler.set_begin_index(start_step)
            schedulers[start_step] = scheduler
        for i, row in enumerate(rows):
            if row.reference is None:
                continue
            with self._stage("vae"):
                clean = self.references.latents(row.reference, shape[2]).to(device=self.device, dtype=dtype)
            scheduler = schedulers[row.start_step]
            if row.start_step < steps:  # noised to its start step's sigma; left clean when no step remains
                clean = scheduler.add_noise(clean, noise[i : i + 1], scheduler.timesteps[row.start_step :][:1])
            latents[i : i + 1] = clean
        state = {"generators": generators, "schedulers": schedulers}
        return StartLatents(tuple(rows), duration_s, latents, real_rows, state)

    # 3. denoise -----------------------------------------------------------------------------------
    def denoise(self, start: StartLatents) -> torch.Tensor:
        """The pipeline's loop; at step k every row whose start step is <= k goes through the DiT call."""
        from diffusers.models.embeddings import get_1d_rotary_pos_embed

        latents, schedulers = start.latents.clone(), start.state["schedulers"]
        groups = {step: [i for i, row in enumerate(start.rows) if row.start_step == step] for step in schedulers}
        with self._stage("text_encoding"):
            conditioning = self._conditioning(start.rows, start.duration_s)
        rotary = get_1d_rotary_pos_embed(
            self.pipe.rotary_embed_dim, latents.shape[2] + conditioning[1].shape[1], use_real=True,
            repeat_interleave_real=False,
        )  # fmt: skip
        timesteps = next(iter(schedulers.values())).timesteps  # one schedule: groups differ only in their start
        with self._stage("transformer"):
            for k, t in enumerate(timesteps):
                started = [(schedulers[step], members) for step, members in groups.items() if step <= k]
                if not started:
                    continue
                prediction = self._predict(latents, t, started, conditioning, rotary, len(start.rows))
                offset = 0
                for scheduler, members in started:
                    generators = [start.state["generators"][i] for i in members]
                    part = prediction[offset : offset + len(members)]
                    latents[members] = scheduler.step(part, t, latents[members], generator=generators).prev_sample
                    offset += len(members)
                self._count([i for _, members in started for i in members], start.real_rows)
        return latents

    def _predict(self, latents, t, started, conditioning, rotary, total_rows: int) -> torch.Tensor:
        """The DiT's guided prediction for the started rows, group after group (conditioning picked to match)."""
        rows = torch.tensor([i for _, members in started for i in members], device=latents.device)
        model_input = torch.cat([scheduler.scale_model_input(latents[members], t) for scheduler, members in started])
        cross_states, global_states = conditioning
        guidance = self.generation.guidance_scale
        if guidance > 1.0:  # [negatives; prompts], as the conditioning is laid out
            model_input, rows = torch.cat([model_input] * 2), torch.cat([rows, rows + total_rows])
        prediction = self.pipe.transformer(
            model_input,
            t.unsqueeze(0),
            encoder_hidden_states=cross_states[rows],
            global_hidden_states=global_states[rows],
            rotary_embedding=rotary,
            return_dict=False,
        )[0]
        if guidance > 1.0:
            uncond, text = prediction.chunk(2)
            prediction = uncond + guidance * (text - uncond)
        return prediction

    def _count(self, active: list[int], real_rows: int) -> None:
        self.counts.unet_rows += len(active)
        self.counts.padded_rows += sum(1 for i in active if i >= real_rows)

    # 4. decode ------------------------------------------------------------------------------------
    def decode(self, latents: torch.Tensor, duration_s: float) -> np.ndarray:
        """float32 mono (rows, samples) at 44.1 kHz: the stereo decode cut to the clip, channels averaged."""
        with self._stage("vae"):
            stereo = self.pipe.vae.decode(latents).sample[:, :, : int(duration_s * self.sample_rate)]
        return stereo.float().mean(dim=1).cpu().numpy()

    # precision and provenance ----------------------------------------------------------------------
    def rerun_precisions(self) -> Sequence[torch.dtype]:
        native = self.pipe.dtype
        return [native] + ([torch.float32] if native != torch.float32 else [])

    def in_precision(self, precision: torch.dtype) -> AbstractContextManager:
        """Weights in `precision` while the block runs (text encodings are cached per dtype)."""
        return weights_in(self.pipe, precision) if precision != self.pipe.dtype else nullcontext()

    def reference_sha256(self, reference) -> str | None:
        return self.references.recording(reference.uri).sha256 if reference is not None else None
