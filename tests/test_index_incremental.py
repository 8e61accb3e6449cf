"""index.parquet is rebuilt from the last index plus the shards committed since, and the result is
always what a full rebuild from every shard index gives (real shards from the real writer)."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pytest

from birdgen_ray.config import RunConfig
from birdgen_ray.index.reader import committed_index, consolidate, read_shard_indexes
from birdgen_ray.io.layout import INDEX_FILE, shard_paths
from birdgen_ray.io.storage import Output
from birdgen_ray.plan.validate import validate_plan
from birdgen_ray.schedule.actor import ShardWorker
from birdgen_ray.schedule.shards import make_shards
from tests.plans import plan_table, write_plan


class CountingOutput(Output):
    """A real local output that records which files were read whole."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads: list[str] = []

    def read_bytes(self, rel: str) -> bytes:
        self.reads.append(rel)
        return super().read_bytes(rel)


@pytest.fixture()
def made(tmp_path):
    """An output with 4 committed, consolidated shards of 4 clips, and the 24-row plan they came from."""
    plan = validate_plan(plan_table(24))
    plan_path = write_plan(tmp_path / "plan.parquet", plan)
    out = tmp_path / "out"
    writer = ShardWorker(
        RunConfig(plan_path=plan_path, out=str(out), generator="null", gpus_per_actor=0, progress=False)
    )
    for shard in make_shards(plan.slice(0, 16), 4):
        writer.run_shard(shard)
    consolidate(Output(str(out)))
    return plan, out, writer


def full_rebuild(output: Output) -> pa.Table:
    """The reference: every committed shard index read, one row per clip (first shard by name wins)."""
    table = read_shard_indexes(output).sort_by([("clip_id", "ascending"), ("shard", "ascending")])
    first = {}
    for i, clip_id in enumerate(table["clip_id"].to_pylist()):
        first.setdefault(clip_id, i)
    return table.take(pa.array(sorted(first.values()), pa.int64()))


def assert_same_rows(table: pa.Table, expected: pa.Table) -> None:
    """Row for row and value for value (NaN equal to NaN: the null generator has no CLAP score)."""
    pd.testing.assert_frame_equal(table.to_pandas(), expected.to_pandas())


def shard_index_reads(output: CountingOutput) -> list[str]:
    return sorted(rel for rel in output.reads if rel.startswith("shards/"))


def test_an_up_to_date_index_is_the_only_file_read(made):
    _, out, _ = made
    output = CountingOutput(str(out))
    table = committed_index(output)
    assert output.reads == [INDEX_FILE]
    assert table.num_rows == 16
    assert_same_rows(table, full_rebuild(Output(str(out))))


def test_only_shards_committed_since_the_last_index_are_read(made):
    plan, out, writer = made
    new = make_shards(plan.slice(16, 8), 4)
    for shard in new:
        writer.run_shard(shard)  # committed after index.parquet was written (an interrupted run)
    output = CountingOutput(str(out))
    table = consolidate(output)
    assert shard_index_reads(output) == sorted(shard_paths(s.shard_id)[1] for s in new)
    assert table.num_rows == 24
    assert_same_rows(table, full_rebuild(Output(str(out))))
    assert_same_rows(Output(str(out)).read_table(INDEX_FILE), table)


def test_a_late_duplicate_commit_keeps_the_same_row_as_a_full_rebuild(made):
    plan, out, writer = made
    # the same 6 clips again under another shard id, as an actor of a killed driver might commit them
    late = make_shards(plan.slice(2, 6), 6)[0]
    writer.run_shard(late)
    table = committed_index(Output(str(out)))
    assert table.num_rows == 16
    assert sorted(table["clip_id"].to_pylist()) == sorted(plan.slice(0, 16)["clip_id"].to_pylist())
    assert_same_rows(table, full_rebuild(Output(str(out))))


def test_a_shard_removed_by_hand_falls_back_to_reading_every_shard(made):
    plan, out, writer = made
    late = make_shards(plan.slice(0, 8), 8)[0]  # duplicates of the first two shards' clips
    writer.run_shard(late)
    consolidate(Output(str(out)))  # index.parquet now keeps one row per clip, from whichever shard sorts first
    removed = sorted(Output(str(out)).read_table(INDEX_FILE)["shard"].unique().to_pylist())[0]
    os.remove(out / removed)  # its clips may still be in a shard the index deduplicated away
    output = CountingOutput(str(out))
    table = committed_index(output)
    assert len(shard_index_reads(output)) == 4  # every committed shard (5 minus the one removed)
    assert_same_rows(table, full_rebuild(Output(str(out))))


def test_an_output_with_nothing_committed_has_no_index(tmp_path):
    assert committed_index(Output(str(tmp_path / "empty"))) is None
    assert consolidate(Output(str(tmp_path / "empty"))) is None
    assert not (tmp_path / "empty" / INDEX_FILE).exists()
