"""A row's reference recording as the engine uses it: where its diffusion starts, and from what.

A row with a `reference` starts from the VAE encoding (posterior mean, see denoise.POSTERIOR) of
its window's log-mel, scaled by vae.config.scaling_factor. Recordings are read once per engine
and encodings cached per (recording, window, grid, dtype); each is encoded alone, so a row's start
never depends on the rows it shares a batch with.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

from birdgen_ray.generate import reference_mel
from birdgen_ray.generate.denoise import steps_to_run
from birdgen_ray.io.recordings import Recording, load_recording, reference_uri, window
from birdgen_ray.rows import PlanRow


def has_reference(row: PlanRow) -> bool:
    return bool(row.reference)


def start_step(row: PlanRow, num_inference_steps: int) -> int:
    """Scheduler steps the row skips: none without a reference, else steps - round(strength x steps)."""
    if not has_reference(row):
        return 0
    strength = 1.0 if row.strength is None else float(row.strength)
    return num_inference_steps - steps_to_run(strength, num_inference_steps)


class ReferenceLatents:
    """Reference recordings, read with the run's storage options, and their cached VAE encodings."""

    def __init__(self, pipe, storage_options: dict[str, Any] | None = None, cache_size: int = 256):
        self.pipe = pipe
        self.storage_options = storage_options or {}
        self.cache_size = cache_size
        self._recordings: OrderedDict[str, Recording] = OrderedDict()
        self._latents: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def recording(self, row: PlanRow) -> Recording:
        uri = reference_uri(row.reference_root, row.reference)
        if uri not in self._recordings:
            self._recordings[uri] = load_recording(uri, self.storage_options, rate=reference_mel.SAMPLE_RATE)
            while len(self._recordings) > self.cache_size:
                self._recordings.popitem(last=False)
        return self._recordings[uri]

    def sha256(self, row: PlanRow) -> str | None:
        return self.recording(row).sha256 if has_reference(row) else None

    def latents(self, row: PlanRow, height: int) -> torch.Tensor | None:
        """(1, C, height / f, mels / f) scaled latents of the row's window, or None for a text-only row."""
        if not has_reference(row):
            return None
        vae = self.pipe.vae
        recording = self.recording(row)
        key = (recording.uri, float(row.reference_start_s or 0.0), height, vae.dtype, str(vae.device))
        if key not in self._latents:
            samples = window(recording, float(row.reference_start_s or 0.0), height * reference_mel.HOP)
            mel = torch.from_numpy(reference_mel.log_mel(samples, frames=height))[None, None]
            posterior = vae.encode(mel.to(device=vae.device, dtype=vae.dtype)).latent_dist
            self._latents[key] = posterior.mode() * vae.config.scaling_factor
            while len(self._latents) > self.cache_size:
                self._latents.popitem(last=False)
        return self._latents[key]
