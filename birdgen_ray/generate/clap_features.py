"""CLAP's audio front-end on the device, batched: the log-mel `ClapFeatureExtractor` computes, in torch.

transformers' extractor computes its STFT in a Python loop over frames (1,001 per 10 s window at
hop 480), one clip at a time, on the CPU: about 47 ms per clip at AudioLDM2's settings, which on a
GPU actor would hold the GPU idle for most of a scoring batch. Here one `torch.stft` covers the
whole batch on the model's device, in float64 as the extractor computes, with the extractor's own
window and mel filters, so the features are the same to rounding (tested on real recordings).

Only the extractor's deterministic path is reproduced: `rand_trunc` truncation (the AudioLDM2
checkpoints' setting) on audio no longer than its window (the scorer crops longer audio itself, as
the extractor would crop it at a random offset). `fusion` truncation marks a random clip of every
batch as "longer"; `supports` says no to it and the scorer keeps the extractor for such models.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

PADDINGS = ("repeatpad", "repeat", "pad")


def supports(extractor) -> bool:
    """Whether `ClapAudioFeatures` reproduces this extractor's settings."""
    return getattr(extractor, "truncation", None) == "rand_trunc" and getattr(extractor, "padding", None) in PADDINGS


class ClapAudioFeatures:
    """`extractor(audios, sampling_rate=...).input_features` for audio at the extractor's rate, on `device`."""

    def __init__(self, extractor, device: torch.device):
        from transformers.audio_utils import window_function

        if not supports(extractor):
            raise ValueError(
                f"device CLAP features need rand_trunc truncation and padding in {PADDINGS}; "
                f"this extractor has {extractor.truncation!r} / {extractor.padding!r}"
            )
        self.device = torch.device(device)
        self.max_samples = int(extractor.nb_max_samples)
        self.n_fft = int(extractor.fft_window_size)
        self.hop = int(extractor.hop_length)
        self.padding = extractor.padding
        self.window = torch.from_numpy(window_function(self.n_fft, "hann")).to(self.device, torch.float64)
        # (mel bands, frequency bins): rand_trunc uses the Slaney-scale filters (librosa's defaults)
        self.filters = torch.from_numpy(np.asarray(extractor.mel_filters_slaney).T).to(self.device, torch.float64)

    def _fill_window(self, audio: torch.Tensor) -> torch.Tensor:
        """One clip to exactly the window's length, as the extractor pads it (repeat and/or zeros)."""
        audio = audio[: self.max_samples]
        length = audio.shape[0]
        if length < self.max_samples:
            if self.padding == "repeat":
                audio = audio.repeat(self.max_samples // length + 1)[: self.max_samples]
            elif self.padding == "repeatpad":
                audio = audio.repeat(self.max_samples // length)
            audio = torch.nn.functional.pad(audio, (0, self.max_samples - audio.shape[0]))
        return audio

    @torch.no_grad()
    def __call__(self, audios: Sequence[np.ndarray | torch.Tensor]) -> torch.Tensor:
        """(batch, 1, frames, mel bands) float32 log-mel in dB, on the device."""
        waves = torch.stack(
            [self._fill_window(torch.as_tensor(a).to(self.device, torch.float64).reshape(-1)) for a in audios]
        )
        spectrum = torch.stft(
            waves,
            self.n_fft,
            hop_length=self.hop,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        # the extractor keeps its FFT in complex64 before taking the power: round the same way
        spectrum = spectrum.to(torch.complex64).to(torch.complex128)
        power = spectrum.abs() ** 2  # (batch, bins, frames)
        mel = torch.clamp(self.filters @ power, min=1e-10)  # the extractor's mel_floor
        log_mel = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))  # power_to_db, reference 1.0, no range cut
        return log_mel.transpose(1, 2).unsqueeze(1).to(torch.float32)
