"""The driver's per-clip bookkeeping at augmentation scale (10^5 rows) is column-wise and gives what
the plain Python-set definitions give: deduplication of clips committed twice, which plan rows are
still pending, and the failure records a run prunes. Tables are built directly (no generation)."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pytest

from birdgen_ray.index.reader import _one_row_per_clip
from birdgen_ray.io.layout import FAILURES_DIR
from birdgen_ray.io.storage import Output
from birdgen_ray.schedule.failures import prune_failures
from birdgen_ray.schedule.shards import pending_rows

ROWS = 100_000


def clip_ids(n: int) -> list[str]:
    return [f"sp{i % 300:03d}-{i:012x}" for i in range(n)]


@pytest.fixture(scope="module")
def with_duplicates() -> pa.Table:
    """Every clip in a shard of its own; one in ten also in a later shard (a late duplicate commit), shuffled."""
    rng = random.Random(7)
    ids = clip_ids(ROWS)
    rows = [(cid, f"shards/shard-{rng.randrange(500):04d}.tar", i) for i, cid in enumerate(ids)]
    rows += [(cid, f"shards/shard-{rng.randrange(500):04d}.tar", ROWS + i) for i, cid in enumerate(ids[::10])]
    rng.shuffle(rows)
    clip, shard, row = zip(*rows)
    return pa.table({"clip_id": pa.array(clip), "shard": pa.array(shard), "row": pa.array(row, pa.int64())})


def test_each_clip_keeps_the_row_of_its_first_shard_by_name(with_duplicates):
    first: dict[str, tuple[str, int]] = {}
    for cid, shard, row in zip(*(with_duplicates[c].to_pylist() for c in ("clip_id", "shard", "row"))):
        if cid not in first or shard < first[cid][0]:
            first[cid] = (shard, row)
    expected = [(cid, *first[cid]) for cid in sorted(first)]

    deduped = _one_row_per_clip(with_duplicates)
    got = list(zip(*(deduped[c].to_pylist() for c in ("clip_id", "shard", "row"))))
    assert len(got) == ROWS
    # equal shard names: which duplicate row wins does not matter, its content is the same clip
    assert [(c, s) for c, s, _ in got] == [(c, s) for c, s, _ in expected]


def test_an_index_already_sorted_and_unique_is_kept_as_is(with_duplicates):
    index = _one_row_per_clip(with_duplicates)
    assert _one_row_per_clip(index) is index  # no sort, no copy: a rerun over 10^6 clips reads and goes on


def test_pending_rows_are_the_plan_rows_not_committed():
    ids = clip_ids(ROWS)
    plan = pa.table({"clip_id": ids, "seed": pa.array(range(ROWS), pa.int64())})
    committed = pa.chunked_array([ids[1::3], ["not-in-this-plan"], ids[2::3]])  # as read from several files
    done = set(committed.to_pylist())
    expected = [cid for cid in ids if cid not in done]
    assert pending_rows(plan, committed)["clip_id"].to_pylist() == expected
    assert pending_rows(plan, None) is plan and pending_rows(plan, pa.chunked_array([], pa.string())) is plan


def test_failure_records_are_pruned_once_all_their_clips_are_committed(tmp_path):
    output = Output(str(tmp_path))
    ids = clip_ids(ROWS)
    index = pa.table({"clip_id": pa.chunked_array([ids[: ROWS // 2], ids[ROWS // 2 :]])})
    records = {"all-done": ids[10:20], "one-missing": [*ids[30:40], "still-missing"], "none-done": ["a", "b"]}
    for name, record_ids in records.items():
        output.write_json(f"{FAILURES_DIR}/{name}.json", {"shard_id": name, "clip_ids": record_ids, "error": "x"})

    prune_failures(output, index)
    assert output.list(FAILURES_DIR, ".json") == ["none-done.json", "one-missing.json"]
    assert json.loads((tmp_path / FAILURES_DIR / "one-missing.json").read_text())["clip_ids"][-1] == "still-missing"

    prune_failures(output, None)  # nothing committed: nothing to prune
    assert len(output.list(FAILURES_DIR, ".json")) == 2
