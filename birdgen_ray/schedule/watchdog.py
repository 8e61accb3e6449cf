"""--shard-timeout: find and kill generator actors that stopped finishing shards."""

from __future__ import annotations

import logging
import time

from birdgen_ray.schedule.shards import ShardSpec

log = logging.getLogger(__name__)


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
