"""The engine bench's fair peer and end-to-end cases, and what every case shares.

  diffusers_batched  plain diffusers `AudioLDM2Pipeline.__call__` with lists of prompts and negative
                     prompts, one torch.Generator per clip, `--batch` clips per call, the same scheduler
                     and steps as engine_fast; then the same post-processing and WAV encoding. The fair
                     peer: what a user gets from diffusers with batching and nothing else.
  end_to_end         engine_fast through the real shard path in-process: `ShardWorker.run_shard` on one
                     shard (engine, WAV tar, shard index, commit) into a local folder. No Ray: the driver
                     only hands out shards (bench/orchestration_bench.py measures that part).

Every case gets the same loaded pipeline (`SharedPipelines`: one load instead of one per case; each case
starts from the pipeline's own scheduler again), an optional time cap (`case_cap`), and a count of the
engine's non-finite reruns (`RerunCounter`, from the engine's own warnings).
"""

from __future__ import annotations

import logging
import signal
import tempfile
import time
from contextlib import contextmanager

import numpy as np
import pyarrow as pa
import torch
from common import make_rows  # bench/ is on sys.path
from counters import UNetCalls

from birdgen_ray.config import EngineConfig, GenerationConfig, RunConfig
from birdgen_ray.generate import engine as engine_module
from birdgen_ray.generate.engine import make_scheduler
from birdgen_ray.generate.model import load_pipeline
from birdgen_ray.generate.postprocess import to_output
from birdgen_ray.generate.quality import measure
from birdgen_ray.generate.renderers import audioldm2 as renderer_module
from birdgen_ray.generate.stages import StageClock
from birdgen_ray.io.audio import encode_wav
from birdgen_ray.rows import PlanRow


class SharedPipelines:
    """`load_pipeline` that loads each (model, device, dtype) once; installed for the engine module too."""

    def __init__(self):
        self._loaded: dict = {}

    def __call__(self, model: str, device: str | None = None, dtype=None):
        key = (model, str(device), dtype)
        if key not in self._loaded:
            pipe, model_id = load_pipeline(model, device, dtype)
            self._loaded[key] = (pipe, model_id, pipe.scheduler)
        pipe, model_id, scheduler = self._loaded[key]
        pipe.scheduler = scheduler  # a case's own scheduler never leaks into the next case
        return pipe, model_id

    @contextmanager
    def installed(self):
        """The engine module loads through this while the block runs (a bench in a test process must not
        hand its pipeline to the tests after it)."""
        original = renderer_module.load_pipeline
        renderer_module.load_pipeline = self
        try:
            yield self
        finally:
            renderer_module.load_pipeline = original


class CaseTimedOut(Exception):
    pass


