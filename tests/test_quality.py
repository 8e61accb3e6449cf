"""The quality gate on synthetic signals: each threshold must be able to change the verdict."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from birdgen_ray.config import QualityThresholds
from birdgen_ray.generate.quality import (
    CLIPPING,
    FLOOR_DBFS,
    LOW_CLAP,
    NONFINITE,
    SILENT,
    TOO_QUIET,
    judge,
    measure,
    verdict,
)

RATE = 16_000
DEFAULT = QualityThresholds()


def tone(amplitude: float = 0.5, seconds: float = 1.0, freq: float = 2000.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_tone_measures_and_passes():
    m = measure(tone(0.5), RATE, DEFAULT)
    assert set(m) == {"peak_dbfs", "rms_dbfs", "silence_fraction", "clipping_fraction", "nonfinite"}
    assert m["peak_dbfs"] == pytest.approx(20 * math.log10(0.5), abs=0.01)
    assert m["rms_dbfs"] == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.01)
    assert m["silence_fraction"] == 0.0
    assert m["clipping_fraction"] == 0.0
    assert m["nonfinite"] == 0.0
    assert judge(m, None, DEFAULT) == []
    assert verdict([]) == "pass"


def test_silence_is_silent_and_too_quiet():
    m = measure(np.zeros(RATE, dtype=np.float32), RATE, DEFAULT)
    assert m["peak_dbfs"] == FLOOR_DBFS and m["rms_dbfs"] == FLOOR_DBFS
    assert m["silence_fraction"] == 1.0
    reasons = judge(m, None, DEFAULT)
    assert reasons == [TOO_QUIET, SILENT]
    assert verdict(reasons) == "fail:too_quiet,silent"


def test_silence_fraction_counts_20ms_frames():
    audio = tone(0.5)
    audio[: RATE // 4] = 0.0  # first 250 ms silent = 12.5 of 50 frames
    m = measure(audio, RATE, DEFAULT)
    assert m["silence_fraction"] == pytest.approx(12 / 50, abs=1 / 50)


def test_hard_clipped_square_is_clipping():
    square = np.sign(tone(1.0)).astype(np.float32)
    m = measure(square, RATE, DEFAULT)
    assert m["clipping_fraction"] > 0.9
    assert judge(m, None, DEFAULT) == [CLIPPING]


def test_nan_input_reports_nonfinite_without_crashing():
    audio = tone(0.5)
    audio[100:200] = np.nan
    audio[300] = np.inf
    m = measure(audio, RATE, DEFAULT)
    assert m["nonfinite"] == 1.0
    assert all(math.isfinite(v) for v in m.values())
    assert m["peak_dbfs"] == pytest.approx(20 * math.log10(0.5), abs=0.01)
    assert NONFINITE in judge(m, None, DEFAULT)
    all_nan = measure(np.full(1000, np.nan, dtype=np.float32), RATE, DEFAULT)
    assert all_nan["nonfinite"] == 1.0 and all(math.isfinite(v) for v in all_nan.values())


def test_empty_audio_is_rejected_not_crashed():
    m = measure(np.zeros(0, dtype=np.float32), RATE, DEFAULT)
    assert judge(m, None, DEFAULT) == [TOO_QUIET, SILENT]


def test_clap_threshold():
    m = measure(tone(), RATE, DEFAULT)
    strict = dataclasses.replace(DEFAULT, min_clap_score=0.3)
    assert judge(m, 0.1, strict) == [LOW_CLAP]
    assert judge(m, 0.3, strict) == []
    assert judge(m, float("nan"), strict) == [LOW_CLAP]
    assert judge(m, 0.1, DEFAULT) == []  # None disables the check
    with pytest.raises(ValueError, match="min_clap_score"):
        judge(m, None, strict)


@pytest.mark.parametrize(
    "audio, loose, strict, reason",
    [
        # a quiet tone: passes at -80 dBFS minimum peak, fails at -20
        (tone(0.01), {"min_peak_dbfs": -80.0}, {"min_peak_dbfs": -20.0}, TOO_QUIET),
        # half silent: passes at 0.95 max silence, fails at 0.3
        (
            np.concatenate([tone(0.5, 0.5), np.zeros(RATE // 2, np.float32)]),
            {"max_silence_fraction": 0.95},
            {"max_silence_fraction": 0.3},
            SILENT,
        ),
        # a -50 dBFS tone is "silent" only when silence starts at -40 dBFS
        (tone(10 ** (-50 / 20)), {"silence_dbfs": -60.0}, {"silence_dbfs": -40.0}, SILENT),
        # 5% clipped samples: passes at 10%, fails at 1%
        (
            np.where(np.arange(RATE) % 20 == 0, 1.0, 0.3).astype(np.float32),
            {"max_clipping_fraction": 0.10},
            {"max_clipping_fraction": 0.01},
            CLIPPING,
        ),
    ],
)
def test_each_threshold_moves_the_verdict(audio, loose, strict, reason):
    loose_t = dataclasses.replace(DEFAULT, **loose)
    strict_t = dataclasses.replace(DEFAULT, **strict)
    assert reason not in judge(measure(audio, RATE, loose_t), None, loose_t)
    assert reason in judge(measure(audio, RATE, strict_t), None, strict_t)
