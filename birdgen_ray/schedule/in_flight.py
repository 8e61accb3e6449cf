"""Clips generated but not committed yet: the driver asks every started actor every few seconds.

An actor answers `in_flight()` from a thread of its own while its other threads generate and write
(it has one thread more than the shards the driver gives it). A poll never blocks the drive loop:
an answer is read only once it has arrived, and only for the shards the driver still has in flight
with that very actor, so a shard that committed (or failed) since the answer is never counted twice
and a dead or replaced actor's clips drop out.
"""

from __future__ import annotations

import time

IN_FLIGHT_POLL_S = 2.0  # cheap (one small call per actor); often enough for a live bar and status


class InFlightPoller:
    def __init__(self, every_s: float = IN_FLIGHT_POLL_S):
        self.every_s = every_s
        self._asked: dict = {}  # ObjectRef -> the actor handle it asked
        self._answers: dict[int, tuple[object, dict[str, int]]] = {}  # id(actor) -> (actor, shard id -> clips)
        self._last_ask = float("-inf")

    def clips(self, actors: list, ready: list[bool], inflight: dict) -> int:
        """Read the answers that arrived, ask again when due; the clips in flight now.

        `inflight` is the drive loop's map of ObjectRef -> (shard, slot, actor) for the shards it waits for.
        """
        import ray
        from ray.exceptions import RayError

        if self._asked:
            arrived, _ = ray.wait(list(self._asked), num_returns=len(self._asked), timeout=0)
            for ref in arrived:
                actor = self._asked.pop(ref)
                try:
                    self._answers[id(actor)] = (actor, ray.get(ref))
                except RayError:  # the actor died: its shards are retried, its clips are gone
                    self._answers.pop(id(actor), None)
        live = [actor for actor, is_ready in zip(actors, ready) if is_ready and actor is not None]
        if time.monotonic() - self._last_ask >= self.every_s:
            self._last_ask = time.monotonic()
            asking = {id(actor) for actor in self._asked.values()}
            for actor in live:
                if id(actor) not in asking:  # one question at a time per actor
                    self._asked[actor.in_flight.remote()] = actor
        live_ids = {id(actor) for actor in live}
        self._answers = {key: answer for key, answer in self._answers.items() if key in live_ids}
        waiting = {(id(actor), shard.shard_id) for shard, _, actor in inflight.values()}
        return sum(
            clips
            for key, (_, by_shard) in self._answers.items()
            for shard_id, clips in by_shard.items()
            if (key, shard_id) in waiting
        )
