"""Progress counts clips as batches finish: the actors report per batch, the driver polls them.

A real run on the session's Ray with the null generator, slowed per clip, and shards big enough
that progress.json is rewritten (every 5 s) while the first shard is still generating.
"""

from __future__ import annotations

import json
import threading
import time

import pyarrow.parquet as pq

from birdgen_ray.config import RunConfig
from birdgen_ray.index.run_status import run_line
from birdgen_ray.io.layout import PROGRESS_FILE
from birdgen_ray.schedule.runner import submit
from tests.fault_hooks import SLEEP_ENV
from tests.plans import plan_table, write_plan

CLIPS, SHARD = 24, 12
SLEEP_S = 0.6  # a shard generates for ~7 s: longer than the 5 s between two writes of progress.json


def test_progress_json_counts_clips_in_flight_before_the_first_shard_commits(ray_local, tmp_path):
    plan = write_plan(tmp_path / "plan.parquet", plan_table(CLIPS))
    out = tmp_path / "out"
    snapshots: list[tuple[dict, int]] = []  # (progress.json, shard indexes committed when it was read)
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                record = json.loads((out / PROGRESS_FILE).read_text())
                committed = len(list((out / "shards").glob("*.parquet"))) if (out / "shards").exists() else 0
                if not snapshots or snapshots[-1][0] != record:
                    snapshots.append((record, committed))
            except (OSError, ValueError):  # not written yet
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        summary = submit(
            RunConfig(
                plan_path=plan,
                out=str(out),
                generator="null",
                num_actors=1,
                gpus_per_actor=0,
                shard_size=SHARD,
                progress=False,
                actor_env={SLEEP_ENV: str(SLEEP_S)},
            )
        )
    finally:
        stop.set()
        watcher.join(timeout=10)

    # before any shard committed, the driver already counted clips the actor had generated
    early = [record for record, committed in snapshots if record["state"] == "running" and committed == 0]
    assert any(r["in_flight"] > 0 and r["done"] == 0 for r in early), [r["in_flight"] for r, _ in snapshots]
    moving = next(r for r in early if r["in_flight"] > 0)
    assert 0 < moving["in_flight"] <= SHARD and moving["clips_per_second"] > 0  # one shard's worth at most
    line = run_line(moving, {"token": moving["run_id"], "ttl_s": 300.0}, moving["heartbeat"])
    assert f"{moving['in_flight']} in flight" in line, line
    # never a clip counted twice: committed + in flight stays within the plan
    assert all(r["done"] + r["in_flight"] <= CLIPS for r, _ in snapshots)

    final = json.loads((out / PROGRESS_FILE).read_text())
    assert (final["state"], final["done"], final["generated"], final["in_flight"], final["failed"]) == (
        "finished",
        CLIPS,
        CLIPS,
        0,
        0,
    )
    ids = pq.read_table(out / "index.parquet", columns=["clip_id"])["clip_id"].to_pylist()
    assert len(ids) == len(set(ids)) == CLIPS and summary["generated_this_run"] == CLIPS
