"""Where an output stands, read from the output alone (no driver, no Ray)."""
from __future__ import annotations

import pyarrow.compute as pc

from birdgen_ray.index.reader import committed_index
from birdgen_ray.index.schema import FAILURES_DIR, LOCK_FILE, PLAN_FILE, SUMMARY_FILE
from birdgen_ray.write.storage import Output


def output_status(output: Output) -> dict:
    if not output.exists(PLAN_FILE):
        raise FileNotFoundError(f"{output.uri} is not a birdgen-ray output (no {PLAN_FILE})")
    planned = set(output.read_table(PLAN_FILE).column("clip_id").to_pylist())
    shards = committed_index(output)  # mid-run: the last index.parquet plus the shards committed since
    committed = set() if shards is None else set(shards["clip_id"].to_pylist())
    done = planned & committed
    gate_failed = 0
    if shards is not None and shards.num_rows:
        kept_failing = shards.filter(pc.starts_with(shards["verdict"], "fail"))["clip_id"].to_pylist()
        gate_failed = len(planned & set(kept_failing))
    failed: set[str] = set()
    failures = []
    for name in output.list(FAILURES_DIR, ".json"):
        record = output.read_json(f"{FAILURES_DIR}/{name}")
        still_failed = (set(record["clip_ids"]) & planned) - done  # a later run may have made them
        if still_failed:
            failures.append({"shard_id": record["shard_id"], "clips": len(still_failed), "error": record["error"]})
            failed |= still_failed
    return {
        "out": output.uri,
        "planned": len(planned),
        "done": len(done),
        "gate_failed": gate_failed,  # done, but kept with a failing quality verdict after every retry
        "failed": len(failed),
        "pending": len(planned - done - failed),
        "not_in_plan": len(committed - planned),
        "shards": 0 if shards is None else len(set(shards["shard"].to_pylist())),
        "failures": failures,
        "running": _read_json_or_none(output, LOCK_FILE),
        "last_run": _read_json_or_none(output, SUMMARY_FILE),
    }


def _read_json_or_none(output: Output, rel: str) -> dict | None:
    """A file that a running submit may create or remove at any moment (lock, summary)."""
    try:
        return output.read_json(rel)
    except FileNotFoundError:
        return None
