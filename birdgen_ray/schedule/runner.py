"""`submit`: validate, lease, skip what is committed, drive the shards, consolidate, summarise.

The bookkeeping around one run, top to bottom: the plan is valid and the output's settings match
before anything is touched; what a crashed run left half-written is removed (temporary files too);
only pending clips are cut into shards and driven (schedule/drive.py); then the index is
consolidated, stale failure records pruned and the summary written (with the run appended to its
history). SIGTERM (`ray job stop`) stops a run like an error does: actors killed, lease released,
committed shards kept. Throughout, `_birdgen/progress.json` says what the run is doing, and how it
ended (finished, failed, interrupted, stopped).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import replace

import pyarrow as pa

from birdgen_ray.config import RunConfig
from birdgen_ray.generate.revision import model_revision
from birdgen_ray.index.reader import committed_index, consolidate
from birdgen_ray.io.layout import PLAN_FILE, RUN_FILE, SHARDS_DIR, SUMMARY_FILE, TEMPORARY_DIRS
from birdgen_ray.io.storage import Output
from birdgen_ray.plan.validate import read_plan
from birdgen_ray.schedule.drive import DriveResult, drive
from birdgen_ray.schedule.failures import prune_failures, short_error
from birdgen_ray.schedule.lease import LeaseLost, LeaseTimes, OutputLease
from birdgen_ray.schedule.resume import check_scheduler, check_settings, check_unchanged
from birdgen_ray.schedule.run_state import RunState
from birdgen_ray.schedule.shards import make_shards, pending_rows
from birdgen_ray.schedule.summary import build_summary, previous_summary, with_history
from birdgen_ray.verify.birdnet import LICENCE, birdnet_labels, require_extra
from birdgen_ray.verify.species import describe_unverifiable, plan_species
from birdgen_ray.versions import audio_versions
from birdgen_ray.write.repair import repair_damaged
from birdgen_ray.write.shard_writer import remove_uncommitted

log = logging.getLogger(__name__)


class Stopped(KeyboardInterrupt):
    """SIGTERM reached the driver. Not an Exception, so no library's `except Exception` swallows it
    on its way out of the locked block; a KeyboardInterrupt, as Ray turns any other exception that a
    signal handler raises inside ray.wait/ray.get into a SystemError."""


def submit(run: RunConfig) -> dict:
    """Run (or resume) a job to completion; returns the run summary (also written to OUT/summary.json).

    Raises `Stopped` on SIGTERM once the actors are killed and the lease is released.
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
    plan = read_plan(run.plan_path, run.storage_options, run.allow_extra_columns)  # all valid before any work
    check_scheduler(plan, run.generation, run.plan_path)
    run = _with_species(run, plan)
    output = Output(run.out, run.storage_options)
    with OutputLease(output, run.break_lock, LeaseTimes(run.lease_ttl_s, run.lease_renew_s)) as lock:
        phase_start = time.perf_counter()
        versions = audio_versions(model_revision(run.generation.model))
        version_change = check_settings(output, run.generation, run.generator, versions, run.allow_version_change)
        lock.watch(RUN_FILE)  # written by check_settings: gone only if the output is wiped
        cleaned = remove_uncommitted(output)  # what a crashed run left half-written
        cleaned += sum(output.remove_leftovers(d) for d in TEMPORARY_DIRS if d != SHARDS_DIR)
        committed = committed_index(output)
        repaired, _ = repair_damaged(output, committed)  # a truncated tar, or what `check` found
        if repaired:  # read every shard index again: a repaired shard's rows moved
            committed = committed_index(output, known=pa.table({}))
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
        state = RunState(output, lock.run_id, plan.num_rows, plan.num_rows - pending.num_rows, run.lease_ttl_s)
        state.write()
        try:
            summary = _run(run, output, plan, committed, shards, lock, state, started, prepare_seconds, version_change)
        except LeaseLost:
            state.enabled = False  # the output is another run's now: leave its progress.json alone
            raise
        except Stopped:
            state.write("stopped", "stopped by SIGTERM")
            raise
        except KeyboardInterrupt:
            state.write("interrupted")
            raise
        except BaseException as exc:
            state.write("failed", short_error(exc))
            raise
        state.write("finished")
    return summary


def _run(run, output, plan, committed, shards, lock, state, started, prepare_seconds, version_change) -> dict:
    """Drive the shards, then consolidate and summarise: the part whose ending progress.json records."""
    drive_result = drive(run, output, shards, lock, state) if shards else DriveResult()
    phase_start = time.perf_counter()
    lock.verify()  # never clean up or consolidate under the feet of a run that took the lease over
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
    summary = with_history(summary, previous_summary(output), lock.taken_over, version_change)
    if run.generation.verifier:
        summary["verifier_licence"] = LICENCE
        summary["unverifiable_classes"] = sorted(set(plan["label"].to_pylist()) - set(run.generation.species_labels))
    output.write_json(SUMMARY_FILE, summary)
    return summary


def _with_species(run: RunConfig, plan) -> RunConfig:
    """A verifying run with each class's BirdNET label; the classes that have none are named."""
    if not run.generation.verifier:
        return run
    require_extra()  # here, with the install hint, not in every actor
    species = plan_species(plan, birdnet_labels(), run.species_map)
    if species.unverifiable:
        log.warning(describe_unverifiable(species))
    labels = birdnet_labels()
    generation = replace(run.generation, species_labels={k: labels[i] for k, i in species.index.items()})
    if generation.quality.species_confidence_relative:
        generation = replace(generation, species_ceilings=_ceilings(plan, set(species.index)))
    return replace(run, generation=generation)


def _ceilings(plan, verifiable: set[str]) -> dict[str, float]:
    """label -> the plan's reference_ceiling; a verifiable class without one makes a relative
    species threshold meaningless, so the run is refused naming the classes."""
    ceilings: dict[str, float] = {}
    if "reference_ceiling" in plan.column_names:
        for label, ceiling in zip(plan["label"].to_pylist(), plan["reference_ceiling"].to_pylist()):
            if ceiling is not None:
                ceilings.setdefault(label, float(ceiling))
    missing = sorted(verifiable - set(ceilings))
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ValueError(
            "a relative --min-species-confidence (like 0.5x) needs each class's reference_ceiling "
            f"(plan --references with the birdnet extra); the plan has none for: {shown}"
        )
    return ceilings
