"""The actor pool: one slot per generator actor, each in a named state.

    start ──> placing ──placed()──> loading ──load()──> ready <──shard out / back──> busy
                 │                     │                  │                           │
                 └──── died, or its model failed to load ─┴───────────────────────────┘
                                       │
                       restarted: placing again; after too many failed starts in a row: lost

placing: the actor waits for a node (an autoscaler may be adding one); loading: it runs on a node
and builds its model; ready: started, no shard in flight; busy: shards in flight; lost: it failed
to start too often in a row, and the run goes on without it. Only ready and busy slots get shards.
The pool owns the actor handles and the refs of their start calls; what to do when a start or a
shard fails is the driver's (schedule/retry.py decides).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class SlotState(Enum):
    PLACING = "placing"
    LOADING = "loading"
    READY = "ready"
    BUSY = "busy"
    LOST = "lost"


STARTING = (SlotState.PLACING, SlotState.LOADING)
STARTED = (SlotState.READY, SlotState.BUSY)


@dataclass
class Slot:
    index: int
    actor: object = None  # the Ray actor handle now in this slot (None before the first start)
    phase: SlotState = SlotState.PLACING  # placing, loading, ready or lost; busy is ready with load
    load: int = 0  # shards in flight on this actor
    failed_starts: int = 0  # in a row

    @property
    def state(self) -> SlotState:
        return SlotState.BUSY if self.phase is SlotState.READY and self.load else self.phase


@dataclass(frozen=True)
class StartStep:
    """What a finished start call says: `placed`, `loaded` (with the actor's info) or `failed`; `stale`
    for the call of an actor the slot has replaced since (killed: nothing to act on)."""

    slot: Slot
    kind: str
    info: dict | None = None
    error: BaseException | None = None
    model_failed: bool = False  # the model load raised on a live node (not a lost node or actor)


class ActorPool:
    def __init__(self, count: int, new_actor: Callable[[], object]):
        self.slots = [Slot(i) for i in range(count)]
        self._new_actor = new_actor
        self._starting: dict = {}  # placed()/load() ref -> (slot, the actor asked)

    def start(self, slot: Slot) -> None:
        """A new actor in the slot, placing; a dead or failed one must not keep its GPU reservation."""
        import ray

        if slot.actor is not None:
            ray.kill(slot.actor, no_restart=True)
        slot.actor = self._new_actor()
        slot.phase = SlotState.PLACING
        self._starting[slot.actor.placed.remote()] = (slot, slot.actor)

    def lose(self, slot: Slot) -> None:
        slot.phase = SlotState.LOST

    def start_refs(self) -> list:
        return list(self._starting)

    def is_start_ref(self, ref) -> bool:
        return ref in self._starting

    def start_step(self, ref) -> StartStep:
        """Read a finished start call: a placed actor is asked to load its model; a loaded one is ready."""
        import ray
        from ray.exceptions import RayActorError, RayError

        slot, actor = self._starting.pop(ref)
        if actor is not slot.actor:
            return StartStep(slot, "stale")
        try:
            answer = ray.get(ref)
        except RayError as exc:
            slot.failed_starts += 1
            # the actor's own constructor raised, or its load() did on a live node: not a node going away
            model_failed = getattr(exc, "actor_init_failed", False) or not isinstance(exc, RayActorError)
            return StartStep(slot, "failed", error=exc, model_failed=model_failed)
        if slot.phase is SlotState.PLACING:
            slot.phase = SlotState.LOADING
            self._starting[slot.actor.load.remote()] = (slot, slot.actor)
            return StartStep(slot, "placed")
        slot.phase, slot.failed_starts = SlotState.READY, 0
        return StartStep(slot, "loaded", info=answer)

    def with_room(self, max_inflight: int) -> list[Slot]:
        return [s for s in self.slots if s.state in STARTED and s.load < max_inflight]

    def count(self, *states: SlotState) -> int:
        return sum(s.state in states for s in self.slots)

    def handles(self) -> list:
        """Each slot's actor handle (None before its first start), by slot index."""
        return [s.actor for s in self.slots]

    def started_flags(self) -> list[bool]:
        return [s.state in STARTED for s in self.slots]

    def kill_all(self) -> None:
        """A long-lived driver (notebook, tests) must not keep the actors and their GPUs."""
        import ray

        for slot in self.slots:
            if slot.actor is not None:
                ray.kill(slot.actor)
