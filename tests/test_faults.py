"""Exactly-once under faults, on the session's real local Ray with the null generator.

Actors are SIGKILLed mid-run (found among this test process's own descendants by the title Ray
gives a worker while it runs a task, so no other session's processes are touched); the driver is a
real `birdgen-ray submit` subprocess joined to the same Ray and SIGKILLed (or SIGTERMed, as by
`ray job stop`) after some shards committed. Every faulty output must end with each planned clip
exactly once in index.parquet and audio byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
import torch

from birdgen_ray.config import EngineConfig, RunConfig
from birdgen_ray.index.reader import open_index, read_clip_bytes
from birdgen_ray.index.status import output_status
from birdgen_ray.io.layout import LEASE_FILE, shard_paths
from birdgen_ray.io.storage import Output
from birdgen_ray.plan.validate import validate_plan
from birdgen_ray.schedule import runner
from birdgen_ray.schedule.actor import ShardWorker
from birdgen_ray.schedule.drive import ActorStartFailed
from birdgen_ray.schedule.lease import OutputLease, OutputLocked
from birdgen_ray.schedule.runner import Stopped, submit
from birdgen_ray.schedule.shards import make_shards
from tests import fault_hooks
from tests.fault_hooks import SLEEP_ENV
from tests.plans import plan_table, write_plan

PLAN_CLIPS = 48
REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from birdgen_ray.cli import app; app()"]  # `birdgen-ray`, wherever it is installed
RUNNING_SHARD = "ray::ShardWorker.run_shard"  # Ray's process title while an actor runs that method


def null_run(plan_path, out, **kw) -> RunConfig:
    defaults = dict(generator="null", num_actors=2, gpus_per_actor=0, shard_size=4, progress=False)
    defaults.update(kw)
    return RunConfig(plan_path=str(plan_path), out=str(out), **defaults)


@pytest.fixture(scope="module")
def reference(ray_local, tmp_path_factory):
    """An uninterrupted run of the plan: the bytes every faulty run must reproduce."""
    root = tmp_path_factory.mktemp("reference")
    path = write_plan(root / "plan.parquet", plan_table(PLAN_CLIPS))
    summary = submit(null_run(path, root / "out", shard_size=16))
    assert summary["status"] == "complete"
    return path, clip_bytes(root / "out")


def clip_bytes(out) -> dict[str, bytes]:
    return {row["clip_id"]: read_clip_bytes(str(out), row) for row in open_index(str(out)).to_pylist()}


def assert_exactly_once_and_identical(out: Path, plan_path: str, reference_bytes: dict[str, bytes]) -> None:
    planned = pq.read_table(plan_path).num_rows
    ids = pq.read_table(out / "index.parquet", columns=["clip_id"])["clip_id"].to_pylist()
    assert len(ids) == len(set(ids)) == planned
    subset = {cid: reference_bytes[cid] for cid in ids}  # KeyError: a clip that is not in the plan
    assert clip_bytes(out) == subset
    status = output_status(Output(str(out)))
    assert (status["planned"], status["done"], status["failed"], status["pending"]) == (planned, planned, 0, 0)
    # nothing half-written stays: every tar has its index and the other way round
    names = sorted(p.name for p in (out / "shards").iterdir())
    stems = {n.rsplit(".", 1)[0] for n in names}
    assert names == sorted([f"{s}.tar" for s in stems] + [f"{s}.parquet" for s in stems])


def my_processes(title: str) -> list[psutil.Process]:
    """This test process's descendants whose command line contains `title`."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if title in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def test_actors_killed_mid_run_are_replaced_and_each_clip_lands_once(reference, tmp_path):
    plan_path, reference_bytes = reference
    out = tmp_path / "out"
    killed: list[int] = []
    stop = threading.Event()

    def kill_actors(times: int) -> None:
        while len(killed) < times and not stop.is_set():
            busy = [p for p in my_processes(RUNNING_SHARD) if p.pid not in killed]
            if busy:
                os.kill(busy[0].pid, signal.SIGKILL)
                killed.append(busy[0].pid)
                stop.wait(0.4)  # let the driver notice and the replacement pick work up
            else:
                stop.wait(0.02)

    killer = threading.Thread(target=kill_actors, args=(3,), daemon=True)
    killer.start()
    try:
        summary = submit(null_run(plan_path, out, max_shard_attempts=20, actor_env={SLEEP_ENV: "0.1"}))
    finally:
        stop.set()
        killer.join()

    assert len(killed) == 3, "the run ended before three actors could be killed"
    assert summary["status"] == "complete" and summary["failed_clips"] == 0
    assert summary["actors_replaced"] == 3
    assert summary["shard_retries"] >= 3  # every killed actor had a shard in flight
    assert_exactly_once_and_identical(out, plan_path, reference_bytes)


