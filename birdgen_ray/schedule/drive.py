"""The drive loop: feed shards to a pool of generator actors until every one is done or failed.

A plain Ray Core loop (as in datatrove's executor): a bounded number of shards in flight per actor,
`ray.wait` with a timeout, a dead actor replaced and its shards retried elsewhere, a shard that keeps
failing recorded in failures/ while the run goes on. An actor gets shards only once it has started,
so actors still waiting for a node (an autoscaler adding GPU workers) hold no work back. An actor
whose node went away before it loaded the model is started again like any dead actor; only a model
that fails to load on a live node ends the run (ActorStartFailed). A run with no started actor for
--placement-timeout-s ends (PlacementTimeout), committed shards kept. A run whose lease was lost
(taken over, or expired while the driver was paused) stops, and its actors commit nothing more.
The bar and progress.json count clips as batches finish: committed, and in flight (InFlightPoller).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace

import pyarrow.compute as pc

from birdgen_ray.config import RunConfig
from birdgen_ray.io.layout import FAILURES_DIR
from birdgen_ray.io.storage import Output
from birdgen_ray.schedule.actor import ShardResult, actor_class
from birdgen_ray.schedule.cluster import has_autoscaler, init_ray
from birdgen_ray.schedule.failures import fatal_storage_error, record_failure, short_error
from birdgen_ray.schedule.in_flight import InFlightPoller
from birdgen_ray.schedule.lease import OutputLease, OutputLocked
from birdgen_ray.schedule.progress import RunProgress
from birdgen_ray.schedule.run_state import RunState
from birdgen_ray.schedule.shards import ShardSpec
from birdgen_ray.schedule.sizing import size_actor_pool, waiting_line
from birdgen_ray.schedule.watchdog import StuckActorWatchdog

log = logging.getLogger(__name__)

PLACEMENT_REPORT_S = 30.0  # how often the driver says which actors it is still waiting for


class ActorStartFailed(RuntimeError):
    """The generator could not be built in an actor on a live node (unknown model, missing weights, bad device)."""


class PlacementTimeout(RuntimeError):
    """No generator actor could be placed and started within --placement-timeout-s."""


@dataclass
class DriveResult:
    results: list[ShardResult] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # shard_id -> last error
    failed_clips: int = 0
    retries: int = 0
    actors: int = 0
    actors_replaced: int = 0
    gpus_per_actor: float = 0.0
    actor_info: list[dict] = field(default_factory=list)  # every actor that started: pid, model, GPU ids
    model_id: str | None = None
    driver_seconds: dict[str, float] = field(default_factory=dict)  # prepare, start_actors, run_shards, finish


def drive(
    run: RunConfig,
    output: Output,
    shards: list[ShardSpec],
    lock: OutputLease | None = None,
    state: RunState | None = None,
) -> DriveResult:
    """Run shards on a pool of actors; an actor gets shards once it has started (placed, generator built).

    With the output's lease (`lock`), the driver checks it every loop (no I/O: its renewer thread
    reads it) and its actors read it before each commit: once it is lost, this run stops (LeaseLost)
    and commits no more. `state` is the progress.json record, rewritten every few seconds.
    """
    import ray
    from ray.exceptions import RayActorError, RayError

    phase_start = time.perf_counter()
    init_ray(run)  # counted with start_actors: a local Ray starts here
    resources = ray.cluster_resources()
    sizing = size_actor_pool(run, resources.get("GPU", 0.0), resources.get("CPU", 1.0))
    count = min(sizing.count, len(shards))
    run = _with_workload(run, shards, count)
    # A verifying actor asks for its BirdNET threads too (docs/verification.md): 1 + 6 on a GPU actor
    options: dict = {"num_cpus": 1}
    if run.generation.verifier:
        options["num_cpus"] = 1 + run.engine.verifier_threads_for(gpu=bool(sizing.gpus_per_actor))
    if sizing.gpus_per_actor:
        options["num_gpus"] = sizing.gpus_per_actor
    if run.actor_env:
        options["runtime_env"] = {"env_vars": dict(run.actor_env)}
    # generate one, write another, and a thread free for the in_flight() polls
    Actor = actor_class(max_concurrency=max(1, run.max_inflight_per_actor) + 1)
    result = DriveResult(actors=count, gpus_per_actor=sizing.gpus_per_actor)

    actors: list = [None] * count
    starting: dict = {}  # info() ref -> slot, until that actor has started
    ready = [False] * count
    failed_starts = [0] * count  # in a row, per slot

    def start_actor(slot: int) -> None:
        if actors[slot] is not None:  # a dead or failed actor must not keep its GPU reservation
            ray.kill(actors[slot], no_restart=True)
        actors[slot] = Actor.options(**options).remote(run, sizing.cpu_threads, lock.token if lock else None)
        ready[slot] = False
        starting[actors[slot].info.remote()] = slot

    def started(ref) -> None:
        slot = starting.pop(ref)
        try:
            info = ray.get(ref)
        except RayError as exc:
            failed_starts[slot] += 1
            # The constructor raised on a live node (bad model id, no weights, no CUDA) before any
            # actor of this run started: fail fast instead of retrying every shard. An actor whose
            # node died (or one failing after others started) is tried again, a few times.
            if getattr(exc, "actor_init_failed", False) and not result.actor_info:
                raise ActorStartFailed(f"the generator actors could not start: {short_error(exc)}") from None
            if failed_starts[slot] < run.max_shard_attempts:
                log.warning("actor %d failed to start (%s); starting another", slot, short_error(exc))
                start_actor(slot)
            else:
                log.warning("actor %d failed to start %d times; going on without it", slot, failed_starts[slot])
            return
        if not result.actor_info:
            result.model_id = info["model_id"]
            result.driver_seconds["start_actors"] = time.perf_counter() - phase_start
            for line in engine_lines(info.get("engine", {})):
                progress.console.print(line, highlight=False, soft_wrap=True)  # never wrapped: logs keep whole lines
        result.actor_info.append(info)
        ready[slot], failed_starts[slot] = True, 0

    queue: deque[ShardSpec] = deque(shards)
    attempts: Counter[str] = Counter()
    inflight: dict = {}  # ObjectRef -> (shard, actor slot, the actor handle it went to)
    watchdog = StuckActorWatchdog(run.shard_timeout_s, count) if run.shard_timeout_s else None
    load = [0] * count
    # one listing instead of a delete request per committed shard (thousands, on object storage)
    failure_records = {name[: -len(".json")] for name in output.list(FAILURES_DIR, ".json")}
    progress = RunProgress(sum(s.num_clips for s in shards), enabled=run.progress)
    poller = InFlightPoller()
    last_report = time.monotonic()
    autoscaler = None  # asked the cluster only when there is something to wait for
    placement_deadline = _deadline(run.placement_timeout_s)
    try:
        for slot in range(count):
            start_actor(slot)
        while queue or inflight:
            for slot in range(count):
                while ready[slot] and queue and load[slot] < run.max_inflight_per_actor:
                    if watchdog:
                        watchdog.handing_over(slot, inflight, actors)
                    shard = queue.popleft()
                    ref = actors[slot].run_shard.remote(shard)
                    inflight[ref] = (shard, slot, actors[slot])
                    load[slot] += 1
            if not inflight and not starting:
                raise ActorStartFailed(f"no generator actor is left to run the {len(queue)} remaining shards")
            if any(ready):
                placement_deadline = _deadline(run.placement_timeout_s)
            elif time.monotonic() > placement_deadline:
                raise PlacementTimeout(
                    f"no generator actor could be placed and started within --placement-timeout-s "
                    f"{run.placement_timeout_s:g} ({waiting_line(len(starting), 0, sizing, bool(autoscaler))}); "
                    f"{len(queue)} shards left, committed shards kept; run the same command to resume"
                )
            ready_refs, waiting = ray.wait([*inflight, *starting], num_returns=1, timeout=1.0)
            if ready_refs and waiting:  # everything else already done too: handled before the watchdog looks
                ready_refs += ray.wait(waiting, num_returns=len(waiting), timeout=0)[0]
            for ref in ready_refs:
                if ref in starting:
                    started(ref)
                    continue
                shard, slot, actor = inflight.pop(ref)
                load[slot] -= 1
                if watchdog and actor is actors[slot]:
                    watchdog.finished(slot)
                try:
                    done: ShardResult = ray.get(ref)
                except RayError as exc:  # the task raised, its actor died, or its result was lost
                    if lock and isinstance(getattr(exc, "cause", None), OutputLocked):
                        lock.verify()  # an actor found the lease lost: stop before recording anything
                    if fatal_storage_error(exc) is not None:  # a full disk: no retry, no record can help
                        raise fatal_storage_error(exc) from None
                    error = short_error(exc)
                    blamed = watchdog.blamed.get(actor._actor_id.hex()) if watchdog else None
                    if blamed == shard.shard_id:
                        error = f"timed out after {run.shard_timeout_s:g} s (its actor was killed): {error}"
                    if isinstance(exc, RayActorError) and _died_here(exc, actors[slot]):
                        log.warning("actor %d died (%s); starting a replacement", slot, error)
                        start_actor(slot)
                        result.actors_replaced += 1
                    if blamed is not None and blamed != shard.shard_id and isinstance(exc, RayActorError):
                        result.retries += 1  # it only shared an actor with a stuck shard: not its attempt
                        queue.append(shard)
                        continue
                    attempts[shard.shard_id] += 1
                    if attempts[shard.shard_id] < run.max_shard_attempts:
                        result.retries += 1
                        queue.append(shard)
                    else:
                        record_failure(output, shard, error, attempts[shard.shard_id])
                        result.failed[shard.shard_id] = error
                        result.failed_clips += shard.num_clips
                        progress.failed(shard.num_clips)
                        if state:
                            state.failed(shard.num_clips)
                    continue
                if shard.shard_id in failure_records:  # an earlier run's record of this very shard
                    output.remove(f"{FAILURES_DIR}/{shard.shard_id}.json")
                result.results.append(done)
                progress.advance(done.clips)
                if state:
                    state.committed(done.clips, slot, shard.shard_id)
            if watchdog:  # after the finished shards are counted: one that just finished is not stuck
                watchdog.kill_stuck(inflight, actors)
            if lock:
                lock.check()
            in_flight = poller.clips(actors, ready, inflight)
            progress.in_flight(in_flight)
            if state:
                state.in_flight(in_flight)
                state.maybe_write()
            if starting and time.monotonic() - last_report >= PLACEMENT_REPORT_S:
                last_report = time.monotonic()
                autoscaler = has_autoscaler() if autoscaler is None else autoscaler
                line = waiting_line(len(starting), sum(ready), sizing, autoscaler, run.placement_timeout_s)
                progress.console.print(line, highlight=False, soft_wrap=True)  # never wrapped: logs keep whole lines
    finally:
        now = time.perf_counter()
        started_at = phase_start + result.driver_seconds.setdefault("start_actors", now - phase_start)
        result.driver_seconds["run_shards"] = now - started_at
        progress.close()
        for actor in filter(None, actors):  # a long-lived driver (notebook, tests) must not keep them and their GPUs
            ray.kill(actor)
    return result


def _deadline(timeout_s: float) -> float:
    return time.monotonic() + timeout_s if timeout_s else float("inf")


def _with_workload(run: RunConfig, shards: list[ShardSpec], actors: int) -> RunConfig:
    """The run with what the engine's auto choices read: its longest clip and the clips each actor makes."""
    engine = run.engine
    if engine.clip_duration_s is None and shards:
        engine = replace(engine, clip_duration_s=max(pc.max(s.plan_slice["duration_s"]).as_py() for s in shards))
    if engine.clips_per_actor is None and actors:
        engine = replace(engine, clips_per_actor=math.ceil(sum(s.num_clips for s in shards) / actors))
    return replace(run, engine=engine)


def engine_lines(choices: dict) -> list[str]:
    """submit's lines on the first actor's engine: each speed setting, and why."""
    return [f"engine {name.replace('_', ' ')}: {c['value']} ({c['why']})" for name, c in choices.items()]


def _died_here(exc, actor) -> bool:
    """True once per death: the other in-flight tasks of an already-replaced actor start no more actors."""
    dead = getattr(exc, "actor_id", None)
    return dead is None or dead == actor._actor_id.hex()
