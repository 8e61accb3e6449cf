"""The stage clock: wall time per generation stage, the one the engine reports and the bench reads."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch


class StageClock:
    """Wall time per stage, taken after the GPU has finished the stage's work.

    A stage inside another counts only in itself: the outer stage keeps its self time, so the stages
    add up to the wall time they cover.
    """

    def __init__(self, device: torch.device, stages: Iterable[str] = ()):
        self.device = device
        self.times: dict[str, float] = dict.fromkeys(stages, 0.0)
        self._children: list[float] = []  # per open stage: time spent in the stages nested in it

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.sync()
        started = time.perf_counter()
        self._children.append(0.0)
        try:
            yield
        finally:
            self.sync()
            elapsed = time.perf_counter() - started
            self.times[name] = self.times.get(name, 0.0) + elapsed - self._children.pop()
            if self._children:
                self._children[-1] += elapsed

    def wrap(self, obj, attr: str, name: str) -> None:
        """Time every call of `obj.attr` as stage `name` (for timing a plain diffusers pipeline)."""
        original = getattr(obj, attr)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            with self.stage(name):
                return original(*args, **kwargs)

        setattr(obj, attr, timed)
