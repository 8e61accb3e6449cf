"""Where an output stands, read from the output alone (no driver, no Ray)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from birdgen_ray.index.integrity import known_damage
from birdgen_ray.index.reader import committed_index, gate_failing_ids
from birdgen_ray.index.run_status import productive_run, run_line
from birdgen_ray.io.layout import FAILURES_DIR, LEASE_FILE, PLAN_FILE, PROGRESS_FILE, SUMMARY_FILE
from birdgen_ray.io.storage import Output


def output_status(output: Output) -> dict:
    """Column-wise throughout: an output of 10^6 clips is never turned into sets of 10^6 strings."""
    if not output.exists(PLAN_FILE):
        raise FileNotFoundError(f"{output.uri} is not a birdgen-ray output (no {PLAN_FILE})")
    planned = output.read_table(PLAN_FILE).column("clip_id").combine_chunks()
    shards = committed_index(output)  # mid-run: the last index.parquet plus the shards committed since
    committed = pa.array([], pa.string()) if shards is None else shards["clip_id"].combine_chunks()
    planned_done = pc.is_in(planned, value_set=committed)
    done = _count(planned_done)
    gate_failed = gate_failed_in_output = 0
    if shards is not None and shards.num_rows:
        kept_failing = gate_failing_ids(shards)
        gate_failed = _count(pc.and_(planned_done, pc.is_in(planned, value_set=kept_failing)))
        gate_failed_in_output = len(kept_failing)
    failed = pa.array([], pa.string())
    failures = []
    for name in output.list(FAILURES_DIR, ".json"):
        record = output.read_json(f"{FAILURES_DIR}/{name}")
        ids = pa.array(record["clip_ids"], pa.string())
        # still failed: planned and not done (a later run may have made them)
        still_failed = ids.filter(
            pc.and_(pc.is_in(ids, value_set=planned), pc.invert(pc.is_in(ids, value_set=committed)))
        )
        if len(still_failed):
            failures.append({"shard_id": record["shard_id"], "clips": len(still_failed), "error": record["error"]})
            failed = pa.concat_arrays([failed, still_failed])
    failed_count = len(pc.unique(failed))
    lease, progress = _read_json_or_none(output, LEASE_FILE), _read_json_or_none(output, PROGRESS_FILE)
    summary = _read_json_or_none(output, SUMMARY_FILE)
    return {
        "out": output.uri,
        "planned": len(planned),
        "done": done,
        "gate_failed": gate_failed,  # done, but kept with a failing quality verdict after every retry
        "gate_failed_in_output": gate_failed_in_output,  # the same over every clip, earlier plans' too
        "failed": failed_count,
        "pending": len(planned) - done - failed_count,
        "not_in_plan": len(committed) - _count(pc.is_in(committed, value_set=planned)),
        "shards": 0 if shards is None else len(pc.unique(shards["shard"])),
        "failures": failures,
        # shards whose stored size differs from the recorded one, or that `check` found damaged
        "damaged": [damage.line() for damage in known_damage(output, shards)],
        "running": lease,  # the lease record, while a run holds it (or a dead run left it)
        "progress": progress,  # _birdgen/progress.json: the current or last run
        "run": run_line(progress, lease, counted=(done, len(planned))),  # that, in one line, with the counts above
        "last_run": productive_run(summary) or None,  # the last run that generated clips
    }


def _count(mask: pa.Array) -> int:
    return pc.sum(mask).as_py() or 0


def _read_json_or_none(output: Output, rel: str) -> dict | None:
    """A file that a running submit may create or remove at any moment (lock, summary)."""
    try:
        record = output.read_json(rel)
    except (FileNotFoundError, ValueError):  # not there, or half-written by an older writer: no record
        return None
    return record if isinstance(record, dict) else None
