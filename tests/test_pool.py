"""The actor pool's slots go through their named states with real Ray actors (schedule/pool.py)."""

from __future__ import annotations

import pyarrow.parquet as pq
import ray

from birdgen_ray.config import RunConfig
from birdgen_ray.plan.validate import validate_plan
from birdgen_ray.schedule.actor import ShardResult, actor_class
from birdgen_ray.schedule.pool import ActorPool, SlotState
from birdgen_ray.schedule.shards import make_shards
from tests.plans import plan_table, write_plan


def _pool(run: RunConfig) -> ActorPool:
    Actor = actor_class(max_concurrency=2)
    return ActorPool(1, lambda: Actor.options(num_cpus=1).remote(run, 1, None, load_now=False))


def _next_step(pool: ActorPool):
    [ref], _ = ray.wait(pool.start_refs(), num_returns=1, timeout=120)
    return pool.start_step(ref)


def test_a_slot_is_placed_loads_its_model_gets_busy_and_ready_again(ray_local, tmp_path):
    path = write_plan(tmp_path / "plan.parquet", plan_table(2, durations=(1.0,)))
    run = RunConfig(plan_path=str(path), out=str(tmp_path / "out"), generator="null", gpus_per_actor=0)
    pool = _pool(run)
    slot = pool.slots[0]
    try:
        pool.start(slot)
        assert slot.state is SlotState.PLACING and pool.with_room(1) == []
        placed = _next_step(pool)
        assert (placed.kind, slot.state) == ("placed", SlotState.LOADING) and pool.with_room(1) == []
        loaded = _next_step(pool)
        assert (loaded.kind, slot.state) == ("loaded", SlotState.READY) and loaded.info["model_id"] == "null"
        assert pool.with_room(1) == [slot] and pool.start_refs() == []

        shard = make_shards(validate_plan(pq.read_table(path)), 2)[0]
        ref = slot.actor.run_shard.remote(shard)
        slot.load += 1
        assert slot.state is SlotState.BUSY and pool.with_room(1) == []
        done: ShardResult = ray.get(ref, timeout=120)
        slot.load -= 1
        assert done.clips == 2 and slot.state is SlotState.READY
    finally:
        pool.kill_all()


def test_a_model_that_fails_to_load_is_a_model_failure_not_a_lost_node(ray_local, tmp_path):
    path = write_plan(tmp_path / "plan.parquet", plan_table(2))
    run = RunConfig(plan_path=str(path), out=str(tmp_path / "out"), generator="no-such-model", gpus_per_actor=0)
    pool = _pool(run)
    slot = pool.slots[0]
    try:
        pool.start(slot)
        assert _next_step(pool).kind == "placed"  # the actor itself runs: only its model cannot be built
        failed = _next_step(pool)
        assert failed.kind == "failed" and failed.model_failed and slot.failed_starts == 1
        assert "unknown generator 'no-such-model'" in str(failed.error)
        pool.lose(slot)
        assert slot.state is SlotState.LOST and pool.with_room(1) == [] and pool.start_refs() == []
    finally:
        pool.kill_all()


def test_the_start_call_of_a_replaced_actor_is_stale_and_the_new_one_starts(ray_local, tmp_path):
    path = write_plan(tmp_path / "plan.parquet", plan_table(2))
    run = RunConfig(plan_path=str(path), out=str(tmp_path / "out"), generator="null", gpus_per_actor=0)
    pool = _pool(run)
    slot = pool.slots[0]
    try:
        pool.start(slot)
        [old_ref] = pool.start_refs()
        pool.start(slot)  # replaced (and killed) before it was seen to start
        ray.wait([old_ref], timeout=120)
        assert pool.start_step(old_ref).kind == "stale"
        assert slot.state is SlotState.PLACING and slot.failed_starts == 0  # the old actor's end is not counted
        assert [_next_step(pool).kind, _next_step(pool).kind] == ["placed", "loaded"]
        assert slot.state is SlotState.READY
    finally:
        pool.kill_all()
