"""A live progress bar for the driver: clips done, clips/s, ETA, failures.

The bar moves as batches finish: it shows the committed (and failed) clips plus those generated in
shards not committed yet ("in flight"); the text beside it gives both figures.

On a terminal it is a rich bar redrawn in place. Where stderr is not a terminal (a Ray job's log,
a cluster job's file, CI), a bar cannot redraw: no bar is drawn at all, and the same figures are
written as one plain, never-wrapped line every `log_every_s` (`submit --progress-every-s`, default
30) and once at the end:

    progress: 120/300 clips, 96 committed, 24 in flight, 0 failed, 4.1 clips/s, ETA 44 s
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
        self.done = 0  # committed or failed
        self.in_flight_clips = 0
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self.log_every_s = log_every_s
        self._last_log = time.monotonic()
        self.plain = enabled and not self.console.is_terminal  # lines, not a bar
        self.progress = Progress(
            TextColumn("[bold]generating"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("({task.fields[committed]} committed, {task.fields[in_flight]} in flight)"),
            TextColumn("{task.fields[rate]} clips/s"),
            TextColumn("failed {task.fields[failed]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled or self.plain,
            transient=False,
        )
        self.task = self.progress.add_task("clips", total=total_clips, rate="-", failed=0, committed=0, in_flight=0)
        self.progress.start()

    def _refresh(self) -> None:
        self.progress.update(self.task, completed=self.done + self.in_flight_clips)
        task = self.progress.tasks[0]
        # rich's windowed speed needs two updates: until then, the average so far
        average = task.completed / task.elapsed if task.elapsed else None
        # finished: the whole run's average, as the summary line reports it, not the last window's
        speed = average if task.finished else (task.speed or average)
        rate = f"{speed:.1f}" if speed else "-"
        self.progress.update(
            self.task,
            rate=rate,
            failed=self.failures,
            committed=self.done - self.failures,
            in_flight=self.in_flight_clips,
        )
        if self.plain and time.monotonic() - self._last_log >= self.log_every_s:
            self._log_line(task, rate)

    def _log_line(self, task, rate: str) -> None:
        self._last_log = time.monotonic()
        eta = f"{task.time_remaining:.0f} s" if task.time_remaining is not None else "-"
        self.console.print(
            f"progress: {self.done + self.in_flight_clips}/{int(task.total or 0)} clips, "
            f"{self.done - self.failures} committed, {self.in_flight_clips} in flight, {self.failures} failed, "
            f"{rate} clips/s, ETA {eta}",
            highlight=False,
            soft_wrap=True,  # one line in a log file, however long
        )

    def advance(self, clips: int) -> None:
        """A shard committed: its clips leave the in-flight count (the next poll makes that exact)."""
        self.done += clips
        self.in_flight_clips = max(0, self.in_flight_clips - clips)
        self._refresh()

    def failed(self, clips: int) -> None:
        self.failures += clips
        self.done += clips
        self._refresh()

    def in_flight(self, clips: int) -> None:
        """Clips generated in shards that have not committed yet (the actors' latest answers)."""
        if clips != self.in_flight_clips or self.plain:  # polled every loop: a plain line falls due on time
            self.in_flight_clips = clips
            self._refresh()

    def close(self) -> None:
        if self.plain:
            self._refresh()
            self._log_line(self.progress.tasks[0], self.progress.tasks[0].fields["rate"])
        self.progress.stop()
