"""AudioLDM2's reverse diffusion, owned by the engine so that rows can start part-way (SDEdit).

diffusers' AudioLDM2Pipeline.__call__ always starts from pure noise and has no `strength` or
init-audio argument. `prepare` and `denoise` are that `__call__` from the encoded prompts to the
final latents, step for step and op for op (a text-only row gets the very bits diffusers gives it),
plus one thing: rows may start from a reference recording's latents, noised to their start step.

Rows of one batch may start at different steps. Each distinct start step gets its own scheduler
(multistep solvers keep a history per trajectory), and the batch runs as many UNet calls as its
longest trajectory: a row with fewer steps is held (its UNet row is computed and dropped, counted
as padding) until the calls left equal its steps, so every row ends on the last call. The UNet
takes one timestep per row; a batch whose rows all run the same timestep passes it as one scalar,
exactly as diffusers does. The take queue sorts takes by start step, so batches hold few of them.

A row's reference latents are the VAE posterior's mean (not a sample): the encoding is then a
function of the recording window alone, and the row's generator draws exactly the noise a
text-only row with the same seed draws.
"""

from __future__ import annotations

import copy
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
class Trajectory:
    """The rows of a batch that start at one scheduler step, and the scheduler that steps them."""

    rows: list[int]  # batch rows
    scheduler: object  # a diffusers scheduler with set_timesteps done
    timesteps: torch.Tensor  # the timesteps these rows run, in order


@dataclass
class Prepared:
    latents: torch.Tensor  # (rows, C, h, w) starting latents
    trajectories: list[Trajectory]
    generators: list[torch.Generator]  # one per row, after drawing its starting noise


def trajectories(pipe, start_steps: Sequence[int], num_inference_steps: int) -> list[Trajectory]:
    """One scheduler per distinct start step (the pipeline's own when there is only one)."""
    device = pipe._execution_device
    distinct = sorted(set(start_steps))
    found = []
    for step in distinct:
        scheduler = pipe.scheduler if len(distinct) == 1 else copy.deepcopy(pipe.scheduler)
        scheduler.set_timesteps(num_inference_steps, device=device)
        skipped = step * scheduler.order
        if skipped and hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(skipped)
        rows = [i for i, s in enumerate(start_steps) if s == step]
        found.append(Trajectory(rows, scheduler, scheduler.timesteps[skipped:]))
    return found


