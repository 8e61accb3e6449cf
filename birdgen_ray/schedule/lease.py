"""One writer per output: a lease that its holder renews and that expires when nobody renews it.

The lease is `_birdgen/lease.json`: the holder's token (its run id), host, pid and that process's
start time, and when it was last renewed. The holder renews it every `renew_s` from a background
thread; a lease not renewed for `ttl_s` has expired and the next run takes it over by itself
(logging who held it). On the holder's own host a lease is stale at once when its pid is gone or
belongs to a process started at another time (pid reuse). A fresh lease of a live run refuses;
`--break-lock` takes even a fresh one over.

Creating is atomic and exclusive: on local disk the record is written to a temporary file and
hard-linked into place (never a half-written or empty lease, even on a full disk); on object
storage it is one conditional PUT (If-None-Match: *). Renewing is an atomic replace (rename, or a
single PUT). A lease file that is empty or unreadable counts as no lease. On object storage, and
after removing a stale lease, a run waits a moment and reads the lease back: of two runs creating
at once (a store that ignores If-None-Match, or two takeovers racing) only the last writer goes on.

Fencing by token: the driver stops (LeaseLost) once the lease names another token, its own
renewal is older than the TTL (it was paused, or its store unreachable, that long), or a file it
watches is gone (the output was wiped, even where a renewal wrote the lease file back); its actors read
the lease before each commit and commit nothing unless it names their token and has not expired.
Expiry compares wall clocks across hosts: a TTL of minutes is far above ordinary clock skew.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from birdgen_ray.io.layout import LEASE_FILE
from birdgen_ray.io.storage import Output
from birdgen_ray.schedule.interrupts import sigint_held

log = logging.getLogger(__name__)

OBJECT_STORE_SETTLE_S = 1.0  # far longer than one run's look-then-create gap (milliseconds)
TAKEOVER_SETTLE_S = 0.2  # local disk, after removing a stale lease: another taker's create shows by then


class OutputLocked(RuntimeError):
    """Another run holds the output's lease: this run does not start."""


class LeaseLost(OutputLocked):
    """This run's lease was taken over or expired: it stops and commits nothing more."""


@dataclass(frozen=True)
class LeaseTimes:
    ttl_s: float = 300.0  # a lease not renewed for this long has expired
    renew_s: float = 30.0  # how often the holder renews it

    def __post_init__(self) -> None:
        if not 0 < self.renew_s < self.ttl_s:
            raise ValueError(f"the lease renewal ({self.renew_s:g} s) must be > 0 and below its TTL ({self.ttl_s:g} s)")


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), or None if there is no such process."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.Error:  # another user's process: it exists, its start time is unknown
        return -1.0


def read_lease(output: Output) -> dict | None:
    """The lease record, or None when there is none: missing, empty, half-written or not a lease."""
    try:
        record = json.loads(output.read_bytes(LEASE_FILE))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or not all(k in record for k in ("token", "renewed_at", "ttl_s")):
        return None
    return record


def stale_reason(holder: dict, now: float | None = None) -> str | None:
    """Why `holder`'s lease no longer protects a live run, or None while it does."""
    now = time.time() if now is None else now
    age = now - float(holder["renewed_at"])
    if age > float(holder["ttl_s"]):
        return f"its lease expired: last renewed {age:.0f} s ago (TTL {float(holder['ttl_s']):g} s)"
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        started = process_start_time(holder["pid"])
        if started is None:
            return f"its process {holder['pid']} is gone from this host"
        known = holder.get("pid_started")
        if started >= 0 and isinstance(known, (int, float)) and abs(started - known) > 1.0:
            return f"pid {holder['pid']} now belongs to another process (pid reuse)"
    return None


def describe(holder: dict) -> str:
    return (
        f"run {holder.get('run_id', holder['token'])}, host {holder.get('host')}, pid {holder.get('pid')}, "
        f"since {holder.get('started_at')}"
    )


