"""AudioLDM2's reverse diffusion, owned by the engine so that it can start part-way (SDEdit).

diffusers' AudioLDM2Pipeline.__call__ always starts from pure noise and has no `strength` or
init-audio argument. `denoise` is that `__call__` from the encoded prompts to the final latents,
step for step and op for op (a text-only row gets the very bits diffusers gives it), plus one
thing: rows may start from a reference recording's latents, noised to the batch's start step.

Every row of one call shares `start_step` (the engine groups rows by it), so one scheduler state
serves the batch. A row's reference latents are the VAE posterior's mean (not a sample): the
encoding is then a function of the recording window alone, and the row's generator draws exactly
the noise a text-only row with the same seed draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

POSTERIOR = "mean"  # how a reference is encoded: latent_dist.mode(), recorded in docs/using-results.md


def steps_to_run(strength: float | None, num_inference_steps: int) -> int:
    """UNet steps a row runs: all of them without a reference, else round(strength x steps) (halves up)."""
    if strength is None:
        return num_inference_steps
    return min(num_inference_steps, max(0, math.floor(strength * num_inference_steps + 0.5)))


def latent_height(pipe, duration_s: float) -> int:
    """Mel frames of the latent grid for `duration_s`, rounded up to whole VAE blocks (the pipeline's step 0)."""
    vocoder_upsample_factor = np.prod(pipe.vocoder.config.upsample_rates) / pipe.vocoder.config.sampling_rate
    height = int(duration_s / vocoder_upsample_factor)
    if height % pipe.vae_scale_factor != 0:
        height = int(np.ceil(height / pipe.vae_scale_factor)) * pipe.vae_scale_factor
    return height


@dataclass
class DenoiseBatch:
    conditioning: dict[str, torch.Tensor]  # PromptEncoder.batch(): per-row prompt and negative encodings
    generators: list[torch.Generator]  # one per row, seeded from the row
    height: int  # latent_height(duration)
    start_step: int  # scheduler steps skipped: 0 for text-only rows and strength 1
    references: Sequence[torch.Tensor | None]  # per row: scaled reference latents (1, C, h, w), or None


def denoise(pipe, batch: DenoiseBatch, num_inference_steps: int, guidance_scale: float) -> torch.Tensor:
    """Final latents (batch, C, h, w), still scaled by vae.config.scaling_factor."""
    device = pipe._execution_device
    rows = len(batch.generators)
    do_classifier_free_guidance = guidance_scale > 1.0

    # 1. Conditioning: [negatives; prompts] as diffusers' encode_prompt lays out pre-computed embeddings
    prompt_embeds, attention_mask, generated_prompt_embeds = pipe.encode_prompt(
        None, device, 1, do_classifier_free_guidance, **batch.conditioning
    )

    # 2. Timesteps: the whole schedule, from which the first `start_step` steps are skipped
    scheduler = pipe.scheduler
    scheduler.set_timesteps(num_inference_steps, device=device)
    skipped = batch.start_step * scheduler.order
    timesteps = scheduler.timesteps[skipped:]
    if skipped and hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(skipped)

    # 3. Starting latents: the row's noise (its generator's first draw, as diffusers' prepare_latents);
    #    a reference row's encoding noised to the first remaining timestep, or left clean when none remain
    from diffusers.utils.torch_utils import randn_tensor

    shape = (rows, pipe.unet.config.in_channels, batch.height // pipe.vae_scale_factor)
    shape += (int(pipe.vocoder.config.model_in_dim) // pipe.vae_scale_factor,)
    noise = randn_tensor(shape, generator=batch.generators, device=device, dtype=prompt_embeds.dtype)
    latents = noise * scheduler.init_noise_sigma
    with_reference = [i for i, ref in enumerate(batch.references) if ref is not None]
    if with_reference:
        clean = torch.cat([batch.references[i] for i in with_reference]).to(device=device, dtype=latents.dtype)
        if len(timesteps):
            first = timesteps[:1].repeat(len(with_reference))
            clean = scheduler.add_noise(clean, noise[with_reference], first)
        latents[with_reference] = clean

    # 4. Extra step arguments (eta for DDIM, the generators for stochastic schedulers)
    extra_step_kwargs = pipe.prepare_extra_step_kwargs(batch.generators, 0.0)

    # 5. Denoising loop over the remaining timesteps
    for t in timesteps:
        latent_model_input = torch.cat([latents] * 2) if do_classifier_free_guidance else latents
        latent_model_input = scheduler.scale_model_input(latent_model_input, t)
        noise_pred = pipe.unet(
            latent_model_input,
            t,
            encoder_hidden_states=generated_prompt_embeds,
            encoder_hidden_states_1=prompt_embeds,
            encoder_attention_mask_1=attention_mask,
            return_dict=False,
        )[0]
        if do_classifier_free_guidance:
            noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
            noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
        latents = scheduler.step(noise_pred, t, latents, **extra_step_kwargs).prev_sample
    return latents
