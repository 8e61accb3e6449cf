"""The take queue: which takes go into the next batch. No model, no tensors: plain records.

A clip's gate attempt is `candidates` takes, each with its own seed (generate/seeds.py). The queue
  1. orders takes by start step, fewest skipped steps first, then by arrival: a batch then holds
     few distinct start steps, so few of its denoiser rows wait for their start (generate/renderer.py);
  2. carries a rejected clip's retry forward: its next attempt's takes join the queue behind the
     takes already waiting, so retries fill the same full batches as first takes;
  3. applies back-pressure from the verifier: while fewer takes wait than a batch holds and takes
     still being judged could send retries, it gives no batch (the engine waits for a verdict)
     rather than pad one;
  4. pads only at the very end: a short batch, when nothing more can come, repeats its last take.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Sequence

from birdgen_ray.generate.seeds import attempt_seed, take_seed


@dataclass(frozen=True)
class Take:
    clip: int  # index of the clip within the rows handed to the queue
    seed: int  # this take's seed
    start_step: int  # scheduler steps it skips (its clip's reference strength; 0 without one)
    round: int  # the gate attempt it belongs to: 0, then one more per retry


@dataclass(frozen=True)
class TakeBatch:
    takes: tuple[Take, ...]  # the real takes, in queue order
    padding: int  # rows that repeat the last take to fill the batch (their output is dropped)

    @property
    def rows(self) -> tuple[Take, ...]:
        """Every row the renderer runs: the takes, then the padding."""
        return self.takes + (self.takes[-1],) * self.padding


class TakeQueue:
    """Takes of a group of clips (one tensor shape) not rendered yet, and each clip's attempt."""

    def __init__(self, seeds: Sequence[int], start_steps: Sequence[int], candidates: int, max_retries: int):
        if len(seeds) != len(start_steps):
            raise ValueError(f"{len(seeds)} seeds for {len(start_steps)} start steps")
        self.seeds, self.start_steps = [int(s) for s in seeds], [int(s) for s in start_steps]
        self.candidates, self.max_retries = int(candidates), int(max_retries)
        self.rounds = [0] * len(seeds)
        self._outstanding = [0] * len(seeds)  # takes of the clip's current attempt not rendered yet
        self._heap: list[tuple[int, int, Take]] = []
        self._arrival = itertools.count()
        for clip in range(len(seeds)):
            self._start_attempt(clip)

    def __len__(self) -> int:
        return len(self._heap)

    def _start_attempt(self, clip: int) -> None:
        seed = attempt_seed(self.seeds[clip], self.rounds[clip])
        for j in range(self.candidates):
            take = Take(clip, take_seed(seed, j), self.start_steps[clip], self.rounds[clip])
            heapq.heappush(self._heap, (take.start_step, next(self._arrival), take))
        self._outstanding[clip] = self.candidates

    def next_batch(self, size: int, awaiting_verdicts: bool = False) -> TakeBatch | None:
        """The next `size` takes; None when none wait, or when fewer than `size` wait and
        `awaiting_verdicts` (takes being judged may still send retries: wait for them, don't pad)."""
        if size < 1:
            raise ValueError(f"batch size must be >= 1, got {size}")
        if not self._heap or (len(self._heap) < size and awaiting_verdicts):
            return None
        takes = tuple(heapq.heappop(self._heap)[2] for _ in range(min(size, len(self._heap))))
        return TakeBatch(takes, size - len(takes))

    def rendered(self, takes: Sequence[Take]) -> list[int]:
        """Note takes as rendered; the clips whose attempt is now complete (to be judged), in order."""
        complete = []
        for take in takes:
            self._outstanding[take.clip] -= 1
            if not self._outstanding[take.clip]:
                complete.append(take.clip)
        return complete

    def can_retry(self, clip: int) -> bool:
        return self.rounds[clip] < self.max_retries

    def retry(self, clip: int) -> None:
        """Queue the clip's next attempt (its takes go behind those waiting with the same start step)."""
        if not self.can_retry(clip):
            raise ValueError(f"clip {clip} has spent its {self.max_retries} retries")
        self.rounds[clip] += 1
        self._start_attempt(clip)
