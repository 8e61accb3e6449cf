"""Failure records: failures/<shard_id>.json for shards that kept failing, pruned once their clips
are committed; and the one-line form of an error that such a record (and the log) carries."""

from __future__ import annotations

import errno

import pyarrow as pa
import pyarrow.compute as pc

from birdgen_ray.io.layout import FAILURES_DIR
from birdgen_ray.io.storage import Output
from birdgen_ray.schedule.shards import ShardSpec


def short_error(exc: BaseException) -> str:
    """One line: the exception itself first, then where it was raised (or, for an actor death, why)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    where = next((line for line in reversed(lines[:-1]) if line.startswith("File ")), None)
    if where is None and len(lines) > 1:  # not a traceback: e.g. "The actor died ..." + the reason
        return f"{lines[0]} | {lines[-1]}"[:2000]
    return (f"{lines[-1]} | at {where}" if where else lines[-1])[:2000]


# Errors no retry can mend, and that would fail the failure record as well: the run ends with them.
_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def fatal_storage_error(exc: BaseException) -> OSError | None:
    """A full disk, an exceeded quota or a read-only file system behind a shard's error, as an OSError
    the driver raises (the CLI makes it one line), or None for anything a retry may mend."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_SPACE:
            return OSError(exc.errno, exc.strerror, exc.filename)
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return None


def record_failure(output: Output, shard: ShardSpec, error: str, attempts: int) -> None:
    output.write_json(
        f"{FAILURES_DIR}/{shard.shard_id}.json",
        {
            "shard_id": shard.shard_id,
            "attempts": attempts,
            "error": error,
            "clip_ids": shard.plan_slice["clip_id"].to_pylist(),
            "labels": sorted(set(shard.plan_slice["label"].to_pylist())),
        },
    )


def prune_failures(output: Output, index) -> None:
    """Drop failure records whose clips are all committed now (a later run, another shard cut)."""
    names = output.list(FAILURES_DIR, ".json")
    if not names or index is None:
        return
    done = index["clip_id"]
    for name in names:
        clip_ids = pa.array(output.read_json(f"{FAILURES_DIR}/{name}")["clip_ids"], pa.string())
        if pc.all(pc.is_in(clip_ids, value_set=done)).as_py() is not False:
            output.remove(f"{FAILURES_DIR}/{name}")
