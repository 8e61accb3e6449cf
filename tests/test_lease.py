"""The output's lease: exclusive create, expiry and takeover, same-host staleness, fencing by token.

Real lease files on local disk; a store that ignores If-None-Match is simulated by overwriting.
The submits are real runs on the session's local Ray with the null generator.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

import pytest

from birdgen_ray.config import RunConfig
from birdgen_ray.io.layout import LEASE_FILE
from birdgen_ray.io.storage import Output
from birdgen_ray.schedule.lease import LeaseLost, LeaseTimes, OutputLease, OutputLocked, check_lease, read_lease
from birdgen_ray.schedule.runner import submit
from tests.plans import plan_table, write_plan


class IgnoresIfNoneMatch(Output):
    """A store whose 'create if absent' overwrites, where both runs look before either creates and both
    create before either reads the lease back: the race, made to happen every time whatever the load."""

    def __init__(self, uri: str, both_looked: threading.Barrier, both_created: threading.Barrier):
        super().__init__(uri)
        self.both_looked, self.both_created = both_looked, both_created
        self.looked = self.created = False

    def read_bytes(self, rel: str) -> bytes:
        if rel != LEASE_FILE or self.looked:
            return super().read_bytes(rel)
        self.looked = True
        try:
            return super().read_bytes(rel)  # what this run sees: neither run's lease yet
        finally:
            self.both_looked.wait(10)

    def create_exclusive(self, rel: str, data: bytes) -> bool:
        self.write_bytes(rel, data)
        if not self.created:
            self.created = True
            self.both_created.wait(10)
        return True


def race(out: str, settle_s: float) -> tuple[list[OutputLease], list[OutputLocked]]:
    both_looked, both_created = threading.Barrier(2), threading.Barrier(2)
    leases = [OutputLease(IgnoresIfNoneMatch(out, both_looked, both_created), settle_s=settle_s) for _ in range(2)]
    taken, refused = [], []

    def take(lease: OutputLease) -> None:
        try:
            lease.acquire()
            taken.append(lease)
        except OutputLocked as err:
            refused.append(err)

    threads = [threading.Thread(target=take, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return taken, refused


def test_of_two_runs_creating_the_lease_at_once_only_the_last_writer_goes_on(tmp_path):
    taken, refused = race(str(tmp_path / "out"), settle_s=0.5)
    assert len(taken) == 1 and len(refused) == 1
    assert "took the lease at the same moment" in str(refused[0])
    assert taken[0].token in (tmp_path / "out" / LEASE_FILE).read_text()
    taken[0].release()
    assert not (tmp_path / "out" / LEASE_FILE).exists()


def test_the_read_back_is_what_refuses_the_second_run(tmp_path, monkeypatch):
    """Without the check after creating, both runs would write the output."""
    monkeypatch.setattr(OutputLease, "_confirm", lambda self, settle_s: None)
    taken, refused = race(str(tmp_path / "out"), settle_s=0.5)
    assert len(taken) == 2 and not refused


@pytest.mark.parametrize("uri, expected", [("local", 0.0), ("memory://birdgen-lease-test/out", 1.0)])
def test_only_object_storage_waits_before_reading_the_lease_back(tmp_path, uri, expected):
    output = Output(str(tmp_path / "out") if uri == "local" else uri)
    assert OutputLease(output).settle_s == expected


def write_lease(out, **fields) -> dict:
    record = {
        "token": "0123456789ab",
        "run_id": "0123456789ab",
        "host": "pod-7f9c",
        "pid": 4242,
        "pid_started": 1.0,
        "started_at": "2026-01-01T00:00:00Z",
        "renewed_at": time.time(),
        "ttl_s": 300.0,
        **fields,
    }
    (out / "_birdgen").mkdir(parents=True, exist_ok=True)
    (out / LEASE_FILE).write_text(json.dumps(record))
    return record


def null_run(plan_path, out, **kw) -> RunConfig:
    defaults = dict(generator="null", num_actors=1, gpus_per_actor=0, shard_size=4, progress=False)
    defaults.update(kw)
    return RunConfig(plan_path=str(plan_path), out=str(out), **defaults)


def test_a_fresh_lease_of_another_host_refuses_naming_its_holder(ray_local, tmp_path):
    out = tmp_path / "out"
    write_lease(out)
    plan = write_plan(tmp_path / "plan.parquet", plan_table(4))
    with pytest.raises(
        OutputLocked, match=r"run 0123456789ab, host pod-7f9c, pid 4242.*expires in (29\d|300) s.*--break-lock"
    ):
        submit(null_run(plan, out))
    assert not (out / "plan.parquet").exists()  # refused before touching anything
    assert submit(null_run(plan, out, break_lock=True))["status"] == "complete"  # a fresh lease, broken on purpose


def test_an_expired_lease_is_taken_over_by_itself_and_the_takeover_logged(ray_local, tmp_path, caplog):
    out = tmp_path / "out"
    write_lease(out, renewed_at=time.time() - 400)  # a dead pod's: nobody renewed it for 400 s
    plan = write_plan(tmp_path / "plan.parquet", plan_table(4))
    with caplog.at_level(logging.WARNING, logger="birdgen_ray.schedule.lease"):
        summary = submit(null_run(plan, out))
    assert summary["status"] == "complete"
    said = " ".join(caplog.messages)
    assert "taking over the lease of run 0123456789ab, host pod-7f9c, pid 4242" in said
    assert "its lease expired: last renewed" in said
    assert summary["history"][-1]["took_over_from"]["run_id"] == "0123456789ab"
    assert not (out / LEASE_FILE).exists()


def test_same_host_holder_that_is_gone_or_a_reused_pid_is_stale_at_once(tmp_path, caplog):
    out = tmp_path / "out"
    here = socket.gethostname()
    # pid reuse: the pid is alive (this very process) but was started at another time than the holder's
    write_lease(out, host=here, pid=os.getpid(), pid_started=12345.0)
    lease = OutputLease(Output(str(out)))
    with caplog.at_level(logging.WARNING):
        lease.acquire()
    assert "pid reuse" in " ".join(caplog.messages)
    lease.release()

    write_lease(out, host=here, pid=2**22 + 17)  # above any pid_max: no such process
    lease = OutputLease(Output(str(out)))
    lease.acquire()
    assert "is gone from this host" in lease.taken_over["reason"]
    # while the holder is alive (this process, same start time) its lease refuses
    with pytest.raises(OutputLocked, match=rf"pid {os.getpid()}"):
        OutputLease(Output(str(out))).acquire()
    lease.release()


@pytest.mark.parametrize("content", [b"", b'{"token": "abc", "rene', b"[]", b"\xff\xfe"])
def test_an_empty_or_half_written_lease_is_no_lease(tmp_path, content):
    out = tmp_path / "out"
    (out / "_birdgen").mkdir(parents=True)
    (out / LEASE_FILE).write_bytes(content)
    assert read_lease(Output(str(out))) is None
    lease = OutputLease(Output(str(out)))
    lease.acquire()  # no "?" holder: the file is simply replaced
    assert read_lease(Output(str(out)))["token"] == lease.token
    lease.release()


def test_a_holder_renews_and_one_past_its_ttl_or_taken_over_is_fenced(tmp_path):
    output = Output(str(tmp_path / "out"))
    times = LeaseTimes(ttl_s=1.0, renew_s=0.2)
    with OutputLease(output, times=times) as lease:
        first = read_lease(output)["renewed_at"]
        time.sleep(1.5)  # longer than the TTL: only the renewer keeps it alive
        assert read_lease(output)["renewed_at"] > first
        lease.check()
        check_lease(output, lease.token)  # what an actor does before each commit

    lease = OutputLease(output, times=times)
    lease.acquire()  # held, but never renewed (a driver paused past its TTL)
    time.sleep(1.2)
    with pytest.raises(LeaseLost, match="expired"):
        check_lease(output, lease.token)
    with pytest.raises(LeaseLost, match="not renewed for"):
        lease.check()
    taker = OutputLease(output)
    taker.acquire()  # expired: taken over without --break-lock
    with pytest.raises(LeaseLost, match=f"taken over .*run {taker.run_id}"):
        check_lease(output, lease.token)
    lease.release()  # a holder that lost its lease must not remove the new holder's
    assert read_lease(output)["token"] == taker.token
    taker.release()


def test_a_wipe_that_a_renewal_happened_to_undo_for_the_lease_is_still_seen(tmp_path):
    """The wipe deletes the lease file between a renewal's read and its write, so the write puts the
    lease back; the wipe's other deletions stay, and the next renewal stops the run on them."""
    output = Output(str(tmp_path / "out"))
    lease = OutputLease(output, times=LeaseTimes(ttl_s=60.0, renew_s=30.0))
    lease.acquire()
    output.write_json("_birdgen/run.json", {"settings": {}})
    lease.watch("_birdgen/run.json")
    lease.renew()  # control: nothing wiped, the renewal goes on
    output.remove("_birdgen/run.json")  # the rest of the wipe; the lease file itself is there again
    with pytest.raises(LeaseLost, match="removing it"):
        lease.renew()
    lease.release()
