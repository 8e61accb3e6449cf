"""What the drive loop tells the outside: the bar (schedule/progress.py) and progress.json
(schedule/run_state.py) watch the pool's events instead of being called from inside the loop."""

from __future__ import annotations

from typing import Protocol

from birdgen_ray.schedule.actor import ShardResult
from birdgen_ray.schedule.progress import RunProgress
from birdgen_ray.schedule.run_state import RunState
from birdgen_ray.schedule.shards import ShardSpec


class DriveObserver(Protocol):
    def actor_started(self, info: dict, first: bool) -> None: ...
    def shard_committed(self, slot: int, result: ShardResult) -> None: ...
    def shard_failed(self, shard: ShardSpec, error: str) -> None: ...
    def clips_in_flight(self, clips: int) -> None: ...
    def waiting(self, line: str) -> None: ...
    def close(self) -> None: ...


def engine_lines(choices: dict) -> list[str]:
    """submit's lines on the first actor's engine: each speed setting, and why."""
    return [f"engine {name.replace('_', ' ')}: {c['value']} ({c['why']})" for name, c in choices.items()]


class ProgressObserver:
    """The bar, and submit's lines on the engine and on the actors still waiting for a node."""

    def __init__(self, progress: RunProgress):
        self.progress = progress

    def _say(self, line: str) -> None:
        self.progress.console.print(line, highlight=False, soft_wrap=True)  # never wrapped: logs keep whole lines

    def actor_started(self, info: dict, first: bool) -> None:
        if first:
            for line in engine_lines(info.get("engine", {})):
                self._say(line)

    def shard_committed(self, slot: int, result: ShardResult) -> None:
        self.progress.advance(result.clips)

    def shard_failed(self, shard: ShardSpec, error: str) -> None:
        self.progress.failed(shard.num_clips)

    def clips_in_flight(self, clips: int) -> None:
        self.progress.in_flight(clips)

    def waiting(self, line: str) -> None:
        self._say(line)

    def close(self) -> None:
        self.progress.close()


class StateObserver:
    """`_birdgen/progress.json`, rewritten every few seconds (what `status` reads)."""

    def __init__(self, state: RunState):
        self.state = state

    def actor_started(self, info: dict, first: bool) -> None:
        pass

    def shard_committed(self, slot: int, result: ShardResult) -> None:
        self.state.committed(result.clips, slot, result.shard_id)

    def shard_failed(self, shard: ShardSpec, error: str) -> None:
        self.state.failed(shard.num_clips)

    def clips_in_flight(self, clips: int) -> None:
        self.state.in_flight(clips)
        self.state.maybe_write()

    def waiting(self, line: str) -> None:
        pass

    def close(self) -> None:
        pass
