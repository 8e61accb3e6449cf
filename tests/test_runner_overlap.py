"""An actor generates the next shard while the previous one is still being written.

The writes are slowed with the BIRDGEN_WRITE_DELAY_S hook (tests/fault_hooks.py: a slow object store); what is
checked are the timestamps each shard reports (when it got the generator, released it, committed),
not how fast anything ran.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pyarrow.parquet as pq
import pytest

from birdgen_ray.config import EngineConfig, RunConfig
from birdgen_ray.io.layout import committed_shard_ids, shard_paths
from birdgen_ray.io.storage import Output
from birdgen_ray.plan.validate import validate_plan
from birdgen_ray.schedule.actor import ShardResult, ShardWorker
from birdgen_ray.schedule.drive import drive
from birdgen_ray.schedule.shards import make_shards
from tests.fault_hooks import SLEEP_ENV, WRITE_DELAY_ENV
from tests.plans import plan_table, write_plan
from tests.test_faults import OutOfMemoryAboveTwo


def null_run(plan_path, out, **kw) -> RunConfig:
    defaults = dict(generator="null", num_actors=1, gpus_per_actor=0, shard_size=2, progress=False)
    defaults.update(kw)
    return RunConfig(plan_path=str(plan_path), out=str(out), **defaults)


def plan_shards(tmp_path, clips: int, shard_size: int):
    path = write_plan(tmp_path / "plan.parquet", plan_table(clips, durations=(1.0,)))
    return path, make_shards(validate_plan(pq.read_table(path)), shard_size)


def assert_pipelined(results: list[ShardResult]) -> None:
    """One generator at a time, and each next shard generating before the one before it committed."""
    results = sorted(results, key=lambda r: r.generate_start)
    for before, after in zip(results, results[1:]):
        assert after.generate_start >= before.generate_end, "two shards generated at once on one model"
        assert after.generate_start < before.committed_at, "the generator waited for a write"
    for r in results:  # the stages add up to the shard's time, generation holding the model
        assert r.seconds == pytest.approx(r.generate_seconds + r.stage_seconds["write"])
        assert r.stage_seconds["generate"] + r.stage_seconds["postprocess"] <= r.generate_seconds
        assert r.generate_start <= r.generate_end <= r.committed_at


def test_ray_actor_generates_the_next_shard_while_the_last_one_is_written(ray_local, tmp_path):
    path, shards = plan_shards(tmp_path, 8, 2)
    out = tmp_path / "out"
    # All four shards in flight on the one actor at once, so what is seen is the actor's own
    # behaviour, not how fast this (shared, 2-core) machine's driver hands out the next shard.
    run = null_run(path, out, max_inflight_per_actor=4, actor_env={SLEEP_ENV: "0.1", WRITE_DELAY_ENV: "0.3"})

    result = drive(run, Output(str(out)), shards)

    assert not result.failed and len(result.results) == 4
    assert len({r.actor_pid for r in result.results}) == 1  # all on the one actor
    assert_pipelined(result.results)
    # a result came back only once its shard was committed: all four are, each once
    assert sorted(committed_shard_ids(Output(str(out)))) == sorted(s.shard_id for s in shards)


def test_in_process_worker_is_thread_safe_and_oom_halving_stays_per_shard(tmp_path, monkeypatch):
    monkeypatch.setenv(SLEEP_ENV, "0.01")
    path, shards = plan_shards(tmp_path, 12, 6)
    plain = ShardWorker(null_run(path, tmp_path / "plain"))
    for shard in shards:
        plain.run_shard(shard)

    monkeypatch.setenv(WRITE_DELAY_ENV, "0.5")
    worker = ShardWorker(null_run(path, tmp_path / "threaded", engine=EngineConfig(batch_size=8)))
    worker.generator = OutOfMemoryAboveTwo(worker.generator, batch_size=8)
    with ThreadPoolExecutor(2) as pool:  # what a Ray actor with max_concurrency=2 does
        results = list(pool.map(worker.run_shard, shards))

    # The first shard to get the model halves the batch twice; the other starts at the halved size.
    assert worker.generator.batch_sizes_tried == [8, 4, 2, 2]
    assert sorted(r.oom_splits for r in results) == [0, 2]
    assert_pipelined(results)
    for shard in shards:
        for rel in shard_paths(shard.shard_id):
            assert (tmp_path / "threaded" / rel).read_bytes() == (tmp_path / "plain" / rel).read_bytes()
