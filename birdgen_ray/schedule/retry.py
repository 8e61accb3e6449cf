"""Retry and blame: what becomes of a shard whose task failed, and of a slot whose actor did not start.

Plain policy, no Ray (tests/test_retry.py): the drive loop asks, then acts.

- A shard fails (its task raised, its actor died, its result was lost): it is tried again until it
  has failed `max_attempts` times, then recorded as failed. A shard that only shared an actor with a
  stuck shard (--shard-timeout killed the actor, and blamed that other shard) is retried without
  spending an attempt; the stuck one's error says it timed out.
- An actor fails to start: its model could not be built on a live node before any actor of this
  run started (unknown model, no weights, no CUDA): the run ends at once. Otherwise (its node went
  away, or others did start) it is started again, until it has failed `max_attempts` times in a row;
  then the run goes on without that slot.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum


class ShardVerdict(Enum):
    RETRY_FREE = "retry without spending an attempt"
    RETRY = "retry"
    GIVE_UP = "record the failure"


class StartVerdict(Enum):
    END_RUN = "end the run"
    RESTART = "start another actor in the slot"
    LOSE_SLOT = "go on without the slot"


@dataclass(frozen=True)
class ShardFailure:
    verdict: ShardVerdict
    error: str  # what the log and the failure record say
    attempts: int  # attempts spent so far


class RetryPolicy:
    def __init__(self, max_attempts: int, shard_timeout_s: float = 0.0):
        self.max_attempts = max_attempts
        self.shard_timeout_s = shard_timeout_s
        self.attempts: Counter[str] = Counter()  # shard id -> failed attempts

    def shard_failed(self, shard_id: str, error: str, actor_died: bool, blamed: str | None = None) -> ShardFailure:
        """`blamed`: the shard the watchdog charged its kill of this shard's actor to (None: no kill)."""
        if blamed == shard_id:
            error = f"timed out after {self.shard_timeout_s:g} s (its actor was killed): {error}"
        if blamed is not None and blamed != shard_id and actor_died:  # only shared an actor with a stuck shard
            return ShardFailure(ShardVerdict.RETRY_FREE, error, self.attempts[shard_id])
        self.attempts[shard_id] += 1
        attempts = self.attempts[shard_id]
        verdict = ShardVerdict.RETRY if attempts < self.max_attempts else ShardVerdict.GIVE_UP
        return ShardFailure(verdict, error, attempts)

    def start_failed(self, failed_starts: int, model_failed: bool, any_started: bool) -> StartVerdict:
        """`failed_starts`: in a row for this slot, this one counted; `model_failed`: the model load raised
        on a live node (not a node or actor lost); `any_started`: an actor of this run has started."""
        if model_failed and not any_started:
            return StartVerdict.END_RUN
        return StartVerdict.RESTART if failed_starts < self.max_attempts else StartVerdict.LOSE_SLOT
