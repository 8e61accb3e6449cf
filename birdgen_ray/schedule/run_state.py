"""`_birdgen/progress.json`: what the driver is doing now, rewritten atomically every few seconds.

One small JSON record that `status` reads without Ray: the run id; its state (running, finished,
failed, interrupted, stopped); planned, done and failed clips; clips/s and ETA; the heartbeat (when
it was last written); each actor's last shard. A driver that was SIGKILLed leaves state "running"
with an old heartbeat, which is how `status` tells a dead run from a live one.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from birdgen_ray.io.layout import PROGRESS_FILE
from birdgen_ray.io.storage import Output

log = logging.getLogger(__name__)

PROGRESS_WRITE_S = 5.0  # small enough for a live `status`, large enough to be one PUT in thousands


class RunState:
    def __init__(self, output: Output, run_id: str, planned: int, already_done: int, lease_ttl_s: float):
        self.output = output
        self.record = {
            "run_id": run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "state": "running",
            "started_at": time.time(),
            "planned": planned,
            "already_done": already_done,
            "done": already_done,
            "generated": 0,
            "in_flight": 0,
            "failed": 0,
            "clips_per_second": None,
            "eta_s": None,
            "actors": {},
            "lease_ttl_s": lease_ttl_s,
            "error": None,
        }
        self._last_write = 0.0
        self.enabled = True  # off once the lease is lost: the output is another run's then

    def committed(self, clips: int, slot: int, shard_id: str) -> None:
        self.record["generated"] += clips
        self.record["done"] += clips
        self.record["actors"][str(slot)] = shard_id

    def failed(self, clips: int) -> None:
        self.record["failed"] += clips

    def in_flight(self, clips: int) -> None:
        """Clips generated in shards that have not committed yet (reported by the actors per batch)."""
        self.record["in_flight"] = clips

    def maybe_write(self) -> None:
        if time.monotonic() - self._last_write >= PROGRESS_WRITE_S:
            self.write()

    def write(self, state: str = "running", error: str | None = None) -> None:
        """Rewrite the record now; a storage error is logged, never fatal (it is only a view)."""
        if not self.enabled:
            return
        now = time.time()
        record = self.record
        record.update(state=state, heartbeat=now, error=error)
        elapsed = now - record["started_at"]
        made = record["generated"] + record["in_flight"]
        rate = made / elapsed if elapsed > 0 and made else None
        record["clips_per_second"] = round(rate, 3) if rate else None
        left = record["planned"] - record["done"] - record["failed"] - record["in_flight"]
        record["eta_s"] = round(left / rate, 1) if rate and state == "running" else None
        self._last_write = time.monotonic()
        try:
            self.output.write_json(PROGRESS_FILE, record)
        except Exception as exc:  # noqa: BLE001 - a full disk or a stalled store must not end the run here
            log.warning("could not write %s (%s)", PROGRESS_FILE, exc)
