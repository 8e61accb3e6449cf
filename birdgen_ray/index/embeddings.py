"""`open_embeddings(out)`: every committed clip's BirdNET embedding, in one table.

A verifying submit commits `shards/<id>.embeddings.parquet` with each shard; `birdgen-ray verify OUT`
adds `shards/<id>.species.parquet` (with an `embedding` column) to shards made without it. A shard
with both is read from the former (made with the clip). Rows come sorted by clip_id, one per clip.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from birdgen_ray.index.reader import as_output
from birdgen_ray.io.layout import SHARDS_DIR, committed_shard_ids, embeddings_path, species_path
from birdgen_ray.io.storage import Output, read_parquet
from birdgen_ray.verify.columns import EMBEDDINGS_SCHEMA


def open_embeddings(out: str | Output, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """clip_id + embedding (fixed-size list of 1024 float32) for every committed clip that has one."""
    output = as_output(out, storage_options)
    names = set(output.list(SHARDS_DIR))
    wanted = []
    for shard_id in committed_shard_ids(output):
        for rel in (embeddings_path(shard_id), species_path(shard_id)):
            if rel.split("/", 1)[1] in names:
                wanted.append(rel)
                break
    blobs = output.read_many(wanted)
    tables = [read_parquet(blobs[rel]).select(["clip_id", "embedding"]) for rel in wanted if rel in blobs]
    if not tables:
        return EMBEDDINGS_SCHEMA.empty_table()
    table = pa.concat_tables([t.cast(EMBEDDINGS_SCHEMA) for t in tables])
    order = pc.sort_indices(table, [("clip_id", "ascending")])
    table = table.take(order)
    # a clip committed twice (a late writer of a dead run): keep its first row
    ids = table["clip_id"]
    keep = pc.invert(pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1))) if len(ids) > 1 else None
    if keep is not None:
        table = table.filter(pa.concat_arrays([pa.array([True]), *keep.chunks]))
    return table
