"""CLAP's log-mel on the device (generate/clap_features.py) equals transformers' ClapFeatureExtractor on real
recordings, at the full-size AudioLDM2 extractor's settings, and the scorer uses it for the tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from birdgen_ray.generate.clap_features import ClapAudioFeatures, supports
from birdgen_ray.io.audio import read_audio
from tests.real_audio import AUDIO

pytestmark = pytest.mark.slow  # real recordings through the CLAP front-end

SHARED = AUDIO.parent  # shared/ beside the clone (as in CI), or BIRDGEN_SHARED_DIR
FULL_SIZE_EXTRACTORS = sorted((SHARED / "reference" / "audioldm2").glob("*/feature_extractor"))


def full_size_extractor(path: Path, **changes):
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor.from_pretrained(path, **changes)


def recording_windows(rate: int) -> list[np.ndarray]:
    """Real field recordings, cut to lengths that take every padding branch: 5 s (repeated to fill the
    10 s window exactly), 3.3 s (repeated, then zeros), the whole window, 0.69 s, and a longer cut."""
    if not AUDIO.is_dir():
        pytest.skip(f"real recordings not found at {AUDIO} (set BIRDGEN_SHARED_DIR to the shared folder)")
    birds, _ = read_audio(AUDIO / "opensoundscape-birds_10s.wav", rate)
    spinetail, _ = read_audio(AUDIO / "scikit-maad-spinetail.wav", rate)
    toad, _ = read_audio(AUDIO / "opensoundscape-great_plains_toad.wav", rate)
    return [birds[: 5 * rate], spinetail[rate : rate + 158_400], birds[: 10 * rate], toad[:33_333], toad[-12 * rate :]]


@pytest.mark.parametrize("padding", ["repeatpad", "repeat", "pad"])
def test_device_log_mel_equals_the_extractor_on_real_recordings(padding):
    if not FULL_SIZE_EXTRACTORS:
        pytest.skip(f"no full-size AudioLDM2 feature_extractor configs under {SHARED / 'reference'}")
    extractor = full_size_extractor(FULL_SIZE_EXTRACTORS[0], padding=padding)
    assert (extractor.sampling_rate, extractor.hop_length, extractor.truncation) == (48_000, 480, "rand_trunc")
    clips = [clip[: extractor.nb_max_samples] for clip in recording_windows(extractor.sampling_rate)]

    want = extractor(clips, sampling_rate=extractor.sampling_rate, return_tensors="pt")
    got = ClapAudioFeatures(extractor, torch.device("cpu"))(clips)

    assert got.shape == want.input_features.shape == (len(clips), 1, 1001, 64)
    assert not want.is_longer.any()  # what the scorer passes with the device features
    torch.testing.assert_close(got, want.input_features, rtol=0, atol=1e-4)
    assert float(want.input_features.std()) > 5.0  # real sound, not a floor of -100 dB everywhere


def test_every_audioldm2_extractor_config_is_reproduced_and_fusion_is_refused():
    if not FULL_SIZE_EXTRACTORS:
        pytest.skip(f"no full-size AudioLDM2 feature_extractor configs under {SHARED / 'reference'}")
    assert all(supports(full_size_extractor(path)) for path in FULL_SIZE_EXTRACTORS)
    fusion = full_size_extractor(FULL_SIZE_EXTRACTORS[0], truncation="fusion")
    assert not supports(fusion)
    with pytest.raises(ValueError, match="rand_trunc"):
        ClapAudioFeatures(fusion, torch.device("cpu"))


@pytest.mark.usefixtures("tiny_cache_and_one_thread")
def test_the_scorer_gives_the_extractors_scores_with_device_features():
    from birdgen_ray.config import EngineConfig, GenerationConfig
    from birdgen_ray.generate.engine import AudioLDM2Engine

    engine = AudioLDM2Engine(GenerationConfig(model="tiny", num_inference_steps=2), EngineConfig(device="cpu"))
    scorer = engine.scorer
    assert scorer.features is not None  # the tiny model's extractor is rand_trunc too
    clips = [clip[:32_000] for clip in recording_windows(16_000)]
    prompts = ["a bird song", "frog", "a bird song", "a toad calls", "wind"]
    device_scores = scorer.score(prompts, clips, 16_000)
    scorer.features = None  # transformers' extractor on the CPU
    extractor_scores = scorer.score(prompts, clips, 16_000)
    np.testing.assert_allclose(device_scores, extractor_scores, rtol=0, atol=1e-6)
