"""Engine defaults that fit the device (generate/batch_size.py): the batch from free GPU memory and the
measured activation table, compile when it pays back, and every choice shown by submit and summary.json."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from birdgen_ray.cli import app
from birdgen_ray.generate import batch_size as bs
from tests.plans import plan_table, write_plan

GIB = 1 << 30


def per_clip_bytes(duration_s: float) -> float:
    """fp16 GPU bytes per clip the table implies: fp32 CPU MiB, halved, times the margin."""
    return bs.activation_mib_per_clip(duration_s) * (1 << 20) / 2 * bs.GPU_MARGIN


def test_the_table_is_interpolated_linearly_and_grows_with_the_clip_length():
    (s0, m0), (s1, m1) = bs.ACTIVATION_MIB_PER_CLIP_FP32[:2]
    assert bs.activation_mib_per_clip(s0) == pytest.approx(m0)
    assert bs.activation_mib_per_clip((s0 + s1) / 2) == pytest.approx((m0 + m1) / 2)
    lengths = [0.5, 1.0, 2.5, 5.0, 10.0, 20.0]
    assert all(bs.activation_mib_per_clip(a) <= bs.activation_mib_per_clip(b) for a, b in zip(lengths, lengths[1:]))
    assert bs.activation_mib_per_clip(2.5) < bs.activation_mib_per_clip(5.0) < bs.activation_mib_per_clip(10.0)
    assert bs.activation_mib_per_clip(20.0) > bs.activation_mib_per_clip(10.0)  # extrapolated past the table


@pytest.mark.parametrize("clips_that_fit, expected", [(0, 1), (1, 1), (7.9, 4), (64.5, 64), (100, 64), (1000, 128)])
def test_the_batch_is_the_largest_power_of_two_that_fits_a_fake_free_memory(clips_that_fit, expected):
    weights = 3 * GIB
    free = int(weights + bs.RESERVE_BYTES + clips_that_fit * per_clip_bytes(5.0))
    choice = bs.choose_batch_size(free, weights, 5.0)
    assert choice.value == expected
    assert f"{free / GIB:.1f} GiB free" in choice.why and "5 s clip" in choice.why


def test_longer_clips_get_smaller_batches_from_the_same_memory():
    free = 20 * GIB  # a 24 GB card after loading, say
    batches = [bs.choose_batch_size(free, 3 * GIB, seconds).value for seconds in (1.0, 5.0, 10.0)]
    assert batches[0] >= batches[1] >= batches[2] and batches[0] > batches[2]
    assert bs.choose_batch_size(free, 3 * GIB, 5.0, bytes_per_element=4).value < batches[1]  # an fp32 pipeline


def test_asked_for_settings_win_and_auto_ones_follow_the_device():
    asked = bs.engine_choices(16, True, 5.0, 10, "cuda", free_bytes=100 * GIB)
    assert (asked["batch_size"].value, asked["compile_unet"].value) == (16, True)
    cpu = bs.engine_choices(None, None, 5.0, 10**6, "cpu")
    assert (cpu["batch_size"].value, cpu["compile_unet"].value, cpu["cudnn_benchmark"].value) == (8, False, False)
    few = bs.engine_choices(
        None, None, 5.0, bs.COMPILE_PAYBACK_CLIPS - 1, "cuda", free_bytes=100 * GIB, weight_bytes=GIB
    )
    many = bs.engine_choices(None, None, 5.0, bs.COMPILE_PAYBACK_CLIPS, "cuda", free_bytes=100 * GIB, weight_bytes=GIB)
    assert few["batch_size"].value == bs.choose_batch_size(100 * GIB, GIB, 5.0).value == many["batch_size"].value
    assert not few["compile_unet"].value and many["compile_unet"].value and many["cudnn_benchmark"].value
    unknown_length = bs.engine_choices(None, None, None, 1, "cuda", free_bytes=100 * GIB)
    assert unknown_length["batch_size"].value == bs.choose_batch_size(100 * GIB, 0, 10.0).value


@pytest.mark.usefixtures("tiny_cache_and_one_thread")
def test_submit_prints_every_engine_choice_first_and_records_it_in_the_summary(ray_local, tmp_path):
    plan = write_plan(tmp_path / "plan.parquet", plan_table(2, durations=(1.0,)))
    out = tmp_path / "out"
    args = ["submit", plan, "--out", out, "--model", "tiny", "--steps", "2", "--num-actors", "1", "--no-progress"]
    # 80 columns: the lines stay whole (logs and pipes get one line per choice)
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output

    choices = json.loads((out / "summary.json").read_text())["engine_choices"]
    assert choices["batch_size"] == {"value": 8, "why": "auto: 8 (no GPU memory to size it by)"}  # a CPU actor
    assert choices["compile_unet"] == {"value": False, "why": "auto: off (not CUDA)"}
    assert choices["cudnn_benchmark"]["value"] is False
    lines = [line for line in result.output.splitlines() if not line.startswith("waiting for")]  # a slow start
    assert lines[:3] == [
        "engine batch size: 8 (auto: 8 (no GPU memory to size it by))",
        "engine compile unet: False (auto: off (not CUDA))",
        f"engine cudnn benchmark: False ({choices['cudnn_benchmark']['why']})",
    ]
