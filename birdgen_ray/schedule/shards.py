"""Deterministic shards: which clips go together, and the shard's name.

Pending clips are ordered by (duration, clip_id) so a shard holds clips of one length where it can
(fixed-shape batches), then cut into runs of `shard_size`. A shard's id is a hash of its clip ids:
the same pending set always gives the same shards, and a rerun that regenerates a shard writes
byte-identical files under the same names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class ShardSpec:
    shard_id: str
    plan_slice: pa.Table  # the plan rows of this shard, all columns

    @property
    def num_clips(self) -> int:
        return self.plan_slice.num_rows


def shard_id_for(clip_ids: list[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(clip_ids)).encode()).hexdigest()
    return f"shard-{digest[:20]}"


def pending_rows(plan: pa.Table, done_ids: pa.ChunkedArray | pa.Array | None) -> pa.Table:
    """The plan rows whose clip_id is not among `done_ids` (column-wise: 10^6 ids, no Python set)."""
    if done_ids is None or len(done_ids) == 0:
        return plan
    if isinstance(done_ids, pa.ChunkedArray):
        done_ids = done_ids.combine_chunks()
    return plan.filter(pc.invert(pc.is_in(plan["clip_id"], value_set=done_ids)))


def make_shards(pending: pa.Table, shard_size: int) -> list[ShardSpec]:
    if shard_size < 1:
        raise ValueError("shard_size must be >= 1")
    order = pc.sort_indices(pending, sort_keys=[("duration_s", "ascending"), ("clip_id", "ascending")])
    shards = []
    for start in range(0, pending.num_rows, shard_size):
        # take() copies the shard's rows into buffers of their own; a slice would keep the whole
        # plan's buffers and ship all of them to the actor with every shard task.
        piece = pending.take(order.slice(start, shard_size))
        shards.append(ShardSpec(shard_id_for(piece["clip_id"].to_pylist()), piece))
    return shards
