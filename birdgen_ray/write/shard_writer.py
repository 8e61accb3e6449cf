"""Pack a shard's clips into one tar of WAV members and build its index rows.

Tar members are written with fixed metadata (mtime 0, root owner), so the same clips always give
byte-identical shards. The index records each WAV's byte offset and size inside the tar, so a clip
can be read with one ranged GET, without downloading or unpacking the shard.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from typing import Callable, Sequence

import pyarrow as pa

from birdgen_ray.config import GenerationConfig
from birdgen_ray.generate.quality import SPECIES
from birdgen_ray.generate.types import GeneratedClip
from birdgen_ray.index.schema import INDEX_SCHEMA, REFERENCE_SHA256
from birdgen_ray.io.audio import encode_wav
from birdgen_ray.io.layout import SHARDS_DIR, embeddings_path, list_shards, shard_paths
from birdgen_ray.io.storage import Output
from birdgen_ray.plan.schema import PLAN_SCHEMA
from birdgen_ray.verify.columns import embeddings_table


def clip_meta(row: dict, clip_id: str, final_seed: int, verdict: str) -> bytes:
    """The `<clip_id>.json` member: label and provenance travel with the audio."""
    meta = {**row, "clip_id": clip_id, "final_seed": final_seed, "verdict": verdict}
    return json.dumps(meta, sort_keys=True).encode()


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> tuple[int, int]:
    """Append one member; returns where its data starts in the tar, and its size."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
    # The header is whatever addfile wrote before the data and its padding to 512-byte blocks;
    # deriving it saves building every header twice (a third of the packing time).
    padded = -(-info.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    return tar.offset - padded, info.size


def _left_out(clip: GeneratedClip, generation: GenerationConfig | None) -> bool:
    """A fail:species clip of a --drop-species-failures run: its index row stays, its audio does not."""
    if generation is None or not generation.drop_species_failures or not clip.verdict.startswith("fail:"):
        return False
    return SPECIES in clip.verdict.split(":", 1)[1].split(",")


def pack_shard(
    plan_slice: pa.Table, clips: Sequence[GeneratedClip], generation: GenerationConfig | None = None
) -> tuple[bytes, list[tuple[str, int, int, str | None]]]:
    """Tar bytes with `<clip_id>.wav` and `<clip_id>.json` per clip; returns
    (bytes, [(member, offset, size, sha256 of the WAV bytes)])."""
    buf = io.BytesIO()
    locations = []
    rows = plan_slice.select(["label", "prompt", "seed"]).to_pylist()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for clip, row in zip(clips, rows):
            if _left_out(clip, generation):
                locations.append(("", -1, 0, None))  # no audio: readers skip rows with size 0 (io/layout.has_audio)
                continue
            member = f"{clip.clip_id}.wav"
            wav = encode_wav(clip.audio, clip.sample_rate)
            offset, size = _add_member(tar, member, wav)
            locations.append((member, offset, size, hashlib.sha256(wav).hexdigest()))
            # WebDataset readers pair <key>.wav with <key>.json
            _add_member(tar, f"{clip.clip_id}.json", clip_meta(row, clip.clip_id, clip.final_seed, clip.verdict))
    return buf.getvalue(), locations


def index_table(
    plan_slice: pa.Table,
    clips: Sequence[GeneratedClip],
    locations: Sequence[tuple[str, int, int, str | None]],
    shard_rel: str,
    generation: GenerationConfig,
    model_id: str,
    versions: str = "{}",
    shard_bytes: int | None = None,
) -> pa.Table:
    """One index row per clip: the plan row, where its audio is, and how it was made."""
    ids = plan_slice["clip_id"].to_pylist()
    if ids != [c.clip_id for c in clips]:
        raise ValueError("generator returned clips out of plan order")
    n = len(clips)
    metric = lambda key: [float(c.metrics.get(key, float("nan"))) for c in clips]  # noqa: E731
    # null, not NaN, where the generator did not score (one take and no CLAP threshold: nothing used a score)
    clap_scores = [None if c.metrics.get("clap_score") is None else float(c.metrics["clap_score"]) for c in clips]
    columns = {name: plan_slice[name].to_pylist() for name in PLAN_SCHEMA.names}
    columns.update(
        shard=[shard_rel] * n,
        member=[loc[0] for loc in locations],
        offset=[loc[1] for loc in locations],
        size=[loc[2] for loc in locations],
        sha256=[loc[3] for loc in locations],
        shard_bytes=[shard_bytes] * n,
        sample_rate=[c.sample_rate for c in clips],
        num_samples=[len(c.audio) if loc[2] else 0 for c, loc in zip(clips, locations)],
        source_sample_rate=[c.source_sample_rate for c in clips],
        bandwidth_hz=[c.bandwidth_hz for c in clips],
        model_id=[model_id] * n,
        settings=[generation.to_json()] * n,
        settings_fingerprint=[generation.fingerprint()] * n,
        versions=[versions] * n,
        final_seed=[c.final_seed for c in clips],
        attempts=[c.attempts for c in clips],
        verdict=[c.verdict for c in clips],
        clap_score=clap_scores,
        peak_dbfs=metric("peak_dbfs"),
        rms_dbfs=metric("rms_dbfs"),
        silence_fraction=metric("silence_fraction"),
        clipping_fraction=metric("clipping_fraction"),
        nonfinite=[bool(c.metrics.get("nonfinite", 0.0)) for c in clips],
        species_confidence=metric("species_confidence"),
        species_top1=[c.species_top1 for c in clips],
        species_top1_confidence=metric("species_top1_confidence"),
        verifier=[c.verifier for c in clips],
    )
    table = pa.table({f.name: pa.array(columns[f.name], f.type) for f in INDEX_SCHEMA}, schema=INDEX_SCHEMA)
    for name in plan_slice.column_names:  # plan extras (taxon class, names, ...) ride along
        if name not in table.column_names:
            table = table.append_column(plan_slice.schema.field(name), plan_slice[name])
    if "reference" in plan_slice.column_names:  # provenance: exactly which recording the clip was made from
        sha256 = pa.array([c.reference_sha256 for c in clips], REFERENCE_SHA256.type)
        table = table.append_column(REFERENCE_SHA256, sha256)
    return table


def check_stored_size(output: Output, rel: str, expected: int) -> None:
    """A file that is not stored whole (a store that cut the upload short) fails the commit."""
    stored = output.size(rel)
    if stored != expected:
        raise OSError(f"{output.uri.rstrip('/')}/{rel} was stored with {stored} bytes instead of {expected}")


def remove_uncommitted(output: Output) -> int:
    """Delete what crashed writers left in shards/; returns how many files.

    Temporary files, a tar whose index never came, and an index whose tar was already cleaned
    away (a writer of a dead run that was still finishing): none of them is part of the dataset
    under the commit rule, so only the lock holder may call this, before and after it runs shards.
    """
    removed = output.remove_leftovers(SHARDS_DIR)
    listing = list_shards(output)
    for tar_rel in (shard_paths(sid)[0] for sid in listing.orphan_tars):
        output.remove(tar_rel)
    for index_rel in (shard_paths(sid)[1] for sid in listing.dangling_indexes):
        output.remove(index_rel)
    for name in listing.stray_sidecars:
        output.remove(f"{SHARDS_DIR}/{name}")
    return removed + len(listing.orphan_tars) + len(listing.dangling_indexes) + len(listing.stray_sidecars)


def commit_shard(
    output: Output,
    shard_id: str,
    plan_slice: pa.Table,
    clips: Sequence[GeneratedClip],
    generation: GenerationConfig,
    model_id: str,
    versions: str = "{}",
    before_commit: Callable[[], None] | None = None,
) -> int:
    """Publish audio first, then its embeddings (a verifying run), then the shard's index: the shard
    counts as committed once its tar and index exist, and then has all its files.

    Returns the bytes written.

    `before_commit` runs between the two and may raise to leave the shard uncommitted (a lone tar,
    garbage under the commit rule): the actor's check that its run still holds the output's lock.
    """
    tar_rel, index_rel = shard_paths(shard_id)
    data, locations = pack_shard(plan_slice, clips, generation)
    index = index_table(plan_slice, clips, locations, tar_rel, generation, model_id, versions, shard_bytes=len(data))
    output.write_bytes(tar_rel, data)
    check_stored_size(output, tar_rel, len(data))
    if any(c.embedding is not None for c in clips):
        if not all(c.embedding is not None for c in clips):
            raise ValueError(f"shard {shard_id}: the verifier scored only some of its clips")
        output.write_table(
            embeddings_path(shard_id), embeddings_table([c.clip_id for c in clips], [c.embedding for c in clips])
        )
    if before_commit is not None:
        before_commit()  # as late as can be: right before the one write that commits
    output.write_table(index_rel, index)
    return len(data)
