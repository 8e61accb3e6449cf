"""CLAP similarity between a clip and its OWN prompt, with the pipeline's own CLAP model.

diffusers' `score_waveforms` ranks all of a batch's waveforms against every prompt and takes each
prompt's top clips from the whole batch, so with several prompts a clip can end up under another
prompt's label. Here each audio is only ever compared with the prompt it was generated from.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from birdgen_ray.generate.clap_features import ClapAudioFeatures, supports
from birdgen_ray.generate.encode import PromptEncoder, StageTimer, pooled_output
from birdgen_ray.io.audio import resample


class ClapScorer:
    """Scores takes against their own prompt; text embeddings come from the prompt encoder's cache."""

    def __init__(self, pipe, stage: StageTimer, encoder: PromptEncoder, batch_size: int = 8):
        self.pipe = pipe
        self.stage = stage
        self.encoder = encoder
        self.batch_size = max(1, batch_size)
        extractor = pipe.feature_extractor
        # the log-mel on the model's device, batched; transformers' per-frame CPU loop only for settings
        # the device front-end does not reproduce
        self.features = ClapAudioFeatures(extractor, pipe._execution_device) if supports(extractor) else None

    @torch.no_grad()
    def _audio_features(self, audios: Sequence[np.ndarray], sample_rate: int) -> torch.Tensor:
        extractor, pipe = self.pipe.feature_extractor, self.pipe
        # Crop to the extractor's window ourselves: its own truncation of longer audio picks a random
        # chunk, and scores must be reproducible.
        clips = [resample(a, sample_rate, extractor.sampling_rate)[: extractor.nb_max_samples] for a in audios]
        if self.features is not None:
            # rand_trunc on audio no longer than the window: the extractor flags every clip "not longer"
            input_features, is_longer = self.features(clips), torch.zeros((len(clips), 1), dtype=torch.bool)
        else:
            inputs = extractor(clips, sampling_rate=extractor.sampling_rate, return_tensors="pt")
            input_features, is_longer = inputs.input_features, inputs.get("is_longer")
        features = pooled_output(
            pipe.text_encoder.get_audio_features(
                input_features=input_features.to(pipe._execution_device, pipe.text_encoder.dtype),
                is_longer=None if is_longer is None else is_longer.to(pipe._execution_device),
            )
        )
        return torch.nn.functional.normalize(features.float(), dim=-1)

    def score(self, prompts: Sequence[str], audios: Sequence[np.ndarray], sample_rate: int) -> list[float]:
        """Cosine similarity of audios[i] with prompts[i], for every i."""
        if len(prompts) != len(audios):
            raise ValueError(f"{len(prompts)} prompts for {len(audios)} audios")
        scores: list[float] = []
        with self.stage("scoring"):
            for start in range(0, len(audios), self.batch_size):
                chunk = slice(start, start + self.batch_size)
                taken = list(audios[chunk])
                # Always a full batch (the last padded by repeating its last audio, then dropped):
                # kernels round by batch shape, and a close call between two takes must not flip
                # with the batch size.
                padded = taken + [taken[-1]] * (self.batch_size - len(taken))
                audio_features = self._audio_features(padded, sample_rate)[: len(taken)]
                encodings = self.encoder.encode_many(prompts[chunk])
                text_features = torch.nn.functional.normalize(
                    torch.cat([e.clap_text for e in encodings]).float(), dim=-1
                )
                scores.extend((audio_features * text_features).sum(dim=-1).tolist())
        return scores
