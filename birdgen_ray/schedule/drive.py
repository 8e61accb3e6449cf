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

The actors live in an ActorPool (schedule/pool.py: slots placing, loading, ready, busy or lost);
what a failed shard or a failed start leads to is schedule/retry.py's; the bar and progress.json
are observers of the loop's events (schedule/observers.py).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
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
from birdgen_ray.schedule.observers import DriveObserver, ProgressObserver, StateObserver
from birdgen_ray.schedule.pool import STARTED, ActorPool, Slot
from birdgen_ray.schedule.progress import RunProgress
from birdgen_ray.schedule.retry import RetryPolicy, ShardFailure, ShardVerdict, StartVerdict
from birdgen_ray.schedule.run_state import RunState
from birdgen_ray.schedule.shards import ShardSpec
from birdgen_ray.schedule.sizing import ActorSizing, size_actor_pool, waiting_line
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

    phase_start = time.perf_counter()
    # 1. the cluster (a local Ray starts here: counted with start_actors) and the pool's size
    init_ray(run)
    resources = ray.cluster_resources()
    sizing = size_actor_pool(run, resources.get("GPU", 0.0), resources.get("CPU", 1.0))
    count = min(sizing.count, len(shards))
    run = _with_workload(run, shards, count)
    # 2. the actors' form: generate one shard, write another, and a thread free for the in_flight() polls
    Actor = actor_class(max_concurrency=max(1, run.max_inflight_per_actor) + 1)
    options, token = _actor_options(run, sizing), lock.token if lock else None
    pool = ActorPool(count, lambda: Actor.options(**options).remote(run, sizing.cpu_threads, token, load_now=False))
    # 3. who watches: the bar, and progress.json
    progress = RunProgress(sum(s.num_clips for s in shards), enabled=run.progress, log_every_s=run.progress_every_s)
    observers: list[DriveObserver] = [ProgressObserver(progress)]
    if state:
        observers.append(StateObserver(state))
    # 4. the loop
    return Driver(run, output, shards, pool, sizing, observers, lock, phase_start).loop()


def _actor_options(run: RunConfig, sizing: ActorSizing) -> dict:
    # A verifying actor asks for its BirdNET threads too (docs/verification.md): 1 + 6 on a GPU actor
    options: dict = {"num_cpus": 1}
    if run.generation.verifier:
        options["num_cpus"] = 1 + run.engine.verifier_threads_for(gpu=bool(sizing.gpus_per_actor))
    if sizing.gpus_per_actor:
        options["num_gpus"] = sizing.gpus_per_actor
    if run.actor_env:
        options["runtime_env"] = {"env_vars": dict(run.actor_env)}
    return options


