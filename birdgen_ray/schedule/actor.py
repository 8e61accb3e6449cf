"""The generator actor: holds one model for its lifetime and turns shards into committed files.

Audio never travels through the driver: the actor writes its shard itself and returns only stats.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field

from birdgen_ray.config import RunConfig
from birdgen_ray.generate.types import ClipGenerator, GeneratedClip
from birdgen_ray.plan.schema import PlanRow, plan_rows
from birdgen_ray.schedule.shards import ShardSpec
from birdgen_ray.write.shard_writer import commit_shard
from birdgen_ray.write.storage import Output

log = logging.getLogger(__name__)


@dataclass
class ShardResult:
    shard_id: str
    clips: int
    bytes_written: int
    seconds: float  # wall time in the actor, generation and writing
    stage_seconds: dict[str, float] = field(default_factory=dict)
    oom_splits: int = 0


def build_generator(run: RunConfig) -> ClipGenerator:
    if run.generator == "null":
        from birdgen_ray.generate.null import NullGenerator

        return NullGenerator(run.generation, run.engine)
    if run.generator == "audioldm2":
        from birdgen_ray.generate.engine import AudioLDM2Engine

        return AudioLDM2Engine(run.generation, run.engine)
    raise ValueError(f"unknown generator {run.generator!r} (choose audioldm2 or null)")


def _is_oom(exc: BaseException) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False
    return isinstance(exc, torch.cuda.OutOfMemoryError)


class ShardWorker:
    """Plain class so it runs in-process too; `GeneratorActor` below is its Ray actor form."""

    def __init__(self, run: RunConfig, cpu_threads: int | None = None):
        self.run = run
        self.output = Output(run.out, run.storage_options)
        self.generator = build_generator(run)
        # Only a generator that brought torch in needs its thread count; importing torch just for
        # this would add seconds to every (re)started actor of the null generator.
        if cpu_threads and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(cpu_threads)

    def info(self) -> dict:
        return {"pid": os.getpid(), "model_id": self.generator.model_id}

    def run_shard(self, shard: ShardSpec) -> ShardResult:
        start = time.perf_counter()
        stages_before = dict(getattr(self.generator, "stage_times", {}))
        self._oom_splits = 0
        clips = self._generate(plan_rows(shard.plan_slice))
        write_start = time.perf_counter()
        nbytes = commit_shard(
            self.output, shard.shard_id, shard.plan_slice, clips, self.run.generation, self.generator.model_id
        )
        stages = {
            k: v - stages_before.get(k, 0.0) for k, v in getattr(self.generator, "stage_times", {}).items()
        }
        stages["write"] = time.perf_counter() - write_start
        return ShardResult(
            shard.shard_id, len(clips), nbytes, time.perf_counter() - start, stages, self._oom_splits
        )

    def _generate(self, rows: list[PlanRow]) -> list[GeneratedClip]:
        """Generate; on CUDA out-of-memory halve the batch and try again (results are batch-invariant)."""
        try:
            return self.generator.generate(rows)
        except Exception as exc:
            batch_size = getattr(self.generator, "batch_size", None)
            if not _is_oom(exc) or not batch_size or batch_size <= 1:
                raise
        import torch

        torch.cuda.empty_cache()
        self.generator.batch_size = batch_size // 2
        self._oom_splits += 1
        log.warning("CUDA out of memory at batch %d; retrying at batch %d", batch_size, batch_size // 2)
        return self._generate(rows)


def actor_class():
    """The Ray actor form of ShardWorker (created lazily so importing this module needs no Ray)."""
    import ray

    return ray.remote(max_restarts=0, max_task_retries=0)(ShardWorker)