def start_driver(ray_local, plan_path: str, out: Path, *extra: str) -> subprocess.Popen:
    """A real `birdgen-ray submit` process joined to the session's Ray, slowed to 0.1 s per clip."""
    command = [
        *CLI,
        "submit",
        plan_path,
        "--out",
        str(out),
        "--generator",
        "null",
        "--shard-size",
        "4",
        "--num-actors",
        "2",
        "--no-progress",
        "--address",
        ray_local.get_runtime_context().gcs_address,
        "--actor-env",
        f"{SLEEP_ENV}=0.1",
        *extra,
    ]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": fault_hooks.PYTHONPATH}  # token auth, hooks
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def committed_shards(out: Path) -> int:
    return len(list((out / "shards").glob("*.parquet"))) if (out / "shards").exists() else 0


def kill_group(driver: subprocess.Popen) -> None:
    try:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and anything it started
    except ProcessLookupError:  # it had already exited
        pass
    driver.wait(timeout=30)


def test_a_driver_sigkilled_at_three_random_points_resumes_with_no_flag_to_exactly_once(ray_local, reference, tmp_path):
    """No --break-lock: on the same host a lease whose holder's process is gone is stale at once."""
    plan_path, reference_bytes = reference
    out = tmp_path / "out"
    seed = int(os.environ.get("BIRDGEN_TEST_SEED") or time.time())
    rng = random.Random(seed)
    for kill in range(3):
        before = committed_shards(out)
        # 2.4 s a shard: shards that commit between the wait and the kill stay few on a loaded box
        driver = start_driver(ray_local, plan_path, out, "--actor-env", f"{SLEEP_ENV}=0.6")
        try:
            # a random number of shards more, then a random moment; the last kill comes after one more
            # shard, so that the resumed run always has work left (12 shards in all)
            wanted = before + (rng.randint(1, 2) if kill < 2 else 1)
            wait_until(lambda w=wanted, d=driver: committed_shards(out) >= w or d.poll() is not None, 120, "commits")
            assert driver.poll() is None, driver.stdout.read().decode()
            if kill == 0:  # a second writer while the first is alive: refused, naming the live holder
                with pytest.raises(OutputLocked, match=rf"pid {driver.pid}.*renewed \d+ s ago.*--break-lock"):
                    submit(null_run(plan_path, out))
            time.sleep(rng.uniform(0.0, 0.5))
        finally:
            kill_group(driver)
        assert (out / LEASE_FILE).exists(), f"seed {seed}: the killed driver's lease stays behind"
    at_kill = committed_shards(out)
    assert at_kill < PLAN_CLIPS // 4, f"seed {seed}: the driver finished before the third kill"

    started = time.monotonic()
    summary = submit(null_run(plan_path, out))  # the same command, no flag
    assert summary["status"] == "complete", f"seed {seed}"
    assert summary["history"][-1]["took_over_from"]["reason"].endswith("is gone from this host")
    assert summary["driver_seconds"]["prepare"] < 30 and time.monotonic() - started < 120  # at once, no TTL wait
    assert summary["already_done_before_run"] >= 4 * at_kill  # committed shards were skipped, not redone
    assert summary["generated_this_run"] == PLAN_CLIPS - summary["already_done_before_run"]
    assert_exactly_once_and_identical(out, plan_path, reference_bytes)
    assert not (out / LEASE_FILE).exists()
    wait_until(lambda: not my_processes("ray::ShardWorker"), 60, "generator actors to exit")


