"""Counting UNet forwards in a benchmark case: around the UNet (eager), or by scheduler steps (compiled)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


class UNetCalls:
    """Counts UNet forwards (no sync, so timings are untouched) and keeps the first call's inputs."""

    def __init__(self, unet):
        self.unet, self.count, self.first = unet, 0, None
        original = unet.forward

        def counted(*args, **kwargs):
            self.count += 1
            if self.first is None:
                self.first = (args, kwargs)
            return original(*args, **kwargs)

        unet.forward = counted

    def remove(self) -> None:
        del self.unet.forward  # back to the class method

    @torch.no_grad()
    def flops_per_call(self) -> int:
        args, kwargs = self.first
        with FlopCounterMode(display=False) as counter:
            self.unet(*args, **kwargs)
        self.count -= 1  # the counting forward is not part of the run
        return int(counter.get_total_flops())


class SchedulerSteps:
    """Counts UNet forwards from outside a compiled UNet: each forward is followed by one scheduler
    step (DDIM, DPM-Solver++). Wrapping the compiled module's forward would make Dynamo recompile."""

    def __init__(self, scheduler):
        self.scheduler, self.count = scheduler, 0
        original = scheduler.step

        def counted(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)

        scheduler.step = counted

    def remove(self) -> None:
        del self.scheduler.step
