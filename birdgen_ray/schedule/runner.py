"""The driver: validate, lock, skip what is committed, feed actors, record failures, summarise.

A plain Ray Core loop (as in datatrove's executor): a bounded number of shards in flight per actor,
`ray.wait` with a timeout, a dead actor replaced and its shards retried elsewhere, a shard that keeps
failing written to failures/ while the run goes on. Every committed shard survives any crash; a
rerun skips them by reading their indexes.
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from birdgen_ray.config import GenerationConfig, RunConfig
from birdgen_ray.index.reader import consolidate, done_clip_ids
from birdgen_ray.index.schema import FAILURES_DIR, PLAN_FILE, RUN_FILE, SUMMARY_FILE
from birdgen_ray.plan.schema import read_plan
from birdgen_ray.schedule.actor import ShardResult, actor_class
from birdgen_ray.schedule.lock import OutputLock
from birdgen_ray.schedule.progress import RunProgress
from birdgen_ray.schedule.shards import ShardSpec, make_shards, pending_rows
from birdgen_ray.schedule.summary import build_summary
from birdgen_ray.write.shard_writer import remove_uncommitted
from birdgen_ray.write.storage import Output

log = logging.getLogger(__name__)


class SettingsMismatch(RuntimeError):
    pass


class ActorStartFailed(RuntimeError):
    """The generator could not be built in an actor (unknown model, missing weights, bad device)."""


@dataclass
class DriveResult:
    results: list[ShardResult] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # shard_id -> last error
    failed_clips: int = 0
    retries: int = 0
    actors: int = 0
    actors_replaced: int = 0
    gpus_per_actor: float = 0.0
    model_id: str | None = None
    driver_seconds: dict[str, float] = field(default_factory=dict)  # prepare, start_actors, run_shards, finish


def submit(run: RunConfig) -> dict:
    """Run (or resume) a job to completion; returns the run summary (also written to OUT/summary.json)."""
    started = time.time()
    plan = read_plan(run.plan_path)  # the whole plan is valid before anything is touched
    output = Output(run.out, run.storage_options)
    with OutputLock(output, run.break_lock) as lock:
        phase_start = time.perf_counter()
        check_settings(output, run.generation)
        output.write_table(PLAN_FILE, plan)
        cleaned = remove_uncommitted(output)  # what a crashed run left half-written
        done = done_clip_ids(output)
        pending = pending_rows(plan, done)
        shards = make_shards(pending, run.shard_size)
        log.info(
            "%d planned, %d already committed, %d shards to run, %d leftover files removed",
            plan.num_rows, plan.num_rows - pending.num_rows, len(shards), cleaned,
        )
        prepare_seconds = time.perf_counter() - phase_start
        drive_result = drive(run, output, shards) if shards else DriveResult()
        phase_start = time.perf_counter()
        remove_uncommitted(output)  # what actors killed during this run left
        index = consolidate(output)
        prune_failures(output, index)
        drive_result.driver_seconds = {
            "prepare": prepare_seconds, **drive_result.driver_seconds, "finish": time.perf_counter() - phase_start
        }
        summary = build_summary(run, lock.run_id, plan, index, drive_result, started, already_done=len(done))
        output.write_json(SUMMARY_FILE, summary)
    return summary


def check_settings(output: Output, generation: GenerationConfig) -> None:
    """An output holds one dataset: refuse to extend it with audio made under other settings."""
    if output.exists(RUN_FILE):
        recorded = output.read_json(RUN_FILE)
        if recorded["fingerprint"] != generation.fingerprint():
            theirs = GenerationConfig.from_json(recorded["generation"])
            diffs = [
                f"{k}: output has {getattr(theirs, k)!r}, this run {getattr(generation, k)!r}"
                for k in generation.__dataclass_fields__
                if getattr(theirs, k) != getattr(generation, k)
            ]
            raise SettingsMismatch(
                f"{output.uri} was generated with other settings ({'; '.join(diffs)}). "
                "Use the same settings to resume, or a new --out for a new dataset."
            )
        return
    output.write_json(RUN_FILE, {"fingerprint": generation.fingerprint(), "generation": generation.to_json()})


def init_ray(run: RunConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    if run.address or os.environ.get("RAY_ADDRESS"):
        # Inside a Ray job or against a running cluster: join it, never pass resources.
        ray.init(address=run.address or None, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)


def _actor_options(run: RunConfig) -> tuple[int, dict, int | None]:
    """How many actors, with which resources, and how many CPU threads each (CPU actors)."""
    import ray

    env = {"runtime_env": {"env_vars": dict(run.actor_env)}} if run.actor_env else {}
    resources = ray.cluster_resources()
    gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 1.0)
    if gpus >= run.gpus_per_actor > 0:
        count = _fitting(run.num_actors or int(gpus // run.gpus_per_actor), int(gpus // run.gpus_per_actor), "GPU")
        return count, {"num_gpus": run.gpus_per_actor, "num_cpus": 1, **env}, None
    count = _fitting(run.num_actors or max(1, int(cpus // 2)), max(1, int(cpus)), "CPU")
    threads = max(1, int(cpus // count))
    return count, {"num_cpus": 1, **env}, threads


def _fitting(wanted: int, fits: int, resource: str) -> int:
    """An actor the cluster cannot place would wait forever with shards queued on it: cap instead."""
    if wanted > fits:
        log.warning("%d actors asked for, but the cluster's %ss hold %d now: starting %d", wanted, resource, fits, fits)
        return fits
    return wanted


def drive(run: RunConfig, output: Output, shards: list[ShardSpec]) -> DriveResult:
    import ray
    from ray.exceptions import RayActorError, RayError

    phase_start = time.perf_counter()
    init_ray(run)  # counted with start_actors: a local Ray starts here
    count, options, threads = _actor_options(run)
    count = min(count, len(shards))
    Actor = actor_class(max_concurrency=max(2, run.max_inflight_per_actor))  # generate one, write another
    result = DriveResult(actors=count, gpus_per_actor=options.get("num_gpus", 0.0))

    def start_actor():
        return Actor.options(**options).remote(run, threads)

    actors = [start_actor() for _ in range(count)]
    # Fail fast on a model that cannot load (bad id, missing weights) instead of retrying every shard.
    try:
        infos = ray.get([a.info.remote() for a in actors])
    except BaseException as exc:
        for actor in actors:  # a long-lived driver (notebook, tests) must not keep them and their GPUs
            ray.kill(actor)
        if isinstance(exc, RayActorError):
            raise ActorStartFailed(f"the generator actors could not start: {_short_error(exc)}") from None
        raise
    result.model_id = infos[0]["model_id"]
    result.driver_seconds["start_actors"] = time.perf_counter() - phase_start
    phase_start = time.perf_counter()

    queue: deque[ShardSpec] = deque(shards)
    attempts: Counter[str] = Counter()
    inflight: dict = {}  # ObjectRef -> (shard, actor slot)
    load = [0] * count
    progress = RunProgress(sum(s.num_clips for s in shards), enabled=run.progress)
    try:
        while queue or inflight:
            for slot in range(count):
                while queue and load[slot] < run.max_inflight_per_actor:
                    shard = queue.popleft()
                    inflight[actors[slot].run_shard.remote(shard)] = (shard, slot)
                    load[slot] += 1
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            for ref in ready:
                shard, slot = inflight.pop(ref)
                load[slot] -= 1
                try:
                    done: ShardResult = ray.get(ref)
                except RayError as exc:  # the task raised, its actor died, or its result was lost
                    attempts[shard.shard_id] += 1
                    error = _short_error(exc)
                    if isinstance(exc, RayActorError) and _died_here(exc, actors[slot]):
                        log.warning("actor %d died (%s); starting a replacement", slot, error)
                        actors[slot] = start_actor()
                        result.actors_replaced += 1
                    if attempts[shard.shard_id] < run.max_shard_attempts:
                        result.retries += 1
                        queue.append(shard)
                    else:
                        _record_failure(output, shard, error, attempts[shard.shard_id])
                        result.failed[shard.shard_id] = error
                        result.failed_clips += shard.num_clips
                        progress.failed(shard.num_clips)
                    continue
                output.remove(f"{FAILURES_DIR}/{shard.shard_id}.json")
                result.results.append(done)
                progress.advance(done.clips)
    finally:
        result.driver_seconds["run_shards"] = time.perf_counter() - phase_start
        progress.close()
        for actor in actors:
            ray.kill(actor)
    return result


def _died_here(exc, actor) -> bool:
    """True once per death: the other in-flight tasks of an already-replaced actor start no more actors."""
    dead = getattr(exc, "actor_id", None)
    return dead is None or dead == actor._actor_id.hex()


def _short_error(exc: BaseException) -> str:
    """One line: the exception itself first, then where it was raised (or, for an actor death, why)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    where = next((line for line in reversed(lines[:-1]) if line.startswith("File ")), None)
    if where is None and len(lines) > 1:  # not a traceback: e.g. "The actor died ..." + the reason
        return f"{lines[0]} | {lines[-1]}"[:2000]
    return (f"{lines[-1]} | at {where}" if where else lines[-1])[:2000]


def _record_failure(output: Output, shard: ShardSpec, error: str, attempts: int) -> None:
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
    done = set() if index is None else set(index["clip_id"].to_pylist())
    for name in output.list(FAILURES_DIR, ".json"):
        if done.issuperset(output.read_json(f"{FAILURES_DIR}/{name}")["clip_ids"]):
            output.remove(f"{FAILURES_DIR}/{name}")
