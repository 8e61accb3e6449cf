"""A shard that hangs (a stuck GPU call) is ended by --shard-timeout: its actor is killed, the shard is
retried within the attempt limit, then recorded as failed, and every other shard still completes."""
from __future__ import annotations

import json

from birdgen_ray import open_index
from birdgen_ray.config import RunConfig
from birdgen_ray.schedule.runner import submit
from tests.plans import plan_table, write_plan


def test_hung_shard_times_out_is_retried_then_recorded_and_the_rest_completes(ray_local, tmp_path):
    # 8 "good" rows sort before the 4 "hang" rows: shards [good x4] [good x4] [hang x4]
    plan = plan_table(12, labels=("good", "good", "hang"), durations=(1.0,))
    out = tmp_path / "out"
    summary = submit(
        RunConfig(
            plan_path=write_plan(tmp_path / "plan.parquet", plan),
            out=str(out),
            generator="null",
            num_actors=2,
            gpus_per_actor=0,
            shard_size=4,
            shard_timeout_s=3.0,
            max_shard_attempts=2,
            # bounded, so that without the timeout this test fails (everything completes) instead of hanging
            actor_env={"BIRDGEN_NULL_HANG_LABEL": "hang", "BIRDGEN_NULL_HANG_S": "60"},
            progress=False,
        )
    )

    assert summary["status"] == "incomplete" and summary["failed_clips"] == 4
    assert summary["actors_replaced"] >= 2  # one kill per timed-out attempt
    assert sorted(set(open_index(out)["label"].to_pylist())) == ["good"]
    assert open_index(out).num_rows == 8
    (failure_file,) = (out / "failures").iterdir()
    failure = json.loads(failure_file.read_text())
    assert failure["labels"] == ["hang"] and failure["attempts"] == 2
    assert "timed out after 3 s" in failure["error"]
