"""The retry and blame policy (schedule/retry.py), without Ray; and the slot states it leads to."""

from __future__ import annotations

from birdgen_ray.schedule.pool import Slot, SlotState
from birdgen_ray.schedule.retry import RetryPolicy, ShardVerdict, StartVerdict


def test_a_failing_shard_is_retried_until_its_last_attempt_then_given_up():
    policy = RetryPolicy(max_attempts=3)
    verdicts = [policy.shard_failed("s1", "boom", actor_died=False) for _ in range(3)]
    assert [v.verdict for v in verdicts] == [ShardVerdict.RETRY, ShardVerdict.RETRY, ShardVerdict.GIVE_UP]
    assert [v.attempts for v in verdicts] == [1, 2, 3]
    assert verdicts[-1].error == "boom"
    assert policy.shard_failed("s2", "boom", actor_died=True).verdict is ShardVerdict.RETRY  # counted per shard


def test_one_attempt_means_no_retry():
    assert RetryPolicy(max_attempts=1).shard_failed("s", "x", actor_died=True).verdict is ShardVerdict.GIVE_UP


def test_the_blamed_shard_spends_an_attempt_and_says_it_timed_out():
    policy = RetryPolicy(max_attempts=2, shard_timeout_s=30)
    failure = policy.shard_failed("stuck", "The actor died", actor_died=True, blamed="stuck")
    assert failure.verdict is ShardVerdict.RETRY and failure.attempts == 1
    assert failure.error == "timed out after 30 s (its actor was killed): The actor died"
    assert policy.shard_failed("stuck", "again", actor_died=True, blamed="stuck").verdict is ShardVerdict.GIVE_UP


def test_a_shard_that_only_shared_the_killed_actor_is_retried_for_free():
    policy = RetryPolicy(max_attempts=1, shard_timeout_s=30)
    for _ in range(5):  # never given up, however often its actor is killed for another shard
        failure = policy.shard_failed("bystander", "The actor died", actor_died=True, blamed="stuck")
        assert failure.verdict is ShardVerdict.RETRY_FREE and failure.attempts == 0
        assert failure.error == "The actor died"
    # its own error on an actor the watchdog killed for another shard, but the task raised: counted
    assert policy.shard_failed("bystander", "raised", actor_died=False, blamed="stuck").verdict is ShardVerdict.GIVE_UP


def test_a_model_that_cannot_load_ends_the_run_only_before_any_actor_started():
    policy = RetryPolicy(max_attempts=3)
    assert policy.start_failed(1, model_failed=True, any_started=False) is StartVerdict.END_RUN
    assert policy.start_failed(1, model_failed=True, any_started=True) is StartVerdict.RESTART
    assert policy.start_failed(1, model_failed=False, any_started=False) is StartVerdict.RESTART  # a lost node


def test_a_slot_that_keeps_failing_to_start_is_lost():
    policy = RetryPolicy(max_attempts=3)
    verdicts = [policy.start_failed(n, model_failed=False, any_started=True) for n in (1, 2, 3)]
    assert verdicts == [StartVerdict.RESTART, StartVerdict.RESTART, StartVerdict.LOSE_SLOT]


def test_a_ready_slot_with_shards_is_busy():
    slot = Slot(0)
    assert slot.state is SlotState.PLACING
    slot.phase = SlotState.READY
    assert slot.state is SlotState.READY
    slot.load = 2
    assert slot.state is SlotState.BUSY
    slot.phase = SlotState.PLACING  # its actor died and a replacement is placed; the old shards still count
    assert slot.state is SlotState.PLACING
