"""Read an output: committed shards, the consolidated index, single clips."""

from __future__ import annotations

import logging
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from birdgen_ray.index.integrity import DamagedClip, clip_problem
from birdgen_ray.io.audio import decode_wav
from birdgen_ray.io.errors import CorruptFile
from birdgen_ray.io.layout import INDEX_FILE, PLAN_FILE, committed_shard_ids, has_audio, shard_paths
from birdgen_ray.io.storage import Output, read_parquet

log = logging.getLogger(__name__)


def as_output(out: str | Output, storage_options: dict[str, Any] | None = None) -> Output:
    return out if isinstance(out, Output) else Output(out, storage_options or {})


def read_shard_indexes(output: Output, shard_ids: list[str] | None = None) -> pa.Table | None:
    """Shard indexes as one table (fetched concurrently on object storage); all committed by default."""
    ids = committed_shard_ids(output) if shard_ids is None else shard_ids
    blobs = output.read_many([shard_paths(sid)[1] for sid in ids])
    tables = [read_parquet(data) for data in blobs.values()]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def committed_index(output: Output, known: pa.Table | None = None) -> pa.Table | None:
    """Every committed clip once, sorted by clip_id: what a full rebuild from the shard indexes gives.

    Shard indexes never change once committed, so the rows of `known` (by default the last
    index.parquet) stand in for the shards they cover, and only the shards committed since are read:
    a rerun over 10^6 clips reads one index instead of thousands.
    """
    committed = committed_shard_ids(output)
    if known is None:
        known = last_index(output)
    covered: set[str] = set()
    parts = []
    if known is not None and known.num_rows:
        covered = set(pc.unique(known["shard"]).to_pylist())
        if covered <= {shard_paths(sid)[0] for sid in committed}:
            parts.append(known)
        else:  # a shard was removed by hand: its clips may sit in shards `known` deduplicated away
            covered = set()
    new = read_shard_indexes(output, [sid for sid in committed if shard_paths(sid)[0] not in covered])
    if new is not None:
        parts.append(new)
    if not parts or not sum(part.num_rows for part in parts):
        return None
    return _one_row_per_clip(pa.concat_tables(parts, promote_options="permissive"))


def last_index(output: Output) -> pa.Table | None:
    """index.parquet, or None when there is none or it is corrupt: the shard indexes are the source
    of truth, and a corrupt copy of them is said in one line and read past, never a blocked run."""
    if not output.exists(INDEX_FILE):
        return None
    try:
        return output.read_table(INDEX_FILE)
    except CorruptFile as exc:
        log.warning("%s is corrupt (%s): rebuilt from the shard indexes, which hold every clip", exc.where, exc.reason)
        return None


def _one_row_per_clip(table: pa.Table) -> pa.Table:
    """A clip committed twice (a driver killed while an actor was still writing) keeps the row of
    the first shard by name, so the result depends neither on timing nor on what was read when.

    Column-wise, one copy at most: an index.parquet alone is already sorted and unique (returned as
    is), and only the two key columns are sorted, not the whole table.
    """
    ids = table["clip_id"]
    if _strictly_increasing(ids):
        return table
    order = pc.sort_indices(
        table.select(["clip_id", "shard"]), sort_keys=[("clip_id", "ascending"), ("shard", "ascending")]
    )
    sorted_ids = ids.take(order)
    first = pc.not_equal(sorted_ids.slice(1), sorted_ids.slice(0, len(sorted_ids) - 1))  # differs from the one before
    keep = pa.concat_arrays([pa.array([True]), *first.chunks]) if len(sorted_ids) else pa.array([], pa.bool_())
    return table.take(order.filter(keep))


def _strictly_increasing(values: pa.ChunkedArray) -> bool:
    if len(values) < 2:
        return True
    return bool(pc.all(pc.greater(values.slice(1), values.slice(0, len(values) - 1))).as_py())


def consolidate(output: Output, known: pa.Table | None = None) -> pa.Table | None:
    """Rewrite index.parquet from `known` plus the shards committed since (see committed_index)."""
    table = committed_index(output, known)
    if table is not None:
        output.write_table(INDEX_FILE, table)
    return table


def gate_failing_ids(index: pa.Table) -> pa.Array:
    """Clip ids kept with a failing quality verdict ("fail:<reasons>") after every retry."""
    return index.filter(pc.starts_with(index["verdict"], "fail"))["clip_id"].combine_chunks()


def open_index(out: str | Output, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """The consolidated index of an output (falls back to the shard indexes mid-run)."""
    output = as_output(out, storage_options)
    table = last_index(output)
    if table is not None:
        return table
    table = read_shard_indexes(output)
    if table is None:
        raise FileNotFoundError(_why_no_index(output))
    return table


def _why_no_index(output: Output) -> str:
    """Not there, not an output at all, or an output with nothing committed yet: three different fixes."""
    if not output.fs.exists(output.root):
        return f"no index in {output.uri}: it does not exist"
    if not output.exists(PLAN_FILE):
        return f"no index in {output.uri}: it is not a birdgen-ray output (no {PLAN_FILE}, no shards)"
    return f"no index in {output.uri}: nothing has been committed there yet"


def select_labels(index: pa.Table, labels: Iterable[str], uri: str) -> pa.Table:
    """The rows of `index` whose label is one of `labels`; a ValueError names any label not in it."""
    wanted = sorted(set(labels))
    unknown = sorted(set(wanted) - set(pc.unique(index["label"]).to_pylist()))
    if unknown:
        raise ValueError(f"labels not in the index of {uri}: {', '.join(unknown)}")
    return index.filter(pc.is_in(index["label"], value_set=pa.array(wanted, pa.string())))


def read_clip_bytes(out: str | Output, row: dict, storage_options: dict[str, Any] | None = None) -> bytes:
    """The WAV bytes of one clip, located by its index row alone (one ranged read), checked against its
    sha256: damaged bytes raise DamagedClip, never a silently changed clip."""
    if not has_audio(row):
        raise ValueError(
            f"clip {row.get('clip_id')} has no audio: it failed the species check ({row.get('verdict')}) in a run "
            "with --drop-species-failures"
        )
    output = as_output(out, storage_options)
    data = output.read_range(row["shard"], int(row["offset"]), int(row["size"]))
    problem = clip_problem(row, data)
    if problem:
        where = f"{output.uri.rstrip('/')}/{row['shard']}"
        raise DamagedClip(
            where,
            f"clip {row['clip_id']}: {problem}",
            f"`birdgen-ray check {output.uri}` names every damaged shard; the same submit makes their clips again",
        )
    return data


def read_clip(
    out: str | Output, clip: str | dict, storage_options: dict[str, Any] | None = None
) -> tuple[np.ndarray, int]:
    """`audio, sample_rate = read_clip("out/", "clip-id")`: float32 mono and its rate."""
    output = as_output(out, storage_options)
    row = clip if isinstance(clip, dict) else find_row(output, clip)
    return decode_wav(read_clip_bytes(output, row))


def find_row(output: Output, clip_id: str) -> dict:
    table = open_index(output)
    match = table.filter(pc.equal(table["clip_id"], clip_id))
    if match.num_rows == 0:
        raise KeyError(f"clip {clip_id!r} is not in the index of {output.uri}")
    return match.slice(0, 1).to_pylist()[0]
