"""Damaged shards: a tar whose size or clip bytes do not match what its index recorded.

Two checks, a cheap one and a full one:
- sizes (`size_damage`): one listing of shards/ against each shard's recorded `shard_bytes` (or, for
  indexes written before that column, the end of its last clip): a truncated tar shows here;
- hashes (`verify_shard`): every clip's bytes against its `sha256`: a flipped bit shows here.
  `birdgen-ray check` runs it, one Ray task per shard, and leaves a record per damaged shard in
  `_birdgen/damaged/`; the next submit rewrites such a shard without its damaged clips
  (write/repair.py) and generates them again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from birdgen_ray.io.errors import CorruptFile
from birdgen_ray.io.layout import DAMAGED_DIR, SHARDS_DIR, has_audio, shard_paths
from birdgen_ray.io.storage import Output


@dataclass(frozen=True)
class ShardDamage:
    shard_id: str
    reason: str
    bad_clip_ids: tuple[str, ...] = field(default=())  # empty when only the size was checked

    def line(self) -> str:
        clips = f", {len(self.bad_clip_ids)} clips damaged" if self.bad_clip_ids else ""
        return f"{shard_paths(self.shard_id)[0]}: {self.reason}{clips}"


class DamagedClip(CorruptFile):
    """A clip whose stored bytes do not match its index row (truncated or changed)."""


def shard_id_of(shard_rel: str) -> str:
    """`shards/<id>.tar` -> `<id>`."""
    return shard_rel.rsplit("/", 1)[-1].removesuffix(".tar")


def clip_problem(row: dict, data: bytes) -> str | None:
    """Why `data` (what was read for the row's clip) is not its clip, or None when it is."""
    if len(data) != int(row["size"]):
        return f"{len(data)} of its {int(row['size'])} bytes are there"
    expected = row.get("sha256")
    if expected and hashlib.sha256(data).hexdigest() != expected:
        return "its bytes do not match their sha256"
    return None


def damaged_clip_ids(rows: list[dict], tar: bytes) -> list[str]:
    """The clips of a shard's index rows whose bytes in `tar` (the whole shard) are not theirs."""
    bad = []
    for row in rows:
        if has_audio(row):
            start = int(row["offset"])
            if clip_problem(row, tar[start : start + int(row["size"])]):
                bad.append(row["clip_id"])
    return bad


def verify_shard(output: Output, shard_id: str) -> ShardDamage | None:
    """Read a committed shard whole and check its size and every clip's hash; None when intact."""
    tar_rel, index_rel = shard_paths(shard_id)
    try:
        rows = output.read_table(index_rel).to_pylist()
    except CorruptFile as exc:
        return ShardDamage(shard_id, f"its index {index_rel} is corrupt ({exc.reason})")
    try:
        tar = output.read_bytes(tar_rel)
    except FileNotFoundError:
        tar = b""
    bad = tuple(damaged_clip_ids(rows, tar))
    expected = next((row.get("shard_bytes") for row in rows if row.get("shard_bytes")), None)
    if expected and len(tar) != expected:
        return ShardDamage(shard_id, f"{len(tar)} bytes, expected {expected}", bad)
    if bad:
        return ShardDamage(shard_id, "clip bytes do not match their sha256", bad)
    return None


def size_damage(output: Output, index: pa.Table | None) -> list[ShardDamage]:
    """Shards whose stored size differs from their recorded one, from one listing of shards/."""
    if index is None or not index.num_rows:
        return []
    stored = output.sizes(SHARDS_DIR)
    columns = [c for c in ("shard", "offset", "size", "shard_bytes") if c in index.column_names]
    table = index.select(columns)
    table = table.append_column("end", pc.add(table["offset"], table["size"]))
    if "shard_bytes" not in table.column_names:
        table = table.append_column("shard_bytes", pa.nulls(table.num_rows, pa.int64()))
    per_shard = table.group_by("shard").aggregate([("end", "max"), ("shard_bytes", "max")]).to_pylist()
    damaged = []
    for shard in per_shard:
        size = stored.get(shard["shard"].rsplit("/", 1)[-1])
        expected = shard["shard_bytes_max"]
        if size is None:
            continue  # removed since the index was read: the commit rule's business, not damage
        if (expected is not None and size != expected) or size < (shard["end_max"] or 0):
            want = f"expected {expected}" if expected is not None else f"its clips end at byte {shard['end_max']}"
            damaged.append(ShardDamage(shard_id_of(shard["shard"]), f"{size} bytes, {want}"))
    return sorted(damaged, key=lambda d: d.shard_id)


def recorded_damage(output: Output) -> list[ShardDamage]:
    """What `birdgen-ray check` found and the next submit has not repaired yet."""
    damaged = []
    for name in output.list(DAMAGED_DIR, ".json"):
        try:
            record = output.read_json(f"{DAMAGED_DIR}/{name}")
        except (FileNotFoundError, ValueError):
            continue
        damaged.append(ShardDamage(record["shard_id"], record["reason"], tuple(record.get("bad_clip_ids", ()))))
    return damaged


def known_damage(output: Output, index: pa.Table | None) -> list[ShardDamage]:
    """Damage a listing shows, plus what `check` recorded, one entry per shard (the record's first)."""
    found = {d.shard_id: d for d in size_damage(output, index)}
    for damage in recorded_damage(output):
        found[damage.shard_id] = damage
    return [found[sid] for sid in sorted(found)]