class Driver:
    """One run's drive loop over an ActorPool: what is queued, in flight, retried, failed and done."""

    def __init__(
        self,
        run: RunConfig,
        output: Output,
        shards: list[ShardSpec],
        pool: ActorPool,
        sizing: ActorSizing,
        observers: list[DriveObserver],
        lock: OutputLease | None,
        phase_start: float,
    ):
        self.config, self.output, self.pool, self.sizing = run, output, pool, sizing
        self.observers, self.lock, self.phase_start = observers, lock, phase_start
        self.result = DriveResult(actors=len(pool.slots), gpus_per_actor=sizing.gpus_per_actor)
        self.queue: deque[ShardSpec] = deque(shards)
        self.inflight: dict = {}  # ObjectRef -> (shard, slot index, the actor handle it went to)
        self.retry = RetryPolicy(run.max_shard_attempts, run.shard_timeout_s)
        self.watchdog = StuckActorWatchdog(run.shard_timeout_s, len(pool.slots)) if run.shard_timeout_s else None
        self.failure_records: set[str] = set()  # shard ids an earlier run recorded as failed
        self.poller = InFlightPoller()
        self.last_report = time.monotonic()
        self.autoscaler = None  # asked the cluster only when there is something to wait for
        self.placement_deadline = _deadline(run.placement_timeout_s)

    def loop(self) -> DriveResult:
        try:
            # one listing instead of a delete request per committed shard (thousands, on object storage)
            self.failure_records = {name[: -len(".json")] for name in self.output.list(FAILURES_DIR, ".json")}
            for slot in self.pool.slots:
                self.pool.start(slot)
            while self.queue or self.inflight:
                # 1. hand shards to the started actors with room
                self._dispatch()
                # 2. end the run when no actor is left, or none was started in time
                self._check_placement()
                # 3. wait up to a second; read each actor start and each shard that came back
                for ref in self._wait():
                    if self.pool.is_start_ref(ref):
                        self._start_step(ref)
                    else:
                        self._shard_back(ref)
                # 4. kill stuck actors (after the finished shards are counted: one that just finished is not stuck)
                if self.watchdog:
                    self.watchdog.kill_stuck(self.inflight, self.pool.handles())
                # 5. stop once the lease is lost
                if self.lock:
                    self.lock.check()
                # 6. tell the observers the clips in flight, and which actors still wait for a node
                self._report()
        finally:
            self._finish()
        return self.result

    def _tell(self, event: str, *args) -> None:
        for observer in self.observers:
            getattr(observer, event)(*args)

    def _dispatch(self) -> None:
        most = self.config.max_inflight_per_actor
        for slot in self.pool.with_room(most):
            while self.queue and slot.load < most:
                if self.watchdog:
                    self.watchdog.handing_over(slot.index, self.inflight, self.pool.handles())
                shard = self.queue.popleft()
                self.inflight[slot.actor.run_shard.remote(shard)] = (shard, slot.index, slot.actor)
                slot.load += 1

    def _check_placement(self) -> None:
        starting = len(self.pool.start_refs())
        if not self.inflight and not starting:
            raise ActorStartFailed(f"no generator actor is left to run the {len(self.queue)} remaining shards")
        if self.pool.count(*STARTED):
            self.placement_deadline = _deadline(self.config.placement_timeout_s)
        elif time.monotonic() > self.placement_deadline:
            raise PlacementTimeout(
                f"no generator actor could be placed and started within --placement-timeout-s "
                f"{self.config.placement_timeout_s:g} "
                f"({waiting_line(starting, 0, self.sizing, bool(self.autoscaler))}); "
                f"{len(self.queue)} shards left, committed shards kept; run the same command to resume"
            )

    def _wait(self) -> list:
        import ray

        ready, waiting = ray.wait([*self.inflight, *self.pool.start_refs()], num_returns=1, timeout=1.0)
        if ready and waiting:  # everything else already done too: handled before the watchdog looks
            ready += ray.wait(waiting, num_returns=len(waiting), timeout=0)[0]
        return ready

    def _start_step(self, ref) -> None:
        step = self.pool.start_step(ref)
        if step.kind in ("placed", "stale"):
            return
        if step.kind == "loaded":
            self._actor_started(step.info)
            return
        slot, error = step.slot, short_error(step.error)
        verdict = self.retry.start_failed(slot.failed_starts, step.model_failed, bool(self.result.actor_info))
        if verdict is StartVerdict.END_RUN:
            raise ActorStartFailed(f"the generator actors could not start: {error}") from None
        if verdict is StartVerdict.RESTART:
            log.warning("actor %d failed to start (%s); starting another", slot.index, error)
            self.pool.start(slot)
        else:
            log.warning("actor %d failed to start %d times; going on without it", slot.index, slot.failed_starts)
            self.pool.lose(slot)

    def _actor_started(self, info: dict) -> None:
        first = not self.result.actor_info
        if first:
            self.result.model_id = info["model_id"]
            self.result.driver_seconds["start_actors"] = time.perf_counter() - self.phase_start
        self._tell("actor_started", info, first)
        self.result.actor_info.append(info)

    def _shard_back(self, ref) -> None:
        import ray
        from ray.exceptions import RayError

        shard, index, actor = self.inflight.pop(ref)
        slot = self.pool.slots[index]
        slot.load -= 1
        if self.watchdog and actor is slot.actor:
            self.watchdog.finished(index)
        try:
            done: ShardResult = ray.get(ref)
        except RayError as exc:  # the task raised, its actor died, or its result was lost
            self._shard_failed(shard, slot, actor, exc)
            return
        if shard.shard_id in self.failure_records:  # an earlier run's record of this very shard
            self.output.remove(f"{FAILURES_DIR}/{shard.shard_id}.json")
        self.result.results.append(done)
        self._tell("shard_committed", index, done)

    def _shard_failed(self, shard: ShardSpec, slot: Slot, actor, exc: BaseException) -> None:
        from ray.exceptions import RayActorError

        if self.lock and isinstance(getattr(exc, "cause", None), OutputLocked):
            self.lock.verify()  # an actor found the lease lost: stop before recording anything
        fatal = fatal_storage_error(exc)
        if fatal is not None:  # a full disk: no retry, no record can help
            raise fatal from None
        actor_died = isinstance(exc, RayActorError)
        blamed = self.watchdog.blamed.get(actor._actor_id.hex()) if self.watchdog else None
        failure = self.retry.shard_failed(shard.shard_id, short_error(exc), actor_died, blamed)
        if actor_died and _died_here(exc, slot.actor):
            log.warning("actor %d died (%s); starting a replacement", slot.index, failure.error)
            self.pool.start(slot)
            self.result.actors_replaced += 1
        if failure.verdict is ShardVerdict.GIVE_UP:
            self._give_up(shard, failure)
        else:
            self.result.retries += 1
            self.queue.append(shard)

    def _give_up(self, shard: ShardSpec, failure: ShardFailure) -> None:
        record_failure(self.output, shard, failure.error, failure.attempts)
        self.result.failed[shard.shard_id] = failure.error
        self.result.failed_clips += shard.num_clips
        self._tell("shard_failed", shard, failure.error)

    def _report(self) -> None:
        clips = self.poller.clips(self.pool.handles(), self.pool.started_flags(), self.inflight)
        self._tell("clips_in_flight", clips)
        starting = len(self.pool.start_refs())
        if starting and time.monotonic() - self.last_report >= PLACEMENT_REPORT_S:
            self.last_report = time.monotonic()
            self.autoscaler = has_autoscaler() if self.autoscaler is None else self.autoscaler
            started = self.pool.count(*STARTED)
            self._tell(
                "waiting",
                waiting_line(starting, started, self.sizing, self.autoscaler, self.config.placement_timeout_s),
            )

    def _finish(self) -> None:
        now = time.perf_counter()
        started_at = self.phase_start + self.result.driver_seconds.setdefault("start_actors", now - self.phase_start)
        self.result.driver_seconds["run_shards"] = now - started_at
        for observer in self.observers:
            observer.close()
        self.pool.kill_all()


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


def _died_here(exc, actor) -> bool:
    """True once per death: the other in-flight tasks of an already-replaced actor start no more actors."""
    dead = getattr(exc, "actor_id", None)
    return dead is None or dead == actor._actor_id.hex()
