"""The end-to-end job on the built-in tiny AudioLDM2: real model, real Ray actors, real WAV shards."""

from __future__ import annotations

import io

import soundfile as sf

from birdgen_ray import open_index
from birdgen_ray.config import GenerationConfig, RunConfig
from birdgen_ray.index.reader import read_clip_bytes
from birdgen_ray.plan.validate import validate_plan
from birdgen_ray.schedule.runner import submit
from tests.plans import plan_table, write_plan


def test_tiny_model_on_two_cpu_actors_gives_one_decodable_clip_per_row_and_reruns_nothing(ray_local, tmp_path):
    plan = plan_table(24, durations=(1.0, 1.5))
    run = RunConfig(
        plan_path=write_plan(tmp_path / "plan.parquet", plan),
        out=str(tmp_path / "out"),
        generation=GenerationConfig(model="tiny", num_inference_steps=2),
        num_actors=2,
        gpus_per_actor=0,  # CPU actors, even though the test Ray advertises fake GPUs
        shard_size=6,
        progress=False,
    )
    summary = submit(run)
    assert summary["status"] == "complete" and summary["actors"] == 2
    assert summary["model_id"].startswith("tiny")
    counts = summary["engine_counts"]  # 2 steps, no retries: every row runs 2 UNet rows; the rest is padding
    assert counts["unet_rows"] - counts["padded_rows"] == 24 * 2 and 0 < counts["padded_rows"] < counts["unet_rows"]
    assert 4 <= counts["encoder_calls"] <= 3 * 4  # per shard (4 of 6 rows): a few length buckets of its 7 texts

    index = open_index(run.out)
    assert sorted(index["clip_id"].to_pylist()) == sorted(validate_plan(plan)["clip_id"].to_pylist())
    for row in index.to_pylist():
        data, rate = sf.read(io.BytesIO(read_clip_bytes(run.out, row)), dtype="float32")
        assert rate == 32_000 and len(data) == round(row["duration_s"] * 32_000)
        assert row["source_sample_rate"] == 16_000 and row["bandwidth_hz"] == 8_000
        assert row["model_id"] == summary["model_id"] and row["verdict"] == "pass"
        assert 0.5 < abs(data).max() <= 1.0  # peak-normalised to -1 dBFS, never silent

    again = submit(run)
    assert again["generated_this_run"] == 0 and open_index(run.out).num_rows == 24
