"""Where an output stands, read from the output alone (no driver, no Ray)."""
from __future__ import annotations

from birdgen_ray.index.reader import read_shard_indexes
from birdgen_ray.index.schema import FAILURES_DIR, LOCK_FILE, PLAN_FILE, SUMMARY_FILE
from birdgen_ray.write.storage import Output


def output_status(output: Output) -> dict:
    if not output.exists(PLAN_FILE):
        raise FileNotFoundError(f"{output.uri} is not a birdgen-ray output (no {PLAN_FILE})")
    planned = set(output.read_table(PLAN_FILE).column("clip_id").to_pylist())
    shards = read_shard_indexes(output)
    committed = set() if shards is None else set(shards["clip_id"].to_pylist())
    failed: set[str] = set()
    failures = []
    for name in output.list(FAILURES_DIR, ".json"):
        record = output.read_json(f"{FAILURES_DIR}/{name}")
        failures.append({"shard_id": record["shard_id"], "clips": len(record["clip_ids"]), "error": record["error"]})
        failed.update(record["clip_ids"])
    done = planned & committed
    failed -= done
    lock = output.read_json(LOCK_FILE) if output.exists(LOCK_FILE) else None
    return {
        "out": output.uri,
        "planned": len(planned),
        "done": len(done),
        "failed": len(failed & planned),
        "pending": len(planned - done - failed),
        "not_in_plan": len(committed - planned),
        "shards": 0 if shards is None else len(set(shards["shard"].to_pylist())),
        "failures": failures,
        "running": lock,
        "last_run": output.read_json(SUMMARY_FILE) if output.exists(SUMMARY_FILE) else None,
    }