def test_a_driver_paused_past_its_ttl_finds_its_lease_taken_and_commits_nothing(ray_local, reference, tmp_path):
    plan_path, _ = reference
    out = tmp_path / "out"
    driver = start_driver(ray_local, plan_path, out, "--lease-ttl-s", "2", "--lease-renew-s", "0.3")
    try:
        wait_until(lambda: committed_shards(out) >= 1 or driver.poll() is not None, 120, "a committed shard")
        assert driver.poll() is None, driver.stdout.read().decode()
        os.kill(driver.pid, signal.SIGSTOP)  # a hung pod, a long GC pause, a laptop lid
        time.sleep(2.5)  # past the TTL: its actors, still running, must not commit any more
        taker = OutputLease(Output(str(out)))
        taker.acquire()  # expired: a new run takes it over without --break-lock
        assert taker.taken_over["reason"].startswith("its lease expired")
        at_takeover = sorted(p.name for p in (out / "shards").glob("*.parquet"))
        os.kill(driver.pid, signal.SIGCONT)
        output = driver.communicate(timeout=60)[0].decode()
    finally:
        kill_group(driver)
    assert driver.returncode == 2, output
    flat = " ".join(output.split())
    assert "this run stops" in flat or "commits nothing more" in flat, output
    assert "Traceback" not in output
    assert sorted(p.name for p in (out / "shards").glob("*.parquet")) == at_takeover  # nothing committed since
    assert json.loads((out / LEASE_FILE).read_text())["token"] == taker.token  # still the taker's
    assert not (out / "summary.json").exists()
    taker.release()


def test_sigterm_stops_the_driver_releases_its_lock_and_a_plain_rerun_completes(ray_local, reference, tmp_path):
    plan_path, reference_bytes = reference
    out = tmp_path / "out"
    driver = start_driver(ray_local, plan_path, out)
    try:
        wait_until(lambda: committed_shards(out) >= 1 or driver.poll() is not None, 180, "a committed shard")
        assert driver.poll() is None, driver.stdout.read().decode()
        driver.send_signal(signal.SIGTERM)  # what `ray job stop` sends first
        output = driver.communicate(timeout=60)[0].decode()
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=30)

    assert driver.returncode == 128 + signal.SIGTERM, output
    assert "stopped by SIGTERM: committed shards are kept and the lease is released" in " ".join(output.split())
    assert not (out / "_birdgen" / "lease.json").exists()
    wait_until(lambda: not my_processes("ray::ShardWorker"), 60, "the stopped driver's actors to exit")
    at_stop = committed_shards(out)
    assert 1 <= at_stop < PLAN_CLIPS // 4, "the driver finished before it could be stopped"

    summary = submit(null_run(plan_path, out))  # no --break-lock needed
    assert summary["status"] == "complete"
    assert summary["already_done_before_run"] >= 4  # the shard seen committed was kept, not redone
    assert summary["generated_this_run"] == PLAN_CLIPS - summary["already_done_before_run"]
    assert_exactly_once_and_identical(out, plan_path, reference_bytes)


def test_sigterm_before_ray_starts_also_releases_the_lock_and_restores_the_handler(
    ray_local, reference, tmp_path, monkeypatch
):
    """In-process: SIGTERM while the driver still reads the output, before any Ray call."""
    plan_path, _ = reference
    reading = threading.Event()

    def slow_committed_index(output):
        reading.set()
        time.sleep(30)  # cut short by the signal
        return None

    monkeypatch.setattr(runner, "committed_index", slow_committed_index)
    threading.Thread(target=lambda: reading.wait(30) and os.kill(os.getpid(), signal.SIGTERM), daemon=True).start()
    before = signal.getsignal(signal.SIGTERM)  # the session Ray's own: a safety net for this test process
    with pytest.raises(Stopped, match="stopped by SIGTERM"):
        submit(null_run(plan_path, tmp_path / "out"))
    assert (tmp_path / "out" / "_birdgen" / "run.json").exists()  # it was inside the locked block
    assert not (tmp_path / "out" / "_birdgen" / "lease.json").exists()
    assert signal.getsignal(signal.SIGTERM) is before


