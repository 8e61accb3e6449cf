"""The driver: validate, lock, skip what is committed, feed actors, record failures, summarise.

A plain Ray Core loop (as in datatrove's executor): a bounded number of shards in flight per actor,
`ray.wait` with a timeout, a dead actor replaced and its shards retried elsewhere, a shard that keeps
failing written to failures/ while the run goes on. An actor gets shards only once it has started,
so actors still waiting for a node (an autoscaler adding GPU workers) hold no work back. Every
committed shard survives any crash; a rerun skips them by reading their indexes. SIGTERM (`ray job
stop`) stops a run like an error does: actors killed, lock released, committed shards kept. A run
whose lock another run took over (--break-lock) stops, and its actors commit nothing more.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from birdgen_ray.config import RunConfig
from birdgen_ray.index.reader import committed_index, consolidate
from birdgen_ray.io.layout import FAILURES_DIR, PLAN_FILE, SUMMARY_FILE
from birdgen_ray.io.storage import Output
from birdgen_ray.plan.schema import read_plan
from birdgen_ray.schedule.actor import ShardResult, actor_class
from birdgen_ray.schedule.lock import OutputLock, OutputLocked
from birdgen_ray.schedule.progress import RunProgress
from birdgen_ray.schedule.resume import SettingsMismatch, check_settings, check_unchanged  # noqa: F401 (re-exported)
from birdgen_ray.schedule.shards import ShardSpec, make_shards, pending_rows
from birdgen_ray.schedule.sizing import size_actor_pool, waiting_line
from birdgen_ray.schedule.summary import build_summary
from birdgen_ray.write.shard_writer import remove_uncommitted

log = logging.getLogger(__name__)

PLACEMENT_REPORT_S = 30.0  # how often the driver says which actors it is still waiting for
LOCK_CHECK_S = 30.0  # how often the driver re-reads the lock (one small read) to notice a takeover


class ActorStartFailed(RuntimeError):
    """The generator could not be built in an actor (unknown model, missing weights, bad device)."""


class Stopped(KeyboardInterrupt):
    """SIGTERM reached the driver. Not an Exception, so no library's `except Exception` swallows it
    on its way out of the locked block; a KeyboardInterrupt, as Ray turns any other exception that a
    signal handler raises inside ray.wait/ray.get into a SystemError."""


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


def submit(run: RunConfig) -> dict:
    """Run (or resume) a job to completion; returns the run summary (also written to OUT/summary.json).

    Raises `Stopped` on SIGTERM once the actors are killed and the lock is released.
    """
    with _stop_on_sigterm():
        return _submit(run)


@contextmanager
def _stop_on_sigterm():
    """While inside: SIGTERM raises `Stopped` in the main thread (signals reach no other thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    received = []

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        received.append(signum)
        raise Stopped("stopped by SIGTERM")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except BaseException:
        if received:  # raised inside a Ray call, it comes out as Ray's own KeyboardInterrupt
            raise Stopped("stopped by SIGTERM") from None
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _submit(run: RunConfig) -> dict:
    started = time.time()
    plan = read_plan(run.plan_path, run.storage_options)  # the whole plan is valid before anything is touched
    output = Output(run.out, run.storage_options)
    with OutputLock(output, run.break_lock) as lock:
        phase_start = time.perf_counter()
        check_settings(output, run.generation, run.generator)
        cleaned = remove_uncommitted(output)  # what a crashed run left half-written
        committed = committed_index(output)
        check_unchanged(plan, committed, run.plan_path, output.uri)
        output.write_table(PLAN_FILE, plan)  # only a plan that will run replaces the last one
        pending = pending_rows(plan, None if committed is None else committed["clip_id"])
        shards = make_shards(pending, run.shard_size)
        log.info(
            "%d planned, %d already committed, %d shards to run, %d leftover files removed",
            plan.num_rows,
            plan.num_rows - pending.num_rows,
            len(shards),
            cleaned,
        )
        prepare_seconds = time.perf_counter() - phase_start
        drive_result = drive(run, output, shards, lock) if shards else DriveResult()
        phase_start = time.perf_counter()
        lock.check()  # never clean up or consolidate under the feet of a run that took the lock over
        remove_uncommitted(output)  # what actors killed during this run left
        index = consolidate(output, known=committed)  # reads only the shards this run committed
        prune_failures(output, index)
        drive_result.driver_seconds = {
            "prepare": prepare_seconds,
            **drive_result.driver_seconds,
            "finish": time.perf_counter() - phase_start,
        }
        summary = build_summary(
            run,
            lock.run_id,
            plan,
            index,
            drive_result,
            started,
            already_done=0 if committed is None else committed.num_rows,
        )
        output.write_json(SUMMARY_FILE, summary)
    return summary


def init_ray(run: RunConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    sigterm = signal.getsignal(signal.SIGTERM)
    if run.address or os.environ.get("RAY_ADDRESS"):
        # Inside a Ray job or against a running cluster: join it, never pass resources.
        ray.init(address=run.address or None, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if sigterm is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, sigterm)  # ray.init puts its own sys.exit there: keep the caller's


def drive(run: RunConfig, output: Output, shards: list[ShardSpec], lock: OutputLock | None = None) -> DriveResult:
    """Run shards on a pool of actors; an actor gets shards once it has started (placed, generator built).

    With the output's `lock`, the driver re-reads it every LOCK_CHECK_S and its actors before each
    commit: once another run has taken it over, this one stops (OutputLocked) and commits no more.
    """
    import ray
    from ray.exceptions import RayActorError, RayError

    phase_start = time.perf_counter()
    init_ray(run)  # counted with start_actors: a local Ray starts here
    resources = ray.cluster_resources()
    sizing = size_actor_pool(run, resources.get("GPU", 0.0), resources.get("CPU", 1.0))
    count = min(sizing.count, len(shards))
    options: dict = {"num_cpus": 1}
    if sizing.gpus_per_actor:
        options["num_gpus"] = sizing.gpus_per_actor
    if run.actor_env:
        options["runtime_env"] = {"env_vars": dict(run.actor_env)}
    Actor = actor_class(max_concurrency=max(2, run.max_inflight_per_actor))  # generate one, write another
    result = DriveResult(actors=count, gpus_per_actor=sizing.gpus_per_actor)

    actors: list = [None] * count
    starting: dict = {}  # info() ref -> slot, until that actor has started
    ready = [False] * count
    failed_starts = [0] * count  # in a row, per slot

    def start_actor(slot: int) -> None:
        if actors[slot] is not None:  # a dead or failed actor must not keep its GPU reservation
            ray.kill(actors[slot], no_restart=True)
        actors[slot] = Actor.options(**options).remote(run, sizing.cpu_threads, lock.run_id if lock else None)
        ready[slot] = False
        starting[actors[slot].info.remote()] = slot

    def started(ref) -> None:
        slot = starting.pop(ref)
        try:
            info = ray.get(ref)
        except RayError as exc:
            failed_starts[slot] += 1
            # No actor of this run has started: the generator cannot be built (bad model id, no
            # weights); fail fast instead of retrying every shard. Later, a replacement may just
            # have lost its node: try again, a few times.
            if not result.actor_info:
                raise ActorStartFailed(f"the generator actors could not start: {_short_error(exc)}") from None
            if failed_starts[slot] < run.max_shard_attempts:
                log.warning("actor %d failed to start (%s); starting another", slot, _short_error(exc))
                start_actor(slot)
            else:
                log.warning("actor %d failed to start %d times; going on without it", slot, failed_starts[slot])
            return
        if not result.actor_info:
            result.model_id = info["model_id"]
            result.driver_seconds["start_actors"] = time.perf_counter() - phase_start
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
    last_report = last_lock_check = time.monotonic()
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
                        lock.check()  # an actor found the lock taken over: stop before recording anything
                    error = _short_error(exc)
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
                        _record_failure(output, shard, error, attempts[shard.shard_id])
                        result.failed[shard.shard_id] = error
                        result.failed_clips += shard.num_clips
                        progress.failed(shard.num_clips)
                    continue
                if shard.shard_id in failure_records:  # an earlier run's record of this very shard
                    output.remove(f"{FAILURES_DIR}/{shard.shard_id}.json")
                result.results.append(done)
                progress.advance(done.clips)
            if watchdog:  # after the finished shards are counted: one that just finished is not stuck
                watchdog.kill_stuck(inflight, actors)
            if lock and time.monotonic() - last_lock_check >= LOCK_CHECK_S:
                last_lock_check = time.monotonic()
                _check_lock(lock)
            if starting and time.monotonic() - last_report >= PLACEMENT_REPORT_S:
                last_report = time.monotonic()
                progress.console.print(waiting_line(len(starting), sum(ready), sizing), highlight=False)
    finally:
        now = time.perf_counter()
        started_at = phase_start + result.driver_seconds.setdefault("start_actors", now - phase_start)
        result.driver_seconds["run_shards"] = now - started_at
        progress.close()
        for actor in filter(None, actors):  # a long-lived driver (notebook, tests) must not keep them and their GPUs
            ray.kill(actor)
    return result


class StuckActorWatchdog:
    """--shard-timeout: an actor with work that finishes no shard for `timeout_s` is stuck (a hung CUDA
    call, a stuck read or write) and is killed; the kill is charged to its oldest shard, and the shards
    that only shared the actor are retried without spending an attempt.

    The clock restarts whenever the actor finishes a shard and when an idle actor gets work. Not
    from each shard's dispatch: an actor holds several shards but generates one at a time, so a
    shard queued behind another would be timed out for waiting."""

    def __init__(self, timeout_s: float, count: int):
        self.timeout_s = timeout_s
        self.since = [0.0] * count  # per slot: when its actor last finished a shard or got work while idle
        self.blamed: dict[str, str] = {}  # killed actor (id hex) -> the shard its kill is charged to

    def handing_over(self, slot: int, inflight: dict, actors: list) -> None:
        if not self._work_of(slot, inflight, actors):
            self.since[slot] = time.monotonic()

    def finished(self, slot: int) -> None:
        self.since[slot] = time.monotonic()

    def kill_stuck(self, inflight: dict, actors: list) -> None:
        import ray

        now = time.monotonic()
        for slot, actor in enumerate(actors):
            work = self._work_of(slot, inflight, actors)
            if not work or actor._actor_id.hex() in self.blamed or now - self.since[slot] <= self.timeout_s:
                continue
            oldest = work[0]  # dispatched first: the one holding the generator (or stuck writing)
            log.warning(
                "actor %d finished no shard in %g s (shard %s); killing it", slot, self.timeout_s, oldest.shard_id
            )
            self.blamed[actor._actor_id.hex()] = oldest.shard_id
            ray.kill(actor, no_restart=True)

    @staticmethod
    def _work_of(slot: int, inflight: dict, actors: list) -> list[ShardSpec]:
        """The shards in flight on the slot's current actor (not those of an actor it replaced), oldest first."""
        return [shard for shard, s, actor in inflight.values() if s == slot and actor is actors[slot]]


def _check_lock(lock: OutputLock) -> None:
    """A takeover stops the run; a storage hiccup reading the lock must not end hours of work."""
    try:
        lock.check()
    except OutputLocked:
        raise
    except Exception as exc:  # noqa: BLE001 - any read error: look again next time
        log.warning("could not read the output's lock (%s); going on", _short_error(exc))


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
    names = output.list(FAILURES_DIR, ".json")
    if not names or index is None:
        return
    done = index["clip_id"]
    for name in names:
        clip_ids = pa.array(output.read_json(f"{FAILURES_DIR}/{name}")["clip_ids"], pa.string())
        if pc.all(pc.is_in(clip_ids, value_set=done)).as_py() is not False:
            output.remove(f"{FAILURES_DIR}/{name}")
