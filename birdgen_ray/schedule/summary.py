"""The run summary (OUT/summary.json): counts, throughput, GPU-seconds, stage times, versions, settings."""

from __future__ import annotations

import platform
import time
from collections import Counter
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version

import pyarrow as pa
import pyarrow.compute as pc

from birdgen_ray.index.reader import gate_failing_ids
from birdgen_ray.index.run_status import productive_run
from birdgen_ray.io.layout import SUMMARY_FILE

PACKAGES = ("birdgen-ray", "ray", "torch", "diffusers", "transformers", "pyarrow", "soxr", "soundfile")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def settings(run) -> dict:
    """Everything the run was asked to do, as plain JSON (the audio-deciding part first)."""
    return {
        "generation": asdict(run.generation),
        "settings_fingerprint": run.generation.fingerprint(),
        "engine": asdict(run.engine),
        "generator": run.generator,
        "shard_size": run.shard_size,
        "num_actors": run.num_actors,
        "gpus_per_actor": "auto" if run.gpus_per_actor is None else run.gpus_per_actor,
        "max_inflight_per_actor": run.max_inflight_per_actor,
        "max_shard_attempts": run.max_shard_attempts,
        "address": run.address,
        "actor_env": sorted(run.actor_env),  # names only: values may be credentials
    }


def build_summary(
    run, run_id: str, plan: pa.Table, index: pa.Table | None, drive, started: float, already_done: int
) -> dict:
    wall = time.time() - started
    planned_ids = plan["clip_id"]
    in_index = 0 if index is None else pc.sum(pc.is_in(planned_ids, value_set=index["clip_id"])).as_py() or 0
    generated = sum(r.clips for r in drive.results)
    actor_seconds = sum(r.seconds for r in drive.results)  # generating + writing, summed over shards
    generator_seconds = sum(r.generate_seconds for r in drive.results)  # writing overlaps it, off the GPU
    stages: Counter[str] = Counter()
    engine_counts: Counter[str] = Counter()
    for r in drive.results:
        stages.update(r.stage_seconds)
        engine_counts.update(r.engine_counts)
    verdicts = {}
    if index is not None and index.num_rows:
        heads = pc.replace_substring_regex(index["verdict"], pattern=":.*", replacement="")  # "fail:silence" -> "fail"
        verdicts = {row["values"]: row["counts"] for row in pc.value_counts(heads).to_pylist()}
    missing = plan.num_rows - in_index
    gate_failed = 0
    if index is not None and index.num_rows:
        failing = gate_failing_ids(index)
        gate_failed = pc.sum(pc.is_in(planned_ids, value_set=failing)).as_py() or 0
    return {
        "run_id": run_id,
        "status": "complete" if missing == 0 else "incomplete",
        "out": run.out,
        "plan": run.plan_path,
        "planned": plan.num_rows,
        "done": in_index,
        "missing": missing,
        "already_done_before_run": already_done,
        "generated_this_run": generated,
        "failed_clips": drive.failed_clips,
        "failed_shards": drive.failed,
        "shard_retries": drive.retries,
        "actors_replaced": drive.actors_replaced,
        "oom_splits": sum(r.oom_splits for r in drive.results),
        "verdicts": verdicts,
        "gate_failed": gate_failed,  # planned clips kept with a failing quality verdict after every retry
        "actors": drive.actors,  # asked for
        "actors_started": len(drive.actor_info),  # replacements included; some may still have been waiting
        "gpus_per_actor": drive.gpus_per_actor,
        "wall_seconds": round(wall, 3),
        "clips_per_second": round(generated / wall, 3) if wall > 0 else 0.0,
        "actor_seconds": round(actor_seconds, 3),
        "generator_seconds": round(generator_seconds, 3),
        "gpu_seconds": round(generator_seconds * drive.gpus_per_actor, 3),  # GPUs busy generating
        "stage_seconds": {k: round(v, 3) for k, v in sorted(stages.items())},  # summed over actors
        # encoder calls, denoiser rows and padded rows (of them), summed over actors; {} for the null generator
        "engine_counts": dict(sorted(engine_counts.items())),
        "driver_seconds": {k: round(v, 3) for k, v in drive.driver_seconds.items()},  # wall, in order
        "bytes_written": sum(r.bytes_written for r in drive.results),
        "model_id": drive.model_id or _model_of(index),  # a run that generated nothing: the index's
        # the first actor's speed settings, asked for or chosen for its device, each with why
        "engine_choices": drive.actor_info[0].get("engine") if drive.actor_info else None,
        "settings": settings(run),  # generator, generation, engine, shard_size, ...: once, here
        "versions": versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _model_of(index: pa.Table | None) -> str | None:
    if index is None or index.num_rows == 0 or "model_id" not in index.column_names:
        return None
    return index["model_id"][0].as_py()


HISTORY_KEPT = 500  # runs remembered in summary.json (a few hundred bytes each)
HISTORY_FIELDS = (
    "run_id",
    "status",
    "finished_at",
    "planned",
    "done",
    "generated_this_run",
    "failed_clips",
    "wall_seconds",
    "clips_per_second",
    "actors",
    "model_id",
)


def previous_summary(output) -> dict | None:
    """The summary.json an earlier run left, or None (none yet, or unreadable: it is rewritten anyway)."""
    try:
        previous = output.read_json(SUMMARY_FILE)
    except (FileNotFoundError, ValueError):
        return None
    return previous if isinstance(previous, dict) else None


def with_history(summary: dict, previous: dict | None, taken_over: dict | None = None) -> dict:
    """`summary` with every earlier run's entry and its own appended (`history`), and, when this run
    generated nothing, the last run that did (`last_productive_run`): a no-op rerun must not hide
    the figures of the run that did the work."""
    previous = previous or {}
    history = list(previous.get("history") or ([_entry(previous)] if previous.get("run_id") else []))
    entry = _entry(summary)
    if taken_over:
        entry["took_over_from"] = {k: taken_over.get(k) for k in ("run_id", "host", "pid", "reason")}
    summary = {**summary, "history": [*history, entry][-HISTORY_KEPT:]}
    if not summary.get("generated_this_run") and previous:
        productive = productive_run(previous)
        if productive.get("generated_this_run"):
            summary["last_productive_run"] = {
                k: v for k, v in productive.items() if k not in ("history", "last_productive_run")
            }
    return summary


def _entry(summary: dict) -> dict:
    return {k: summary.get(k) for k in HISTORY_FIELDS}