def test_leftovers_and_late_commits_of_a_dead_run_leave_each_clip_once(ray_local, reference, tmp_path):
    """What a crashed run can leave, made by the real writer, then a resume over it."""
    plan_path, reference_bytes = reference
    plan = validate_plan(pq.read_table(plan_path))
    out = tmp_path / "out"
    writer = ShardWorker(null_run(plan_path, out))  # an actor of the dead run, in-process
    shards_dir = out / "shards"

    late = make_shards(plan.slice(0, 6), 6)[0]  # committed by an actor that outlived its driver
    writer.run_shard(late)
    orphan = make_shards(plan.slice(6, 3), 3)[0]  # its writer died between the tar and the index
    writer.run_shard(orphan)
    os.remove(out / shard_paths(orphan.shard_id)[1])
    dangling = make_shards(plan.slice(9, 2), 2)[0]  # a late index whose tar a cleanup removed
    writer.run_shard(dangling)
    os.remove(out / shard_paths(dangling.shard_id)[0])
    (shards_dir / f"{late.shard_id}.tar.tmp-0badc0de").write_bytes(b"half a tar")  # a killed writer's temp file

    summary = submit(null_run(plan_path, out, shard_size=7))
    assert summary["already_done_before_run"] == 6
    assert summary["generated_this_run"] == PLAN_CLIPS - 6
    assert_exactly_once_and_identical(out, plan_path, reference_bytes)
    assert not (shards_dir / f"{orphan.shard_id}.tar").exists()
    assert not (shards_dir / f"{dangling.shard_id}.parquet").exists()

    # A late commit that lands after the resume finished duplicates clips in the shards only:
    writer.run_shard(make_shards(plan.slice(3, 10), 10)[0])
    again = submit(null_run(plan_path, out))
    assert again["generated_this_run"] == 0
    assert_exactly_once_and_identical(out, plan_path, reference_bytes)


class OutOfMemoryAboveTwo:
    """Wraps a generator; raises CUDA OOM whenever asked to run a batch larger than `limit` (2)."""

    limit = 2

    def __init__(self, inner, batch_size: int):
        self.inner = inner
        self.model_id = inner.model_id
        self.stage_times = inner.stage_times
        self.batch_size = batch_size
        self.batch_sizes_tried: list[int] = []

    def generate(self, rows):
        self.batch_sizes_tried.append(self.batch_size)
        if self.batch_size > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [
            clip
            for i in range(0, len(rows), self.batch_size)
            for clip in self.inner.generate(rows[i : i + self.batch_size])
        ]


def test_cuda_out_of_memory_halves_the_batch_and_gives_the_same_shard(tmp_path):
    plan_path = write_plan(tmp_path / "plan.parquet", plan_table(10))
    shard = make_shards(validate_plan(pq.read_table(plan_path)), 10)[0]
    plain = ShardWorker(null_run(plan_path, tmp_path / "plain"))
    plain.run_shard(shard)

    split = ShardWorker(null_run(plan_path, tmp_path / "split", engine=EngineConfig(batch_size=8)))
    split.generator = OutOfMemoryAboveTwo(split.generator, batch_size=8)
    result = split.run_shard(shard)

    assert split.generator.batch_sizes_tried == [8, 4, 2]
    assert result.oom_splits == 2 and result.clips == 10
    for rel in shard_paths(shard.shard_id):
        assert (tmp_path / "split" / rel).read_bytes() == (tmp_path / "plain" / rel).read_bytes()

    # A batch of one that still does not fit is a real error, not an endless loop.
    hopeless = ShardWorker(null_run(plan_path, tmp_path / "hopeless"))
    hopeless.generator = OutOfMemoryAboveTwo(hopeless.generator, batch_size=8)
    hopeless.generator.limit = 0
    with pytest.raises(torch.cuda.OutOfMemoryError):
        hopeless.run_shard(shard)
    assert hopeless.generator.batch_sizes_tried == [8, 4, 2, 1]
    assert not (tmp_path / "hopeless" / "shards").exists()


