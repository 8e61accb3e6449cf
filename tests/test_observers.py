"""The bar and progress.json follow the drive loop's events (schedule/observers.py), without Ray."""

from __future__ import annotations

import io
import json

import pyarrow as pa
from rich.console import Console

from birdgen_ray.io.layout import PROGRESS_FILE
from birdgen_ray.io.storage import Output
from birdgen_ray.schedule.actor import ShardResult
from birdgen_ray.schedule.observers import ProgressObserver, StateObserver
from birdgen_ray.schedule.progress import RunProgress
from birdgen_ray.schedule.run_state import RunState
from birdgen_ray.schedule.shards import ShardSpec


def _shard(shard_id: str, clips: int) -> ShardSpec:
    return ShardSpec(shard_id, pa.table({"clip_id": [f"{shard_id}-{i}" for i in range(clips)]}))


def _events(observers) -> None:
    """A small run as the loop tells it: two actors start, clips in flight, one shard commits, one fails."""
    for observer in observers:
        observer.actor_started({"engine": {"batch_size": {"value": 8, "why": "fits"}}}, True)
        observer.actor_started({"engine": {"batch_size": {"value": 8, "why": "fits"}}}, False)
        observer.waiting("waiting for 1 actor")
        observer.clips_in_flight(3)
        observer.shard_committed(1, ShardResult("s1", clips=4, bytes_written=10, seconds=1.0))
        observer.shard_failed(_shard("s2", 2), "boom")
        observer.clips_in_flight(1)
        observer.close()


def test_the_bar_counts_committed_failed_and_in_flight_clips_and_says_the_engine_once():
    text = io.StringIO()
    progress = RunProgress(10, enabled=False, console=Console(file=text, width=200))
    _events([ProgressObserver(progress)])
    assert (progress.done, progress.failures, progress.in_flight_clips) == (6, 2, 1)
    assert text.getvalue().splitlines() == ["engine batch size: 8 (fits)", "waiting for 1 actor"]


def test_progress_json_records_the_same_run(tmp_path):
    output = Output(str(tmp_path))
    state = RunState(output, "run-1", planned=10, already_done=0, lease_ttl_s=60)
    _events([StateObserver(state)])  # the first in-flight report writes the record: its first write
    written = json.loads((tmp_path / PROGRESS_FILE).read_text())
    assert (written["generated"], written["in_flight"], written["failed"]) == (0, 3, 0)
    state.write()
    written = json.loads((tmp_path / PROGRESS_FILE).read_text())
    assert (written["generated"], written["done"], written["failed"], written["in_flight"]) == (4, 4, 2, 1)
    assert written["actors"] == {"1": "s1"}
