"""AudioLDM2 as a renderer (generate/renderer.py): diffusers' pipeline, with the engine's own loop.

A batch renders as diffusers' AudioLDM2Pipeline.__call__ does, in its numbered steps:
  1. conditioning: per-text encodings from the cache (generate/encode.py), stacked for the batch;
  2. timesteps: one scheduler per distinct start step of the batch (generate/denoise.py);
  3. starting latents: each row's noise from its own CPU generator, or its reference recording's
     VAE encoding (generate/references.py) noised to its start step;
  4. the denoising loop, every row on its own trajectory;
  5. VAE decode to a mel spectrogram;
  6. the vocoder to a 16 kHz waveform, cut to the clip's length.
Loading picks the device-fitting batch size, compile and cuDNN autotune (generate/batch_size.py).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from birdgen_ray.config import EngineConfig, GenerationConfig
from birdgen_ray.generate import denoise as loop
from birdgen_ray.generate.batch_size import fitted_choices
from birdgen_ray.generate.encode import PromptEncoder
from birdgen_ray.generate.model import load_pipeline
from birdgen_ray.generate.ranking import ClapScorer
from birdgen_ray.generate.references import ReferenceLatents
from birdgen_ray.generate.renderer import EngineCounts, ReferenceWindow, RenderRow, StageTimer, StartLatents
from birdgen_ray.generate.weights import weights_in

STAGES = ("text_encoding", "gpt2", "unet", "vae", "vocoder")


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


class AudioLDM2Renderer:
    family = "audioldm2"
    stages = STAGES

    def __init__(
        self,
        generation: GenerationConfig,
        engine: EngineConfig,
        stage: StageTimer,
        storage_options: dict[str, Any] | None = None,
    ):
        self.generation = generation
        self.stage = stage
        self.pipe, self.model_id = load_pipeline(generation.model, engine.device)
        self.pipe.scheduler = make_scheduler(generation.scheduler, self.pipe.scheduler.config)
        self.device = self.pipe._execution_device
        self.sample_rate = int(self.pipe.vocoder.config.sampling_rate)
        self.bandwidth_hz = self.sample_rate / 2
        self.counts = EngineCounts()
        self.encoder = PromptEncoder(self.pipe, stage, counts=self.counts)
        self.choices = fitted_choices(self.pipe, self.pipe.unet, self.device, engine)
        self.scorer = ClapScorer(self.pipe, stage, self.encoder, batch_size=self.choices["batch_size"].value)
        self.references = ReferenceLatents(self.pipe, storage_options)  # fsspec options of the run
        if self.choices["compile_unet"].value:
            self.pipe.unet.compile()  # fixed batch shapes: compiles once per clip duration
        if self.choices["cudnn_benchmark"].value:
            torch.backends.cudnn.benchmark = True
        self._cached = True  # False while rendering in a precision other than the loaded one

    def start_step(self, strength: float | None, steps: int) -> int:
        """Steps a reference row skips: steps - round(strength x steps); none for text-only rows.
        PLMS (pndm) cannot start part-way: its warm-up repeats a timestep, so skipping entries puts the
        sample and the timestep out of step (the CLI refuses --scheduler pndm with references)."""
        if strength is None:
            return 0
        if self.generation.scheduler == "pndm":
            raise ValueError("--scheduler pndm cannot start from a reference (strength); use dpm, ddim or unipc")
        return steps - loop.steps_to_run(float(strength), steps)

    def encode(self, texts: Sequence[str]) -> None:
        texts = list(dict.fromkeys(texts))
        if len(texts) <= self.encoder.cache_size:  # else the batches encode them as they come
            self.encoder.encode_many(texts)

    def prepare(self, rows: Sequence[RenderRow], duration_s: float, real_rows: int) -> StartLatents:
        pipe = self.pipe
        # 1. Conditioning (a rerun in another precision encodes afresh: a NaN may have come from the encoders)
        conditioning = self.encoder.batch(
            [r.prompt for r in rows], [r.negative_prompt for r in rows], cached=self._cached
        )
        # 2. Timesteps, one scheduler per distinct start step
        paths = loop.trajectories(pipe, [r.start_step for r in rows], self.generation.num_inference_steps)
        # 3. Starting latents (CPU generators: the starting noise of a seed is the same on every device)
        height = loop.latent_height(pipe, duration_s)
        with self.stage("vae"):  # reference encodings (cached per dtype: a rerun's are its own)
            references = [self.references.latents(r.reference, height) for r in rows]
        generators = [torch.Generator().manual_seed(int(r.seed)) for r in rows]
        prepared = loop.prepare(pipe, generators, height, references, paths, conditioning["prompt_embeds"].dtype)
        state = {"prepared": prepared, "conditioning": conditioning}
        return StartLatents(tuple(rows), duration_s, prepared.latents, real_rows, state)

    def denoise(self, start: StartLatents) -> torch.Tensor:
        # 4. The denoising loop
        with self.stage("unet"):
            latents, unet_rows, padded_rows = loop.denoise(
                self.pipe,
                start.state["prepared"],
                start.state["conditioning"],
                self.generation.guidance_scale,
                start.real_rows,
            )
        self.counts.add({"unet_rows": unet_rows, "padded_rows": padded_rows})
        return latents

    def decode(self, latents: torch.Tensor, duration_s: float) -> np.ndarray:
        pipe = self.pipe
        # 5. VAE decode
        with self.stage("vae"):
            mel = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
        # 6. Vocoder (float32 on the CPU); the pipeline's own cut: the grid is rounded up to whole VAE blocks
        with self.stage("vocoder"):
            waveform = pipe.mel_spectrogram_to_waveform(mel)
        return waveform[:, : int(duration_s * self.sample_rate)].numpy()

    def rerun_precisions(self) -> list[torch.dtype]:
        """Once more as loaded (a transient fault), then in fp32 when loaded in fp16 (an overflow)."""
        return [self.pipe.dtype] + ([torch.float32] if self.pipe.dtype != torch.float32 else [])

    @contextmanager
    def in_precision(self, precision: torch.dtype) -> Iterator[None]:
        if precision == self.pipe.dtype:
            yield
            return
        with weights_in(self.pipe, precision) if precision is not None else nullcontext():
            self._cached = False
            try:
                yield
            finally:
                self._cached = True

    def reference_sha256(self, reference: ReferenceWindow | None) -> str | None:
        return self.references.recording(reference.uri).sha256 if reference is not None else None
