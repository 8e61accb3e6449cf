"""Reference recordings as Stable Audio Open starts from them: 44.1 kHz windows and their VAE encodings.

A window is read at the VAE's rate, repeated to its two channels (as diffusers' audio-to-audio does
with a mono input) and encoded alone; the posterior mean is kept (not a sample), so the encoding is
a function of the window only. Recordings and encodings are cached per engine.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch


class StableAudioReferences:
    """Reference recordings, read with the run's storage options, and their cached VAE encodings."""

    def __init__(self, pipe, storage_options: dict[str, Any] | None = None, cache_size: int = 256):
        self.pipe = pipe
        self.storage_options = storage_options or {}
        self.cache_size = cache_size
        self._recordings: OrderedDict[str, Any] = OrderedDict()  # uri -> io.recordings.Recording
        self._latents: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def recording(self, uri: str):
        """The recording at `uri`, read once (io.recordings, and soundfile with it, load on the first one)."""
        from birdgen_ray.io.recordings import load_recording

        if uri not in self._recordings:
            rate = int(self.pipe.vae.config.sampling_rate)
            self._recordings[uri] = load_recording(uri, self.storage_options, rate=rate)
            while len(self._recordings) > self.cache_size:
                self._recordings.popitem(last=False)
        return self._recordings[uri]

    def latents(self, reference, frames: int) -> torch.Tensor:
        """(1, C, frames) latents of the reference's window (a ReferenceWindow: uri, start_s)."""
        from birdgen_ray.io.recordings import window

        vae = self.pipe.vae
        recording = self.recording(reference.uri)
        key = (recording.uri, float(reference.start_s), frames, vae.dtype, str(vae.device))
        if key not in self._latents:
            hop = int(np.prod(vae.config.downsampling_ratios))
            samples = torch.from_numpy(window(recording, float(reference.start_s), frames * hop))
            stereo = samples[None, None].repeat(1, vae.config.audio_channels, 1)
            self._latents[key] = vae.encode(stereo.to(device=vae.device, dtype=vae.dtype)).latent_dist.mode()
            while len(self._latents) > self.cache_size:
                self._latents.popitem(last=False)
        return self._latents[key]
