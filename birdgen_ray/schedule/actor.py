"""The generator actor: holds one model for its lifetime and turns shards into committed files.

Audio never travels through the driver: the actor writes its shard itself and returns only stats.
The actor runs two shard calls at once (a threaded Ray actor): while one shard is packed and
uploaded, the next one already generates, so the GPU does not wait for storage. Only generation is
serialised (one model, one batch size); a shard's result still returns only after its commit.
The generator tells the actor each finished batch, and `in_flight()` (answered from a free actor
thread while others generate) gives the driver the clips made in shards that have not committed yet.

An actor of a run that holds the output's lease (`lock_run_id`: the lease token) checks the lease
still names its run and has not expired right before each commit: an actor that outlived its
driver commits nothing once a resume took the lease over or the lease expired (its clips would land
a second time, under the resume's other shard ids).

The Ray actor is built without its model: the driver asks `placed()` (answered once it runs on a
node) and then `load()`, so it tells an actor waiting for a node from one loading its model.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field

from birdgen_ray.config import RunConfig
from birdgen_ray.generate.revision import model_revision
from birdgen_ray.generate.types import ClipGenerator, GeneratedClip
from birdgen_ray.io.storage import Output
from birdgen_ray.rows import PlanRow, plan_rows
from birdgen_ray.schedule.lease import check_lease
from birdgen_ray.schedule.shards import ShardSpec
from birdgen_ray.versions import audio_versions
from birdgen_ray.versions import to_json as versions_json
from birdgen_ray.write.shard_writer import commit_shard

log = logging.getLogger(__name__)


@dataclass
class ShardResult:
    shard_id: str
    clips: int
    bytes_written: int
    seconds: float  # generating + writing this shard (the wait for the generator excluded)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # the generator's stages + "write"
    oom_splits: int = 0
    engine_counts: dict[str, int] = field(default_factory=dict)  # encoder calls, UNet rows, padded rows
    generate_seconds: float = 0.0  # holding the generator (the GPU on a GPU actor)
    # When (epoch seconds, in the actor's process) this shard got the generator, released it, committed.
    generate_start: float = 0.0
    generate_end: float = 0.0
    committed_at: float = 0.0
    actor_pid: int = 0


def build_generator(run: RunConfig) -> ClipGenerator:
    if run.generator == "null":
        from birdgen_ray.generate.null import NullGenerator

        return NullGenerator(run.generation, run.engine)
    if run.generator == "audioldm2":  # the --model, of whichever family its model_index.json names
        from birdgen_ray.generate.engine import ClipEngine
        from birdgen_ray.generate.model import model_family, resolve_model

        family = model_family(resolve_model(run.generation.model)[0])
        return ClipEngine(run.generation, run.engine, run.storage_options, family=family)
    raise ValueError(f"unknown generator {run.generator!r} (choose audioldm2 or null)")


# Allocation failures that do not arrive as torch.cuda.OutOfMemoryError: cuDNN and cuBLAS workspaces
# raise plain RuntimeErrors with these in the message.
_OOM_MESSAGES = ("CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED", "CUDA error: out of memory")


def _is_oom(exc: BaseException) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _OOM_MESSAGES)


def _assigned_gpu_ids() -> list[str]:
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return []
    return list(ray.get_runtime_context().get_accelerator_ids().get("GPU", []))


class ShardWorker:
    """Plain class so it runs in-process too (thread-safe); `actor_class()` below gives its Ray actor form."""

    def __init__(
        self, run: RunConfig, cpu_threads: int | None = None, lock_run_id: str | None = None, load_now: bool = True
    ):
        self.run = run
        self.lock_run_id = lock_run_id  # None: no lock to check (in-process use, tests)
        self.output = Output(run.out, run.storage_options)
        self._cpu_threads = cpu_threads
        self._generator_lock = threading.Lock()
        self._generating: ShardSpec | None = None  # the shard holding the generator
        self._made: dict[str, float] = {}  # shard id -> clips generated, until that shard commits or fails
        self._made_lock = threading.Lock()
        if load_now:
            self.load()

    def placed(self) -> int:
        """Answers once the actor runs on a node: the driver then knows it is loading its model."""
        return os.getpid()

    def load(self) -> dict:
        """Build the generator (the model load); the actor form is built without it, so the driver sees
        placement and the model load apart. Returns `info()`."""
        cpu_threads = self._cpu_threads
        run = self.run
        self.generator = build_generator(run)
        # what decides this actor's audio, recorded in each of its clips' index rows
        self.versions = versions_json(audio_versions(model_revision(run.generation.model)))
        # Only a generator that brought torch in needs its thread count; importing torch just for
        # this would add seconds to every (re)started actor of the null generator.
        if cpu_threads and run.generation.verifier:  # a CPU actor's cores are shared with the BirdNET threads:
            # torch's OpenMP threads spin-wait, and one core taken from them slows every model call down
            cpu_threads = max(1, cpu_threads - run.engine.verifier_threads_for(gpu=False))
        if cpu_threads and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(cpu_threads)
        self.generator.on_batch = self._batch_done
        return self.info()

    def info(self) -> dict:
        """This worker's process, model, the GPUs Ray gave it (none in-process or on a CPU actor), and the
        engine's speed settings with why each was chosen (none for the null generator)."""
        choices = getattr(self.generator, "choices", {})
        return {
            "pid": os.getpid(),
            "model_id": self.generator.model_id,
            "versions": self.versions,
            "gpu_ids": _assigned_gpu_ids(),
            "engine": {name: {"value": c.value, "why": c.why} for name, c in choices.items()},
        }

    def in_flight(self) -> dict[str, int]:
        """Clips generated per shard not committed yet (the driver polls this every few seconds)."""
        with self._made_lock:
            return {shard_id: int(clips) for shard_id, clips in self._made.items()}

    def _batch_done(self, clips: float) -> None:
        shard = self._generating
        if shard is None:
            return
        with self._made_lock:  # never more than the shard holds (a candidate fraction, an OOM rerun)
            self._made[shard.shard_id] = min(float(shard.num_clips), self._made.get(shard.shard_id, 0.0) + clips)

    def run_shard(self, shard: ShardSpec) -> ShardResult:
        try:
            return self._run_shard(shard)
        finally:  # committed (counted by the driver from the result now) or failed: in flight no more
            with self._made_lock:
                self._made.pop(shard.shard_id, None)

    def _run_shard(self, shard: ShardSpec) -> ShardResult:
        rows = plan_rows(shard.plan_slice)
        with self._generator_lock:  # one shard at a time on the model; the previous one may still be writing
            generate_start, start = time.time(), time.perf_counter()
            stages_before = dict(getattr(self.generator, "stage_times", {}))
            counts_before = dict(getattr(self.generator, "engine_counts", {}))
            self._generating = shard
            try:
                clips, oom_splits = self._generate(rows)
            finally:
                self._generating = None
            with self._made_lock:
                self._made[shard.shard_id] = float(len(clips))
            stages = {k: v - stages_before.get(k, 0.0) for k, v in getattr(self.generator, "stage_times", {}).items()}
            counts = {k: v - counts_before.get(k, 0) for k, v in getattr(self.generator, "engine_counts", {}).items()}
            generate_seconds = time.perf_counter() - start
            generate_end = time.time()
        write_start = time.perf_counter()
        nbytes = self._commit(shard, clips)
        stages["write"] = time.perf_counter() - write_start
        return ShardResult(
            shard.shard_id,
            len(clips),
            nbytes,
            seconds=generate_seconds + stages["write"],
            stage_seconds=stages,
            oom_splits=oom_splits,
            engine_counts=counts,
            generate_seconds=generate_seconds,
            generate_start=generate_start,
            generate_end=generate_end,
            committed_at=time.time(),
            actor_pid=os.getpid(),
        )

    def _commit(self, shard: ShardSpec, clips: list[GeneratedClip]) -> int:
        """Write and commit the shard's files; the bytes written."""
        return commit_shard(
            self.output,
            shard.shard_id,
            shard.plan_slice,
            clips,
            self.run.generation,
            self.generator.model_id,
            versions=self.versions,
            before_commit=self._check_lock if self.lock_run_id else None,
        )

    def _check_lock(self) -> None:
        check_lease(self.output, self.lock_run_id)

    def _generate(self, rows: list[PlanRow], oom_splits: int = 0) -> tuple[list[GeneratedClip], int]:
        """Generate; on CUDA out-of-memory halve the batch and try again (a clip does not depend on its
        batch-mates; only kernel rounding can differ with the batch size).

        Called under the generator lock, so the halved batch size is the one every later shard uses.
        """
        try:
            return self.generator.generate(rows), oom_splits
        except Exception as exc:
            batch_size = getattr(self.generator, "batch_size", None)
            if not _is_oom(exc) or not batch_size or batch_size <= 1:
                raise
        import torch

        torch.cuda.empty_cache()
        with self._made_lock:  # the rows are generated again from the start
            self._made.pop(self._generating.shard_id if self._generating else "", None)
        self.generator.batch_size = batch_size // 2
        log.warning("CUDA out of memory at batch %d; retrying at batch %d", batch_size, batch_size // 2)
        return self._generate(rows, oom_splits + 1)


def actor_class(max_concurrency: int = 2):
    """The Ray actor form of ShardWorker (created lazily so importing this module needs no Ray).

    `max_concurrency` calls run at once in the actor's threads: one shard generates, the others
    write (or wait for the generator); 2 is enough to hide the writing of one shard. The driver asks
    for one thread more than its shards in flight per actor, so that `in_flight()` never queues.
    """
    import ray

    return ray.remote(max_restarts=0, max_task_retries=0, max_concurrency=max_concurrency)(ShardWorker)