def prepare(
    pipe,
    generators: list[torch.Generator],
    height: int,
    references: Sequence[torch.Tensor | None],
    paths: list[Trajectory],
    dtype: torch.dtype,
) -> Prepared:
    """Starting latents: each row's noise (its generator's first draw, as diffusers' prepare_latents);
    a reference row's encoding noised to its first timestep, or left clean when it runs no step."""
    from diffusers.utils.torch_utils import randn_tensor

    device = pipe._execution_device
    shape = (len(generators), pipe.unet.config.in_channels, height // pipe.vae_scale_factor)
    shape += (int(pipe.vocoder.config.model_in_dim) // pipe.vae_scale_factor,)
    noise = randn_tensor(shape, generator=generators, device=device, dtype=dtype)
    latents = noise * pipe.scheduler.init_noise_sigma
    for path in paths:
        with_reference = [i for i in path.rows if references[i] is not None]
        if not with_reference:
            continue
        clean = torch.cat([references[i] for i in with_reference]).to(device=device, dtype=latents.dtype)
        if len(path.timesteps):
            first = path.timesteps[:1].repeat(len(with_reference))
            clean = path.scheduler.add_noise(clean, noise[with_reference], first)
        latents[with_reference] = clean
    return Prepared(latents, paths, generators)


def denoise(
    pipe, prepared: Prepared, conditioning: dict, guidance_scale: float, real_rows: int
) -> tuple[torch.Tensor, int, int]:
    """(final latents (batch, C, h, w), still scaled by vae.config.scaling_factor; UNet rows run; of them,
    padding: rows held before their start, and every row of rows[real_rows:])."""
    device = pipe._execution_device
    latents = prepared.latents
    rows = latents.shape[0]
    do_classifier_free_guidance = guidance_scale > 1.0

    # 1. Conditioning: [negatives; prompts] as diffusers' encode_prompt lays out pre-computed embeddings
    prompt_embeds, attention_mask, generated_prompt_embeds = pipe.encode_prompt(
        None, device, 1, do_classifier_free_guidance, **conditioning
    )

    # 2. Extra step arguments (eta for DDIM, the generators for stochastic schedulers)
    extra_step_kwargs = pipe.prepare_extra_step_kwargs(prepared.generators, 0.0)

    # 3. Denoising loop: call k runs each trajectory that has started, the others are held
    calls = max((len(path.timesteps) for path in prepared.trajectories), default=0)
    unet_rows = padded_rows = 0
    for k in range(calls):
        started = [path for path in prepared.trajectories if k >= calls - len(path.timesteps)]
        active = [(path, path.timesteps[k - (calls - len(path.timesteps))]) for path in started]
        t = _unet_timesteps(prepared.trajectories, active, rows)
        latent_model_input = torch.cat([latents] * 2) if do_classifier_free_guidance else latents
        latent_model_input = _scale_model_input(active, latent_model_input, rows)
        noise_pred = pipe.unet(
            latent_model_input,
            torch.cat([t] * 2) if do_classifier_free_guidance and t.ndim else t,
            encoder_hidden_states=generated_prompt_embeds,
            encoder_attention_mask_1=attention_mask,
            encoder_hidden_states_1=prompt_embeds,
            return_dict=False,
        )[0]
        if do_classifier_free_guidance:
            noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
            noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
        latents = _step(active, noise_pred, latents, extra_step_kwargs, rows)
        unet_rows += rows
        padded_rows += rows - sum(1 for path, _ in active for i in path.rows if i < real_rows)
    return latents, unet_rows, padded_rows


def _unet_timesteps(paths: list[Trajectory], active: list, rows: int) -> torch.Tensor:
    """The scalar timestep when every row runs it (diffusers' call, bit for bit), else one per row;
    a held row gets its own first timestep (its output is dropped)."""
    if len(active) == 1 and len(active[0][0].rows) == rows:
        return active[0][1]
    per_row = torch.empty(rows, dtype=paths[0].timesteps.dtype, device=paths[0].timesteps.device)
    for path in paths:
        per_row[path.rows] = path.timesteps[0] if len(path.timesteps) else 0
    for path, t in active:
        per_row[path.rows] = t
    return per_row


def _scale_model_input(active: list, sample: torch.Tensor, rows: int) -> torch.Tensor:
    """Each started trajectory's input scaling on its rows (in both guidance halves); identity for
    DDIM, DPM-Solver++, UniPC and PNDM, but called as diffusers calls it."""
    if len(active) == 1 and len(active[0][0].rows) == rows:
        return active[0][0].scheduler.scale_model_input(sample, active[0][1])
    sample = sample.clone()
    for path, t in active:
        own = [i + half for half in range(0, sample.shape[0], rows) for i in path.rows]
        sample[own] = path.scheduler.scale_model_input(sample[own], t)
    return sample


def _step(active: list, noise_pred: torch.Tensor, latents: torch.Tensor, extra: dict, rows: int) -> torch.Tensor:
    """Each started trajectory's scheduler step on its own rows (the whole batch when it is one)."""
    if len(active) == 1 and len(active[0][0].rows) == rows:
        path, t = active[0]
        return path.scheduler.step(noise_pred, t, latents, **extra).prev_sample
    latents = latents.clone()
    for path, t in active:
        own = dict(extra)
        if "generator" in own and isinstance(own["generator"], list):
            own["generator"] = [own["generator"][i] for i in path.rows]
        latents[path.rows] = path.scheduler.step(noise_pred[path.rows], t, latents[path.rows], **own).prev_sample
    return latents
