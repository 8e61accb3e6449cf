"""The commit rule with sidecars: an embeddings or species file is never a shard index, and is garbage
when its shard is not committed."""

from __future__ import annotations

from birdgen_ray.io.layout import embeddings_path, list_shards, shard_paths, species_path
from birdgen_ray.io.storage import Output
from birdgen_ray.write.shard_writer import remove_uncommitted


def test_sidecars_follow_their_shard(tmp_path):
    output = Output(str(tmp_path))
    for rel in (*shard_paths("a"), embeddings_path("a"), species_path("a")):  # committed, with its sidecars
        output.write_bytes(rel, b"x")
    output.write_bytes(shard_paths("b")[0], b"x")  # a writer died after the tar and the embeddings
    output.write_bytes(embeddings_path("b"), b"x")
    output.write_bytes(species_path("c"), b"x")  # a sidecar whose shard was cleaned away

    listing = list_shards(output)
    assert listing.committed == ["a"] and listing.orphan_tars == ["b"] and listing.dangling_indexes == []
    assert list(listing.stray_sidecars) == ["b.embeddings.parquet", "c.species.parquet"]
    assert remove_uncommitted(output) == 3
    assert sorted(output.list("shards")) == ["a.embeddings.parquet", "a.parquet", "a.species.parquet", "a.tar"]
