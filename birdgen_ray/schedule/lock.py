"""One writer per output: a lock file created exclusively, on local disk and object storage alike.

Local disk uses O_EXCL; S3 uses a conditional PUT (If-None-Match: *), both through fsspec's "xb"
mode. AWS S3, MinIO and moto refuse a conditional PUT of an existing key on the server (tested
against moto in tests/test_s3.py). A store that ignores the condition lets a second create
overwrite the first; two guards cover it: the lock is looked for before creating (a run that starts
while another holds it is refused), and on object storage each run waits a moment after creating,
then reads the lock back and backs off unless it still names this run (of two runs that start at
the same instant only the last writer goes on). A run that died leaves its lock; the next run
refuses and says how to take it over (`--break-lock`) after the user has checked the old run is
really gone. A run re-reads the lock while it runs and before it cleans up or consolidates, and
stops if the lock no longer names it.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid

from birdgen_ray.io.layout import LOCK_FILE
from birdgen_ray.io.storage import Output


class OutputLocked(RuntimeError):
    pass


OBJECT_STORE_SETTLE_S = 1.0  # far longer than one run's look-then-create gap (milliseconds)


class OutputLock:
    def __init__(self, output: Output, break_lock: bool = False, settle_s: float | None = None):
        self.output = output
        self.break_lock = break_lock
        # local disk's O_EXCL is exact; an object store may not honour If-None-Match
        self.settle_s = (0.0 if output.is_local else OBJECT_STORE_SETTLE_S) if settle_s is None else settle_s
        self.run_id = uuid.uuid4().hex[:12]
        self.owner = {
            "run_id": self.run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def acquire(self) -> None:
        data = json.dumps(self.owner, sort_keys=True).encode()
        # Looking first also refuses on a store that ignores If-None-Match (the create would then
        # overwrite); the exclusive create is what settles two runs starting at the same moment.
        if not self.output.exists(LOCK_FILE) and self.output.create_exclusive(LOCK_FILE, data):
            self._confirm()
            return
        holder = self._holder()
        if not self.break_lock:
            raise OutputLocked(
                f"{self.output.uri} is being written by another run "
                f"(run {holder.get('run_id', '?')}, host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
                f"since {holder.get('started_at', '?')}). Only one submit may write an output at a time. "
                f"{_liveness_hint(holder)}"
                "If that run is dead (crashed, killed, node lost), take its lock over with --break-lock."
            )
        self.output.remove(LOCK_FILE)
        if not self.output.create_exclusive(LOCK_FILE, data):
            raise OutputLocked(f"{self.output.uri}: another run took the lock while it was being broken")
        self._confirm()

    def _confirm(self) -> None:
        """Back off if another run's create overwrote ours (a store ignoring If-None-Match)."""
        time.sleep(self.settle_s)
        holder = self._holder()
        if holder.get("run_id") != self.run_id:
            raise OutputLocked(
                f"{self.output.uri}: another run (run {holder.get('run_id', '?')}, host {holder.get('host', '?')}) "
                "took the lock at the same moment; this run backs off and leaves the output to it"
            )

    def check(self) -> None:
        """Raise OutputLocked unless the lock still names this run: a run whose lock was broken
        (--break-lock on a run that only looked dead) must stop writing and leave the output alone."""
        check_holder(self.output, self.run_id)

    def release(self) -> None:
        if self._holder().get("run_id") == self.run_id:
            self.output.remove(LOCK_FILE)

    def _holder(self) -> dict:
        return lock_holder(self.output)

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_holder(output: Output) -> dict:
    """Who holds the output's lock ({} when nobody does); a read error other than 'not found' is raised."""
    try:
        return json.loads(output.read_bytes(LOCK_FILE))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def check_holder(output: Output, run_id: str) -> None:
    """Raise OutputLocked unless the lock names `run_id` (the driver, and its actors before each commit)."""
    holder = lock_holder(output)
    if holder.get("run_id") != run_id:
        taker = f"run {holder['run_id']} (host {holder.get('host', '?')})" if holder.get("run_id") else "removing it"
        raise OutputLocked(
            f"{output.uri}: the lock of run {run_id} was taken over by {taker}; "
            "this run stops and leaves the output to the run that holds the lock now"
        )


def _liveness_hint(holder: dict) -> str:
    """What this machine can tell about the holder: only a pid on this same host can be checked."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return ""
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return f"No process {holder['pid']} runs on this host now, so that run looks dead. "
    except PermissionError:
        pass
    return f"Process {holder['pid']} is still running on this host. "
