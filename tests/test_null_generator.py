"""The model-free generator: deterministic per row, exact lengths and rates, fault-injection hooks."""

from __future__ import annotations

import numpy as np
import pytest

from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds
from birdgen_ray.generate.null import SOURCE_RATE, NullGenerator
from birdgen_ray.generate.types import ClipGenerator
from birdgen_ray.io.audio import decode_wav, encode_wav
from birdgen_ray.plan.schema import make_clip_id
from birdgen_ray.rows import DEFAULT_NEGATIVE_PROMPT, PlanRow
from tests.fault_hooks import FAIL_LABEL_ENV, SLEEP_ENV


def row(label: str = "amerob", seed: int = 7, duration_s: float = 1.0, prompt: str = "an american robin singing"):
    cid = make_clip_id(label, prompt, DEFAULT_NEGATIVE_PROMPT, seed, duration_s)
    return PlanRow(cid, label, prompt, DEFAULT_NEGATIVE_PROMPT, seed, duration_s)


def make(**generation) -> NullGenerator:
    return NullGenerator(GenerationConfig(**generation), EngineConfig())


def test_satisfies_protocol_and_fills_every_field():
    gen = make()
    as_protocol: ClipGenerator = gen  # a type checker verifies the protocol here
    assert callable(as_protocol.generate)
    assert gen.model_id == "null"
    (clip,) = gen.generate([row()])
    assert clip.clip_id == row().clip_id
    assert clip.audio.dtype == np.float32 and clip.audio.ndim == 1
    assert clip.sample_rate == 32_000 and clip.source_sample_rate == SOURCE_RATE
    assert clip.bandwidth_hz == SOURCE_RATE / 2
    assert clip.final_seed == 7 and clip.attempts == 1 and clip.verdict == "pass"
    assert set(clip.metrics) >= {"peak_dbfs", "rms_dbfs", "silence_fraction", "clipping_fraction", "nonfinite"}
    assert clip.metrics["nonfinite"] == 0.0 and clip.metrics["clipping_fraction"] == 0.0
    assert set(gen.stage_times) == {"generate", "postprocess"}
    assert all(v > 0 for v in gen.stage_times.values())


def test_same_row_same_audio_in_any_batch_and_any_instance():
    rows = [row(seed=s) for s in range(6)]
    alone = [make().generate([r])[0].audio for r in rows]
    batched = make().generate(rows)
    reversed_batch = make().generate(rows[::-1])[::-1]
    for a, b, c in zip(alone, batched, reversed_batch):
        np.testing.assert_array_equal(a, b.audio)
        np.testing.assert_array_equal(a, c.audio)


def test_seed_and_prompt_change_the_audio():
    base = make().generate([row()])[0].audio
    other_seed = make().generate([row(seed=8)])[0].audio
    other_prompt = make().generate([row(prompt="a song thrush singing")])[0].audio
    assert not np.array_equal(base, other_seed)
    assert not np.array_equal(base, other_prompt)


@pytest.mark.parametrize("rate", [16_000, 22_050, 32_000, 44_100])
@pytest.mark.parametrize("duration_s", [0.25, 1.0, 2.37, 5.0])
def test_exact_length_rate_and_peak(rate, duration_s):
    (clip,) = make(output_sample_rate=rate, peak_dbfs=-3.0).generate([row(duration_s=duration_s)])
    assert clip.sample_rate == rate
    assert len(clip.audio) == round(duration_s * rate)
    assert np.max(np.abs(clip.audio)) == pytest.approx(10 ** (-3 / 20), rel=1e-5)


def test_output_is_valid_wav_audio():
    (clip,) = make().generate([row(duration_s=0.5)])
    back, rate = decode_wav(encode_wav(clip.audio, clip.sample_rate))
    assert rate == clip.sample_rate and len(back) == len(clip.audio)


def test_quality_gate_applies_except_clap():
    strict = QualityThresholds(min_peak_dbfs=-0.5, min_clap_score=0.9)
    (clip,) = make(quality=strict).generate([row()])
    assert clip.verdict == "fail:too_quiet"  # raw peak is well below -0.5 dBFS; no CLAP scorer here


def test_failure_hook_raises_for_that_label_only(monkeypatch):
    monkeypatch.setenv(FAIL_LABEL_ENV, "badbird")
    gen = make()
    assert gen.generate([row(label="amerob")])[0].verdict == "pass"
    bad = row(label="badbird")
    with pytest.raises(RuntimeError, match=f"injected failure for {bad.clip_id}"):
        gen.generate([row(label="amerob"), bad])


def test_sleep_hook_sleeps_per_row(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr("birdgen_ray.generate.null.time.sleep", slept.append)
    monkeypatch.setenv(SLEEP_ENV, "0.25")
    make().generate([row(seed=s, duration_s=0.1) for s in range(4)])
    assert slept == [0.25] * 4
    monkeypatch.delenv(SLEEP_ENV)
    make().generate([row()])
    assert len(slept) == 4
