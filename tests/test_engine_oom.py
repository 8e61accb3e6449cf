"""CUDA out-of-memory inside the real engine: the actor halves the engine's batch and the shard completes."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import torch

from birdgen_ray.config import EngineConfig, GenerationConfig, RunConfig
from birdgen_ray.plan.validate import validate_plan
from birdgen_ray.schedule.actor import ShardWorker
from birdgen_ray.schedule.shards import make_shards
from tests.plans import plan_table, write_plan

pytestmark = pytest.mark.slow  # the tiny model


@pytest.mark.parametrize(
    "error",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),  # a workspace allocation, not torch's allocator
    ],
)
def test_unet_out_of_memory_halves_the_real_engines_batch(tmp_path, monkeypatch, error):
    monkeypatch.setenv("BIRDGEN_CACHE", str(tmp_path / "cache"))
    plan_path = write_plan(tmp_path / "plan.parquet", plan_table(6, durations=(1.0,)))
    shard = make_shards(validate_plan(pq.read_table(plan_path)), 6)[0]
    run = RunConfig(
        plan_path=plan_path,
        out=str(tmp_path / "out"),
        generation=GenerationConfig(model="tiny", num_inference_steps=2),
        engine=EngineConfig(batch_size=8, device="cpu"),
    )
    worker = ShardWorker(run, cpu_threads=1)
    unet_batches: list[int] = []

    def pretend_oom_above_8_latents(_module, args, kwargs):
        latents = args[0] if args else kwargs["sample"]
        unet_batches.append(latents.shape[0])
        if latents.shape[0] > 8:  # guidance doubles the batch: more than 4 clips "do not fit"
            raise error

    worker.generator.pipe.unet.register_forward_pre_hook(pretend_oom_above_8_latents, with_kwargs=True)
    report, in_flight = worker.generator.on_batch, []  # the actor's per-batch count, as the driver polls it

    def recording(clips: float) -> None:
        report(clips)
        in_flight.append(worker.in_flight())

    worker.generator.on_batch = recording
    result = worker.run_shard(shard)

    assert result.oom_splits == 1 and result.clips == 6
    assert worker.generator.batch_size == 4 and worker.generator.scorer.batch_size == 4
    assert unet_batches[0] == 16 and set(unet_batches[1:]) == {8}
    assert (tmp_path / "out" / "shards" / f"{shard.shard_id}.parquet").exists()
    # the failed batch of 6 counted nothing; the halved ones 4, then 6; committed: in flight no more
    assert in_flight == [{shard.shard_id: 4}, {shard.shard_id: 6}] and worker.in_flight() == {}


def test_other_runtime_errors_are_not_taken_for_out_of_memory():
    from birdgen_ray.schedule.actor import _is_oom

    assert not _is_oom(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not _is_oom(ValueError("CUDNN_STATUS_ALLOC_FAILED"))  # only a RuntimeError from the backend counts
