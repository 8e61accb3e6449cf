"""Stable Audio Open end to end on the built-in tiny model: plan with references, submit on a real Ray
actor, full-band clips in the index and in the audio, provenance, and a row regenerated alone."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from birdgen_ray.cli import app
from birdgen_ray.config import EngineConfig, GenerationConfig, RunConfig
from birdgen_ray.generate.engine import StableAudioEngine
from birdgen_ray.index.reader import open_index, read_clip, read_clip_bytes
from birdgen_ray.plan.validate import read_plan
from birdgen_ray.rows import plan_rows
from birdgen_ray.schedule.runner import submit
from tests.real_audio import needs_real_audio
from tests.test_engine import relative_l2
from tests.test_plan_references import cut

pytestmark = [needs_real_audio, pytest.mark.usefixtures("tiny_cache_and_one_thread")]


def share_above(audio: np.ndarray, rate: int, hz: float) -> float:
    """Share of the clip's energy above `hz` (FFT power)."""
    power = np.abs(np.fft.rfft(audio)) ** 2
    return float(power[np.fft.rfftfreq(audio.size, 1 / rate) > hz].sum() / power.sum())


def test_tiny_stable_audio_writes_full_band_clips_with_reference_provenance(ray_local, tmp_path):
    recordings = {
        "alpha/XC1.wav": cut("scikit-maad-spinetail.wav", 0.0, 3.0),
        "beta/XC2.wav": cut("opensoundscape-birds_10s.wav", 0.0, 3.0),
    }
    for key, data in recordings.items():
        (tmp_path / "birdclef" / "train_audio" / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "birdclef" / "train_audio" / key).write_bytes(data)
    counts = tmp_path / "counts.csv"
    counts.write_text("label,count\nalpha,1\nbeta,2\ngamma,3\n")
    plan_path = tmp_path / "plan.parquet"
    result = CliRunner().invoke(
        app,
        ["plan", str(counts), "--target", "4", "--duration", "1", "--references", str(tmp_path / "birdclef")]
        + ["--strength", "0.3:0.7", "-o", str(plan_path)],
    )
    assert result.exit_code == 0, result.output

    generation = GenerationConfig(model="tiny-stable-audio", num_inference_steps=4)
    run = RunConfig(
        plan_path=str(plan_path),
        out=str(tmp_path / "out"),
        generation=generation,
        engine=EngineConfig(batch_size=2, device="cpu"),
        num_actors=1,
        gpus_per_actor=0,
        shard_size=3,
        progress=False,
    )
    summary = submit(run)
    assert summary["status"] == "complete" and summary["model_id"] == "tiny-stable-audio-1"

    index = {row["clip_id"]: row for row in open_index(run.out).to_pylist()}
    assert len(index) == 6
    for row in index.values():
        # the index says the band reaches past AudioLDM2's 8 kHz (to the 32 kHz clip's 16 kHz), and the audio
        # has energy up there
        assert (row["source_sample_rate"], row["bandwidth_hz"]) == (44_100, 16_000.0)
        data, rate = sf.read(io.BytesIO(read_clip_bytes(run.out, row)), dtype="float32")
        assert rate == 32_000 and len(data) == 32_000 and row["verdict"] == "pass"
        assert share_above(data, rate, 8_000) > 0.02
        if row["label"] == "gamma":
            assert row["reference"] is None and row["reference_sha256"] is None
        else:
            assert row["reference_sha256"] == hashlib.sha256(recordings[row["reference"]]).hexdigest()
            assert 0.3 <= row["strength"] <= 0.7

    # a reference row regenerated alone, from its plan row, reproduces its clip (16-bit WAV apart)
    plan = {r.clip_id: r for r in plan_rows(read_plan(str(plan_path)))}
    engine = StableAudioEngine(generation, EngineConfig(batch_size=1, device="cpu"))
    clip_id = next(c for c, r in plan.items() if r.label == "beta")
    (again,) = engine.generate([plan[clip_id]])
    stored, _ = read_clip(run.out, clip_id)
    assert relative_l2(again.audio, stored) < 1e-3
    assert again.reference_sha256 == index[clip_id]["reference_sha256"]

    assert submit(run)["generated_this_run"] == 0  # exactly once: a rerun makes nothing new


def test_the_verifier_hears_stable_audio_at_its_own_44_1_khz():
    """BirdNET gets the model's raw 44.1 kHz output (resampled to its 48 kHz), not the 32 kHz file."""
    from birdgen_ray.rows import PlanRow
    from birdgen_ray.verify.birdnet import birdnet_labels

    redstart = next(name for name in birdnet_labels() if name.startswith("Setophaga ruticilla_"))
    generation = GenerationConfig(
        model="tiny-stable-audio", num_inference_steps=2, verifier="birdnet", species_labels={"amered": redstart}
    )
    engine = StableAudioEngine(generation, EngineConfig(batch_size=1, device="cpu", verifier_threads=1))
    rates, submit_scores = [], engine.verifier.submit

    def recording_rate(audios, labels, sample_rate):
        rates.append(sample_rate)
        return submit_scores(audios, labels, sample_rate)

    engine.verifier.submit = recording_rate
    (clip,) = engine.generate([PlanRow("c0", "amered", "a bird song", "", 7, 3.0)])
    assert rates == [44_100] and clip.verifier.startswith("birdnet")
    assert 0.0 <= clip.metrics["species_confidence"] < 0.1  # random weights: no redstart in there
