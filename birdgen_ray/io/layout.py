"""The output layout: where every file of an output lives, and the rule that commits a shard.

    OUT/
      plan.parquet              the validated plan of the latest submit
      shards/<shard_id>.tar     WAV clips as tar members "<clip_id>.wav" (WebDataset-style)
      shards/<shard_id>.embeddings.parquet  (a verifying run) clip_id + BirdNET embedding per clip,
                                written after the tar and before the index
      shards/<shard_id>.parquet that shard's index, written LAST: a shard is committed when its tar
                                and index exist (a lone tar or index is a crash leftover, removed),
                                with all its files: the index is written only after the others
      shards/<shard_id>.species.parquet  `birdgen-ray verify OUT`'s sidecar for a committed shard:
                                species columns + embedding, one atomic file (exists = done)
      failures/<shard_id>.json  a shard that kept failing, with its error (removed once it succeeds)
      index.parquet             all shard indexes, one row per clip_id (rebuilt after each run)
      summary.json              the last run's counts, throughput, stage times, versions, settings,
                                and a short history of every run
      _birdgen/run.json         generation settings the output was started with (reruns must match)
      _birdgen/lease.json       the one-writer lease (schedule/lease.py), renewed by its holder
      _birdgen/progress.json    the current or last run's state, rewritten every few seconds
      _birdgen/damaged/<shard_id>.json  a committed shard `birdgen-ray check` found damaged (its
                                clips' bytes do not match their sha256); the next submit repairs it

A clip is readable from its index row alone: `shard` (path relative to OUT), `offset` and `size`
locate the WAV bytes inside the tar, and `sha256` says whether they are still the bytes written.
Plan columns beyond the core ones (taxon class, common name, ...) follow the index columns unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from birdgen_ray.io.storage import Output

PLAN_FILE = "plan.parquet"
SHARDS_DIR = "shards"
FAILURES_DIR = "failures"
INDEX_FILE = "index.parquet"
SUMMARY_FILE = "summary.json"
META_DIR = "_birdgen"
RUN_FILE = f"{META_DIR}/run.json"
LEASE_FILE = f"{META_DIR}/lease.json"
PROGRESS_FILE = f"{META_DIR}/progress.json"
DAMAGED_DIR = f"{META_DIR}/damaged"
# Where writers leave temporary files (`*.tmp-*`) when they die mid-write; the next run removes them.
TEMPORARY_DIRS = ("", SHARDS_DIR, FAILURES_DIR, META_DIR)


EMBEDDINGS_SUFFIX = ".embeddings.parquet"
SPECIES_SUFFIX = ".species.parquet"
SIDECAR_SUFFIXES = (EMBEDDINGS_SUFFIX, SPECIES_SUFFIX)


def has_audio(row: dict) -> bool:
    """False for a clip stored without its audio (a fail:species clip of a --drop-species-failures run)."""
    return int(row.get("size") or 0) > 0


def shard_paths(shard_id: str) -> tuple[str, str]:
    """(tar, index) paths of a shard, relative to the output root; the tar's is the index's `shard`."""
    return f"{SHARDS_DIR}/{shard_id}.tar", f"{SHARDS_DIR}/{shard_id}.parquet"


def embeddings_path(shard_id: str) -> str:
    """A verifying run's embeddings of a shard, committed with it (written before its index)."""
    return f"{SHARDS_DIR}/{shard_id}{EMBEDDINGS_SUFFIX}"


def species_path(shard_id: str) -> str:
    """`verify OUT`'s sidecar of a committed shard."""
    return f"{SHARDS_DIR}/{shard_id}{SPECIES_SUFFIX}"


@dataclass(frozen=True)
class ShardListing:
    """One listing of shards/, split by the commit rule: a shard counts once its tar AND index exist."""

    committed: list[str]  # shard ids with both files
    orphan_tars: list[str]  # audio whose index never came (writer died mid-commit): garbage
    dangling_indexes: list[str]  # an index whose tar was cleaned away under a late writer: garbage
    stray_sidecars: list[str] = ()  # file names of sidecars of an uncommitted shard: garbage


def list_shards(output: Output) -> ShardListing:
    names = output.list(SHARDS_DIR)
    tars = {n[: -len(".tar")] for n in names if n.endswith(".tar")}
    sidecars = {n: n[: -len(suffix)] for n in names for suffix in SIDECAR_SUFFIXES if n.endswith(suffix)}
    indexes = {n[: -len(".parquet")] for n in names if n.endswith(".parquet") and n not in sidecars}
    committed = tars & indexes
    stray = sorted(name for name, shard_id in sidecars.items() if shard_id not in committed)
    return ShardListing(sorted(committed), sorted(tars - indexes), sorted(indexes - tars), stray)


def committed_shard_ids(output: Output) -> list[str]:
    """Shards whose index (written last) and audio both exist: exactly the committed ones."""
    return list_shards(output).committed
