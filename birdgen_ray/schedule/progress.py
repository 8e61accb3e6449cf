"""A live progress bar for the driver: clips done, clips/s, ETA, failures."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RunProgress:
    def __init__(self, total_clips: int, enabled: bool = True):
        self.failures = 0
        self.progress = Progress(
            TextColumn("[bold]generating"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} clips/s"),
            TextColumn("failed {task.fields[failed]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
            transient=False,
        )
        self.task = self.progress.add_task("clips", total=total_clips, rate="-", failed=0)
        self.progress.start()

    def _refresh(self) -> None:
        task = self.progress.tasks[0]
        rate = f"{task.speed:.1f}" if task.speed else "-"
        self.progress.update(self.task, rate=rate, failed=self.failures)

    def advance(self, clips: int) -> None:
        self.progress.advance(self.task, clips)
        self._refresh()

    def failed(self, clips: int) -> None:
        self.failures += clips
        self.progress.advance(self.task, clips)
        self._refresh()

    def close(self) -> None:
        self.progress.stop()