def test_more_actors_than_the_cluster_can_place_are_capped_instead_of_hanging(reference, tmp_path):
    plan_path, reference_bytes = reference
    summary = submit(null_run(plan_path, tmp_path / "out", num_actors=50))  # the session's Ray has 4 CPUs
    assert summary["status"] == "complete" and summary["actors"] == 4
    assert_exactly_once_and_identical(tmp_path / "out", plan_path, reference_bytes)


def test_a_generator_that_cannot_start_fails_fast_and_leaves_no_actor_or_lock(reference, tmp_path):
    plan_path, _ = reference
    with pytest.raises(ActorStartFailed, match="could not start: .*unknown generator 'no-such-model'"):
        submit(null_run(plan_path, tmp_path / "out", generator="no-such-model"))
    assert not (tmp_path / "out" / "_birdgen" / "lease.json").exists()
    wait_until(lambda: not my_processes("ray::ShardWorker"), 60, "generator actors to exit")


@pytest.mark.parametrize("noticed_by", ["driver", "actor"])
def test_a_run_whose_lock_was_taken_over_stops_and_leaves_the_new_holders_files_alone(
    reference, tmp_path, monkeypatch, noticed_by
):
    """--break-lock on a run that was not dead after all (a partitioned node, a hung pod): the old
    driver must not go on to clean up, consolidate or summarise under the new holder's feet. It
    notices when its lease renewer reads the lease or when an actor refuses to commit."""
    plan_path, _ = reference
    out = tmp_path / "out"
    renew = {"lease_renew_s": 0.2} if noticed_by == "driver" else {}  # the renewer reads the lease
    in_flight_tar = out / "shards" / "shard-of-the-new-holder.tar"  # its index not written yet

    def take_over() -> None:
        wait_until(lambda: committed_shards(out) >= 1, 60, "a committed shard")
        OutputLease(Output(str(out)), break_lock=True).acquire()
        in_flight_tar.write_bytes(b"the new run's audio")

    thief = threading.Thread(target=take_over, daemon=True)
    thief.start()
    with pytest.raises(OutputLocked, match="taken over"):
        submit(null_run(plan_path, out, actor_env={SLEEP_ENV: "0.1"}, **renew))
    thief.join()

    assert in_flight_tar.exists()  # not removed as a crash leftover
    assert not (out / "index.parquet").exists() and not (out / "summary.json").exists()
    assert (out / "_birdgen" / "lease.json").exists()  # still the new holder's
    assert committed_shards(out) < PLAN_CLIPS // 4  # it stopped instead of running the plan to the end
    assert not (out / "failures").exists()  # the refused commits are not failures to record


def test_a_late_writer_of_a_run_whose_lock_was_taken_over_commits_nothing(reference, tmp_path):
    """An actor outliving its driver (the driver SIGKILLed, its node partitioned) may still finish a
    shard. Once a resume holds the lock, that commit would put clips in the output a second time,
    under another shard id than the resume's, so the actor checks the lock before it commits."""
    plan_path, _ = reference
    plan = validate_plan(pq.read_table(plan_path))
    out = tmp_path / "out"
    dead_run = OutputLease(Output(str(out)))
    dead_run.acquire()  # and never released: its driver died
    writer = ShardWorker(null_run(plan_path, out), lock_run_id=dead_run.run_id)  # one of its actors

    before = make_shards(plan.slice(0, 4), 4)[0]
    writer.run_shard(before)  # while the lock is its run's: committed
    assert all((out / rel).exists() for rel in shard_paths(before.shard_id))

    OutputLease(Output(str(out)), break_lock=True).acquire()  # the resume takes over
    late = make_shards(plan.slice(4, 4), 4)[0]
    with pytest.raises(OutputLocked, match="taken over"):
        writer.run_shard(late)
    assert not (out / shard_paths(late.shard_id)[1]).exists()  # not committed
