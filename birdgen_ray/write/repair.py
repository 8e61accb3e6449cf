"""Repair damaged shards: keep the intact clips, drop the damaged ones so that the run makes them again.

A damaged shard (index/integrity.py) is rewritten from its intact clips, whose bytes are checked
against their sha256, as a new shard named by those clips (shards/shard_id_for(kept ids)): tar,
sidecars, then index, as any commit. Only then is the damaged shard removed, index first. Its
damaged clips are then in no committed shard, so the same submit generates them again, exactly once.
A crash between the two leaves both shards committed with the intact clips in each: readers keep
one row per clip, and the next submit finds the damaged shard again and finishes the repair.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile

import pyarrow as pa
import pyarrow.compute as pc

from birdgen_ray.index.integrity import ShardDamage, damaged_clip_ids, known_damage
from birdgen_ray.io.errors import CorruptFile
from birdgen_ray.io.layout import DAMAGED_DIR, SHARDS_DIR, SIDECAR_SUFFIXES, has_audio, shard_paths
from birdgen_ray.io.storage import Output
from birdgen_ray.write.shard_writer import _add_member, check_stored_size, clip_meta

log = logging.getLogger(__name__)


def record_damage(output: Output, damage: ShardDamage) -> None:
    """`check`'s finding, for the next submit (which removes it once the shard is repaired)."""
    record = {"shard_id": damage.shard_id, "reason": damage.reason, "bad_clip_ids": list(damage.bad_clip_ids)}
    output.write_json(f"{DAMAGED_DIR}/{damage.shard_id}.json", record)


def clear_damage(output: Output, shard_id: str) -> None:
    output.remove(f"{DAMAGED_DIR}/{shard_id}.json")


def repair_damaged(output: Output, index: pa.Table | None) -> tuple[int, int]:
    """Repair every shard a listing or `check` found damaged; returns (shards repaired, clips to make
    again). Only the lease holder may call this (it rewrites committed shards)."""
    damaged = known_damage(output, index)
    return len(damaged), sum(repair_shard(output, damage.shard_id) for damage in damaged)


def repair_shard(output: Output, shard_id: str) -> int:
    """Rewrite one damaged shard without its damaged clips; returns how many clips it lost."""
    tar_rel, index_rel = shard_paths(shard_id)
    try:
        index = output.read_table(index_rel)
    except CorruptFile:
        index = None  # nothing locates its clips: all of them are made again
    except FileNotFoundError:  # repaired already (a record left by a run that died after it)
        clear_damage(output, shard_id)
        return 0
    tar = _read_or_empty(output, tar_rel)
    lost = index.num_rows if index is not None else 0
    if index is not None:
        bad = set(damaged_clip_ids(index.to_pylist(), tar))
        kept = index.filter(pc.invert(pc.is_in(index["clip_id"], pa.array(sorted(bad), pa.string()))))
        lost = len(bad)
        new_id = _shard_id(kept["clip_id"].to_pylist())
        if kept.num_rows:
            _write_shard(output, shard_id, new_id, kept, tar)
        if new_id == shard_id:  # only its size was off (bytes appended): rewritten in place
            clear_damage(output, shard_id)
            return lost
    for rel in (index_rel, tar_rel, *(f"{SHARDS_DIR}/{shard_id}{suffix}" for suffix in SIDECAR_SUFFIXES)):
        output.remove(rel)  # the index first: from here on the shard is not committed
    clear_damage(output, shard_id)
    log.warning("%s was damaged: rewritten without its %d damaged clips, which this run makes again", tar_rel, lost)
    return lost


def _read_or_empty(output: Output, rel: str) -> bytes:
    try:
        return output.read_bytes(rel)
    except FileNotFoundError:
        return b""


def _shard_id(clip_ids: list[str]) -> str:
    """Named by its clips, as schedule/shards.py names a shard: the same repair gives the same files."""
    digest = hashlib.sha256("\n".join(sorted(clip_ids)).encode()).hexdigest()
    return f"shard-{digest[:20]}"


def _write_shard(output: Output, old_id: str, new_id: str, kept: pa.Table, old_tar: bytes) -> None:
    """The intact clips repacked into a shard of their own, committed as commit_shard commits."""
    tar_rel, index_rel = shard_paths(new_id)
    buf = io.BytesIO()
    offsets = []
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for row in kept.to_pylist():
            if not has_audio(row):
                offsets.append(int(row["offset"]))
                continue
            start = int(row["offset"])
            offset, _ = _add_member(tar, f"{row['clip_id']}.wav", old_tar[start : start + int(row["size"])])
            offsets.append(offset)
            plan_row = {key: row[key] for key in ("label", "prompt", "seed")}
            _add_member(
                tar, f"{row['clip_id']}.json", clip_meta(plan_row, row["clip_id"], row["final_seed"], row["verdict"])
            )
    data = buf.getvalue()
    kept = _replace(kept, "shard", pa.array([tar_rel] * kept.num_rows, pa.string()))
    kept = _replace(kept, "offset", pa.array(offsets, pa.int64()))
    kept = _replace(kept, "shard_bytes", pa.array([len(data)] * kept.num_rows, pa.int64()))
    output.write_bytes(tar_rel, data)
    check_stored_size(output, tar_rel, len(data))
    for suffix in SIDECAR_SUFFIXES:
        sidecar = f"{SHARDS_DIR}/{old_id}{suffix}"
        if output.exists(sidecar):
            table = output.read_table(sidecar)
            table = table.filter(pc.is_in(table["clip_id"], kept["clip_id"].combine_chunks()))
            output.write_table(f"{SHARDS_DIR}/{new_id}{suffix}", table)
    output.write_table(index_rel, kept)


def _replace(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), table.schema.field(name), values)
    return table.append_column(name, values)
