"""A live progress bar for the driver: clips done, clips/s, ETA, failures.

On a terminal it is a rich bar redrawn in place. Where stderr is not a terminal (a Ray job's log,
CI), a bar cannot redraw, so the same figures are printed as a plain line every `log_every_s`.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RunProgress:
    def __init__(
        self, total_clips: int, enabled: bool = True, console: Console | None = None, log_every_s: float = 30.0
    ):
        self.failures = 0
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self.log_every_s = log_every_s
        self._last_log = time.monotonic()
        self.progress = Progress(
            TextColumn("[bold]generating"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} clips/s"),
            TextColumn("failed {task.fields[failed]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
            transient=False,
        )
        self.task = self.progress.add_task("clips", total=total_clips, rate="-", failed=0)
        self.progress.start()

    def _refresh(self) -> None:
        task = self.progress.tasks[0]
        # rich's windowed speed needs two updates: until then, the average so far
        average = task.completed / task.elapsed if task.elapsed else None
        # finished: the whole run's average, as the summary line reports it, not the last window's
        speed = average if task.finished else (task.speed or average)
        rate = f"{speed:.1f}" if speed else "-"
        self.progress.update(self.task, rate=rate, failed=self.failures)
        if self.enabled and not self.console.is_terminal and time.monotonic() - self._last_log >= self.log_every_s:
            self._last_log = time.monotonic()
            eta = f"{task.time_remaining:.0f} s" if task.time_remaining is not None else "-"
            self.console.print(
                f"generating {int(task.completed)}/{int(task.total or 0)} clips, {rate} clips/s, "
                f"failed {self.failures}, ETA {eta}",
                highlight=False,
            )

    def advance(self, clips: int) -> None:
        self.progress.advance(self.task, clips)
        self._refresh()

    def failed(self, clips: int) -> None:
        self.failures += clips
        self.progress.advance(self.task, clips)
        self._refresh()

    def close(self) -> None:
        self.progress.stop()
