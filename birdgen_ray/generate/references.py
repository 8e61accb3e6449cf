"""A row's reference recording as the AudioLDM2 renderer uses it: the encoding its diffusion starts from.

A row with a `reference` starts from the VAE encoding (posterior mean, see denoise.POSTERIOR) of
its window's log-mel, scaled by vae.config.scaling_factor. Recordings are read once per engine
and encodings cached per (recording, window, grid, dtype); each is encoded alone, so a row's start
never depends on the rows it shares a batch with. The recording reader (io.recordings: soundfile,
fsspec) is imported on the first reference, so a text-only engine never loads it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

from birdgen_ray.generate import reference_mel
from birdgen_ray.generate.renderer import ReferenceWindow


class ReferenceLatents:
    """Reference recordings, read with the run's storage options, and their cached VAE encodings."""

    def __init__(self, pipe, storage_options: dict[str, Any] | None = None, cache_size: int = 256):
        self.pipe = pipe
        self.storage_options = storage_options or {}
        self.cache_size = cache_size
        self._recordings: OrderedDict[str, Any] = OrderedDict()
        self._latents: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def recording(self, uri: str):
        """The recording (io.recordings.Recording) at `uri`, read once."""
        from birdgen_ray.io.recordings import load_recording

        if uri not in self._recordings:
            self._recordings[uri] = load_recording(uri, self.storage_options, rate=reference_mel.SAMPLE_RATE)
            while len(self._recordings) > self.cache_size:
                self._recordings.popitem(last=False)
        return self._recordings[uri]

    def latents(self, reference: ReferenceWindow | None, height: int) -> torch.Tensor | None:
        """(1, C, height / f, mels / f) scaled latents of the window, or None without a reference."""
        if reference is None:
            return None
        from birdgen_ray.io.recordings import window

        vae = self.pipe.vae
        recording = self.recording(reference.uri)
        key = (recording.uri, reference.start_s, height, vae.dtype, str(vae.device))
        if key not in self._latents:
            samples = window(recording, reference.start_s, height * reference_mel.HOP)
            mel = torch.from_numpy(reference_mel.log_mel(samples, frames=height))[None, None]
            posterior = vae.encode(mel.to(device=vae.device, dtype=vae.dtype)).latent_dist
            self._latents[key] = posterior.mode() * vae.config.scaling_factor
            while len(self._latents) > self.cache_size:
                self._latents.popitem(last=False)
        return self._latents[key]