def check_lease(output: Output, token: str) -> None:
    """Raise LeaseLost unless the lease names `token` and has not expired (an actor, before each commit)."""
    holder = read_lease(output)
    if holder is None or holder["token"] != token:
        taker = f"run {holder.get('run_id', holder['token'])} (host {holder.get('host')})" if holder else "nobody"
        raise LeaseLost(
            f"{output.uri}: the lease of run {token} was taken over (it is now held by {taker}); "
            "this run stops and leaves the output to the run that holds the lease now"
        )
    age = time.time() - float(holder["renewed_at"])
    if age > float(holder["ttl_s"]):
        raise LeaseLost(
            f"{output.uri}: the lease of run {token} expired ({age:.0f} s since its last renewal); "
            "this run commits nothing more"
        )


class OutputLease:
    """Acquire, renew in the background, check, release; a context manager around one run."""

    def __init__(
        self,
        output: Output,
        break_lock: bool = False,
        times: LeaseTimes = LeaseTimes(),
        settle_s: float | None = None,
    ):
        self.output = output
        self.break_lock = break_lock
        self.times = times
        self.settle_s = (0.0 if output.is_local else OBJECT_STORE_SETTLE_S) if settle_s is None else settle_s
        self.run_id = self.token = uuid.uuid4().hex[:12]
        self.taken_over: dict | None = None  # the stale holder this run took over from, if any
        self._started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._renewed = 0.0  # time.monotonic() of the last successful create/renewal
        self._lost: LeaseLost | None = None
        self._kept: str | None = None  # a file of this run's that only a wipe of the output removes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self) -> bytes:
        return json.dumps(
            {
                "token": self.token,
                "run_id": self.run_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "pid_started": process_start_time(os.getpid()),
                "started_at": self._started_at,
                "renewed_at": time.time(),
                "ttl_s": self.times.ttl_s,
            },
            sort_keys=True,
        ).encode()

    # -- acquiring -----------------------------------------------------------------------------
    def acquire(self) -> None:
        holder = read_lease(self.output)
        if holder is None:
            if self._create():
                self._confirm(self.settle_s)
                return
            holder = read_lease(self.output)  # another run created it meanwhile, or it is empty/half-written
            if holder is None:
                log.warning("%s: the lease file is empty or unreadable: no run holds it; replacing it", self.output.uri)
                self._replace(self.settle_s)
                return
        why = stale_reason(holder)
        if why is None and not self.break_lock:
            renewed_ago = time.time() - float(holder["renewed_at"])
            raise OutputLocked(
                f"{self.output.uri} is being written by another run ({describe(holder)}), "
                f"whose lease was renewed {renewed_ago:.0f} s ago. Only one submit may write an output at a time. "
                f"If that run is dead, its lease expires in {max(float(holder['ttl_s']) - renewed_ago, 0):.0f} s "
                "and the next run takes over by itself; --break-lock takes it over now (only once you are sure "
                "it is gone)."
            )
        log.warning("taking over the lease of %s: %s", describe(holder), why or "--break-lock on a fresh lease")
        self.taken_over = {**holder, "reason": why or "--break-lock"}
        self._replace(max(self.settle_s, TAKEOVER_SETTLE_S))

    def _create(self) -> bool:
        created = self.output.create_exclusive(LEASE_FILE, self.record())
        if created:
            self._renewed = time.monotonic()
        return created

    def _replace(self, settle_s: float) -> None:
        """Remove a stale (or empty) lease and create this run's in its place."""
        self.output.remove(LEASE_FILE)
        if not self._create():
            other = read_lease(self.output)
            raise OutputLocked(
                f"{self.output.uri}: another run ({describe(other) if other else 'unknown'}) "
                "took the lease at the same moment; this run backs off and leaves the output to it"
            )
        self._confirm(settle_s)

    def _confirm(self, settle_s: float) -> None:
        """Back off if another run's create overwrote ours (a store ignoring If-None-Match, racing takeovers)."""
        if settle_s:
            time.sleep(settle_s)
        holder = read_lease(self.output)
        if holder is None or holder["token"] != self.token:
            raise OutputLocked(
                f"{self.output.uri}: another run ({describe(holder) if holder else 'unknown'}) took the lease "
                "at the same moment; this run backs off and leaves the output to it"
            )

    # -- holding -------------------------------------------------------------------------------
    def watch(self, rel: str) -> None:
        """Also count the lease as lost once `rel` is gone: a file this run wrote and keeps all run long.

        A wipe of the output that deletes the lease file between a renewal's read and its write is
        undone by that write; the wipe's other deletions are not, and the next renewal sees them."""
        self._kept = rel

    def renew(self) -> None:
        """Renew now; raises LeaseLost if another run holds it, the output was wiped, or this run's
        renewal is past the TTL."""
        self.check()
        holder = read_lease(self.output)
        if holder is None or holder["token"] != self.token:
            self._lost = LeaseLost(_taken_message(self.output, self.run_id, holder))
            raise self._lost
        if self._kept is not None and not self.output.exists(self._kept):
            self._lost = LeaseLost(_taken_message(self.output, self.run_id, None))
            raise self._lost
        self.check()  # the read may have taken long (a stalled store)
        self.output.write_bytes(LEASE_FILE, self.record())
        self._renewed = time.monotonic()

    def check(self) -> None:
        """Cheap (no I/O): raise LeaseLost once the renewer found the lease taken, or it expired unrenewed."""
        if self._lost is not None:
            raise self._lost
        unrenewed = time.monotonic() - self._renewed
        if self._renewed and unrenewed > self.times.ttl_s:
            self._lost = LeaseLost(
                f"{self.output.uri}: the lease of run {self.run_id} was not renewed for {unrenewed:.0f} s "
                f"(TTL {self.times.ttl_s:g} s: the driver was paused or its store unreachable), so another run "
                "may hold it now; this run stops and commits nothing more"
            )
            raise self._lost

    def verify(self) -> None:
        """check() plus a read of the lease: before cleaning up or consolidating, never under a new holder."""
        self.check()
        holder = read_lease(self.output)
        if holder is None or holder["token"] != self.token:
            self._lost = LeaseLost(_taken_message(self.output, self.run_id, holder))
            raise self._lost

    def _keep_renewing(self) -> None:
        while not self._stop.wait(self.times.renew_s):
            try:
                self.renew()
            except LeaseLost:
                return
            except Exception as exc:  # noqa: BLE001 - a storage hiccup: try again; the TTL bounds how long
                log.warning("could not renew the lease of %s (%s); trying again", self.output.uri, exc)

    def start_renewing(self) -> None:
        self._thread = threading.Thread(target=self._keep_renewing, name="lease-renewer", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            holder = read_lease(self.output)
            if holder is not None and holder["token"] == self.token:
                self.output.remove(LEASE_FILE)
        except OSError as exc:  # unreachable store on the way out: the lease expires by itself
            log.warning("could not release the lease of %s (%s); it expires by itself", self.output.uri, exc)

    def __enter__(self) -> "OutputLease":
        # An error or Ctrl-C after the lease is written and before __enter__ returns would leave a
        # lease no __exit__ releases: Ctrl-C is held through both steps, and any failure releases
        # (release removes the lease only if it is this run's).
        try:
            with sigint_held("taking the output's lease"):
                self.acquire()
                self.start_renewing()
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _taken_message(output: Output, run_id: str, holder: dict | None) -> str:
    taker = f"run {holder.get('run_id', holder['token'])} (host {holder.get('host')})" if holder else "removing it"
    return (
        f"{output.uri}: the lease of run {run_id} was taken over by {taker}; "
        "this run stops and leaves the output to the run that holds the lease now"
    )
