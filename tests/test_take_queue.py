"""The take queue on its own (no model): order, candidates, retries, start steps, back-pressure, padding."""

from __future__ import annotations

import pytest

from birdgen_ray.generate.seeds import attempt_seed, take_seed
from birdgen_ray.generate.take_queue import Take, TakeBatch, TakeQueue


def drain(queue: TakeQueue, size: int) -> list[TakeBatch]:
    batches = []
    while (batch := queue.next_batch(size)) is not None:
        queue.rendered(batch.takes)
        batches.append(batch)
    return batches


def test_text_only_takes_come_in_row_order_and_only_the_last_batch_is_padded():
    queue = TakeQueue([7, 11, 3, 5, 9], [0] * 5, candidates=1, max_retries=0)
    batches = drain(queue, 2)
    assert [[t.seed for t in b.takes] for b in batches] == [[7, 11], [3, 5], [9]]
    assert [b.padding for b in batches] == [0, 0, 1]
    assert [t.seed for t in batches[-1].rows] == [9, 9]  # padding repeats the last take
    assert len(queue) == 0 and queue.next_batch(2) is None


def test_candidates_are_takes_with_derived_seeds_and_complete_an_attempt_together():
    queue = TakeQueue([7, 11], [0, 0], candidates=3, max_retries=0)
    first = queue.next_batch(4)
    assert [(t.clip, t.seed) for t in first.takes] == [(0, take_seed(7, j)) for j in range(3)] + [(1, 11)]
    assert queue.rendered(first.takes) == [0]  # clip 1 still has two takes waiting
    second = queue.next_batch(4)
    assert second.padding == 2 and queue.rendered(second.takes) == [1]


def test_a_retry_is_carried_behind_the_waiting_takes_with_a_derived_seed():
    queue = TakeQueue([7, 11, 5, 9], [0] * 4, candidates=1, max_retries=2)
    batch = queue.next_batch(2)
    assert queue.rendered(batch.takes) == [0, 1]
    queue.retry(1)  # the gate rejected clip 1
    batch = queue.next_batch(2)
    assert [t.seed for t in batch.takes] == [5, 9]  # the takes already waiting go first
    queue.rendered(batch.takes)
    retry = queue.next_batch(2)
    assert retry.takes == (Take(1, attempt_seed(11, 1), 0, 1),) and retry.padding == 1
    queue.rendered(retry.takes)
    queue.retry(1)
    assert queue.next_batch(2).takes[0].seed == attempt_seed(11, 2)
    assert not queue.can_retry(1)
    with pytest.raises(ValueError, match="spent its 2 retries"):
        queue.retry(1)


def test_takes_are_sorted_by_start_step_so_a_batch_holds_few_distinct_ones():
    steps = [7, 0, 12, 7, 0, 12, 9, 9]  # 0: text-only; more skipped steps: lower strength
    queue = TakeQueue(list(range(8)), steps, candidates=1, max_retries=0)
    batches = drain(queue, 3)
    assert [[t.start_step for t in b.takes] for b in batches] == [[0, 0, 7], [7, 9, 9], [12, 12]]
    assert [[t.clip for t in b.takes] for b in batches] == [[1, 4, 0], [3, 6, 7], [2, 5]]
    assert [b.padding for b in batches] == [0, 0, 1]


def test_back_pressure_waits_for_verdicts_instead_of_padding_a_short_batch():
    queue = TakeQueue([1, 2, 3], [0] * 3, candidates=1, max_retries=1)
    assert len(queue.next_batch(2, awaiting_verdicts=True).takes) == 2  # a full batch never waits
    assert queue.next_batch(2, awaiting_verdicts=True) is None  # one take left: retries may still come
    queue.retry(0)  # the verdict came: clip 0 is redone
    full = queue.next_batch(2, awaiting_verdicts=True)
    assert [t.clip for t in full.takes] == [2, 0] and full.padding == 0
    queue.retry(1)
    last = queue.next_batch(2, awaiting_verdicts=False)  # nothing more can come: pad at the very end
    assert [t.clip for t in last.takes] == [1] and last.padding == 1


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="2 seeds for 1 start steps"):
        TakeQueue([1, 2], [0], candidates=1, max_retries=0)
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        TakeQueue([1], [0], candidates=1, max_retries=0).next_batch(0)


def held_and_padded_rows(batch: TakeBatch, steps: int) -> tuple[int, int]:
    """(denoiser rows, of them waste) of a batch as generate/denoise.py runs it: as many calls as its
    longest trajectory; a row with fewer steps is held until the calls left equal its steps."""
    runs = [steps - t.start_step for t in batch.rows]
    calls = max(runs)
    useful = sum(runs[: len(batch.takes)])
    return calls * len(batch.rows), calls * len(batch.rows) - useful


def test_a_strength_range_wastes_at_most_a_tenth_of_the_denoiser_rows_at_batch_64():
    """--strength 0.3:0.7 at 25 steps: up to 11 start steps (7-17). One queue per start step, each remainder padded,
    wasted 59% of the UNet rows at batch 64 (issue 22); sorted and mixed, under 10%."""
    from birdgen_ray.generate.denoise import steps_to_run
    from birdgen_ray.plan.references import row_strength

    steps, size = 25, 64
    seeds = list(range(1000, 1256))
    start_steps = [steps - steps_to_run(row_strength((0.3, 0.7), s, "spinet", i), steps) for i, s in enumerate(seeds)]
    assert len(set(start_steps)) >= 10
    queue = TakeQueue(seeds, start_steps, candidates=1, max_retries=0)
    rows = waste = 0
    for batch in drain(queue, size):
        batch_rows, batch_waste = held_and_padded_rows(batch, steps)
        rows, waste = rows + batch_rows, waste + batch_waste
    assert waste / rows <= 0.10
    one_queue_per_step = sum(-(-start_steps.count(s) // size) * size * (steps - s) for s in set(start_steps))
    assert 1 - sum(steps - s for s in start_steps) / one_queue_per_step > 0.5  # the old way, for scale
