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


def timeout_run(tmp_path, plan, **kw) -> RunConfig:
    defaults = dict(generator="null", num_actors=1, gpus_per_actor=0, shard_size=4, progress=False)
    defaults.update(kw)
    return RunConfig(plan_path=write_plan(tmp_path / "plan.parquet", plan), out=str(tmp_path / "out"), **defaults)


def test_a_shard_queued_behind_another_on_its_actor_is_not_timed_out(ray_local, tmp_path):
    # One actor takes two shards at once (max_inflight_per_actor=2) but generates one at a time: the
    # second waits ~3 s for the first, then takes ~3 s itself. Each shard takes 2 s less than the 5 s
    # timeout (slack for a loaded box), so no actor may be killed, though the second finishes ~6 s after
    # it was handed over.
    summary = submit(
        timeout_run(
            tmp_path,
            plan_table(12, durations=(1.0,)),
            shard_timeout_s=5.0,
            max_shard_attempts=1,
            actor_env={"BIRDGEN_NULL_SLEEP_S": "0.75"},
        )
    )
    assert summary["status"] == "complete" and summary["failed_clips"] == 0
    assert summary["actors_replaced"] == 0 and summary["shard_retries"] == 0


def test_a_shard_killed_with_a_timed_out_actor_is_retried_without_spending_an_attempt(ray_local, tmp_path):
    # "aaa" rows sort first: the hanging shard takes the actor's generator, the "good" shard waits
    # behind it on the same actor and dies with it. Only the hanging one is to blame.
    plan = plan_table(8, labels=("aaa", "good"), durations=(1.0,))
    summary = submit(
        timeout_run(
            tmp_path,
            plan,
            shard_timeout_s=2.0,
            max_shard_attempts=1,
            actor_env={"BIRDGEN_NULL_HANG_LABEL": "aaa", "BIRDGEN_NULL_HANG_S": "60"},
        )
    )
    assert summary["failed_clips"] == 4
    assert sorted(set(open_index(tmp_path / "out")["label"].to_pylist())) == ["good"]
    (failure_file,) = (tmp_path / "out" / "failures").iterdir()
    failure = json.loads(failure_file.read_text())
    assert failure["labels"] == ["aaa"] and "timed out after 2 s" in failure["error"]