@contextmanager
def case_cap(seconds: float | None):
    """Raise CaseTimedOut in the block after `seconds` (SIGALRM; main thread only). None: no cap."""
    if not seconds:
        yield
        return

    def expire(signum, frame):
        raise CaseTimedOut(f"cut off after its {seconds:g} s cap")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class RerunCounter(logging.Handler):
    """Clips the engine reran because their audio came out NaN/inf (its warnings name their seeds)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.reruns = 0
        self.persistent = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("non-finite audio for seeds"):
            self.reruns += len(record.args[0])
        elif record.msg.startswith("model %s kept producing NaN/inf"):
            self.persistent += len(record.args[1])

    @contextmanager
    def counting(self):
        self.reruns = self.persistent = 0
        logger = logging.getLogger(engine_module.__name__)
        logger.addHandler(self)
        try:
            yield self
        finally:
            logger.removeHandler(self)


def postprocess_like_engine(raw: np.ndarray, source_rate: int, gen: GenerationConfig, duration: float) -> np.ndarray:
    measure(raw, source_rate, gen.quality)
    return to_output(raw, source_rate, gen.output_sample_rate, duration, gen.peak_dbfs)


def run_diffusers_batched(
    pipes: SharedPipelines, model: str, device: torch.device, gen: GenerationConfig, rows: list[PlanRow], batch: int
) -> tuple[float, dict, int, int, list[int]]:
    """(wall seconds, stage seconds, clips with non-finite audio, UNet forwards, UNet batch per forward)."""
    pipe, _ = pipes(model, str(device))
    pipe.scheduler = make_scheduler(gen.scheduler, pipe.scheduler.config)
    source_rate = int(pipe.vocoder.config.sampling_rate)
    call = dict(
        audio_length_in_s=rows[0].duration_s,
        guidance_scale=gen.guidance_scale,
        num_waveforms_per_prompt=1,
        num_inference_steps=gen.num_inference_steps,
    )
    warm = rows[:batch]
    pipe(
        [r.prompt for r in warm],
        negative_prompt=[r.negative_prompt for r in warm],
        **{**call, "num_inference_steps": 2},
    )
    clock = StageClock(device)
    wrapped = [
        (pipe, "encode_prompt", "text"),
        (pipe.vae, "decode", "vae"),
        (pipe, "mel_spectrogram_to_waveform", "vocoder"),
    ]
    for obj, attr, name in wrapped:
        clock.wrap(obj, attr, name)
    unet = UNetCalls(pipe.unet)
    nonfinite = 0
    started = time.perf_counter()
    try:
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            generators = [torch.Generator().manual_seed(r.seed) for r in chunk]  # per clip, as the engine seeds
            with clock.stage("unet"):  # the call's self time: the denoising loop and its scheduler
                audios = pipe(
                    [r.prompt for r in chunk],
                    negative_prompt=[r.negative_prompt for r in chunk],
                    generator=generators,
                    **call,
                ).audios
            for raw, row in zip(audios, chunk):
                nonfinite += int(not np.isfinite(raw).all())
                with clock.stage("postprocess"):
                    audio = postprocess_like_engine(np.nan_to_num(raw), source_rate, gen, row.duration_s)
                with clock.stage("wav"):
                    encode_wav(audio, gen.output_sample_rate)
        wall = time.perf_counter() - started
        flops = unet.flops_per_call()
        return wall, dict(clock.times), nonfinite, unet.count, flops
    finally:
        unet.remove()
        for obj, attr, _ in wrapped:
            delattr(obj, attr)  # back to the class's method


def run_end_to_end(gen: GenerationConfig, engine_cfg: EngineConfig, rows: list[PlanRow]) -> tuple[float, dict, int]:
    """(seconds of run_shard after the warm-up, the shard's stage seconds, bytes written)."""
    import dataclasses

    from birdgen_ray.plan.validate import validate_plan
    from birdgen_ray.schedule.actor import ShardWorker
    from birdgen_ray.schedule.shards import make_shards

    def shard_of(plan_rows: list[PlanRow]):
        table = pa.table(
            {
                "clip_id": [r.clip_id for r in plan_rows],
                "label": [r.label for r in plan_rows],
                "prompt": [r.prompt for r in plan_rows],
                "negative_prompt": [r.negative_prompt for r in plan_rows],
                "seed": pa.array([r.seed for r in plan_rows], pa.int64()),
                "duration_s": [r.duration_s for r in plan_rows],
            }
        )
        return make_shards(validate_plan(table), len(plan_rows))[0]

    with tempfile.TemporaryDirectory(prefix="birdgen-bench-") as out:
        run = RunConfig(plan_path="bench", out=out, generation=gen, engine=engine_cfg)
        worker = ShardWorker(run)
        engine = worker.generator
        engine.generation = dataclasses.replace(gen, num_inference_steps=2)  # warm-up: one batch at 2 steps
        worker.run_shard(shard_of(make_rows(engine.batch_size, rows[0].duration_s, first_seed=10**6 + 7)))
        engine.generation = gen
        started = time.perf_counter()
        result = worker.run_shard(shard_of(rows))
        return time.perf_counter() - started, result.stage_seconds, result.bytes_written
