"""`birdgen-ray submit --dry-run`: validate and say what would run, writing nothing and starting no Ray.

The plan is read and validated as a real submit reads it; an existing output is only read (its
committed clips are left out of the count). Actors are sized as a local run sizes them, from this
machine's GPUs and CPUs; against a cluster (`--address`) the count is the cluster's to decide.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from birdgen_ray.config import RunConfig
from birdgen_ray.index.reader import committed_index
from birdgen_ray.io.storage import Output
from birdgen_ray.plan.estimate import REFERENCE_CARD, estimate_gpu_time
from birdgen_ray.plan.schema import read_plan
from birdgen_ray.schedule.resume import check_scheduler, check_unchanged
from birdgen_ray.schedule.shards import make_shards, pending_rows
from birdgen_ray.schedule.sizing import size_actor_pool


def dry_run_lines(run: RunConfig) -> list[str]:
    """What `submit` would do, as lines to print; raises PlanError for a plan submit would refuse."""
    plan = read_plan(run.plan_path, run.storage_options)
    check_scheduler(plan, run.generation, run.plan_path)
    output = Output(run.out, run.storage_options)
    committed = committed_index(output) if output.fs.exists(output.root) else None
    check_unchanged(plan, committed, run.plan_path, output.uri)
    pending = pending_rows(plan, None if committed is None else committed["clip_id"])
    shards = len(make_shards(pending, run.shard_size)) if pending.num_rows else 0
    lines = [
        f"dry run: the plan {run.plan_path} is valid: {plan.num_rows} clips, "
        f"{plan.num_rows - pending.num_rows} already committed in {run.out}",
        f"would generate {pending.num_rows} clips in {shards} shard{'s' if shards != 1 else ''} "
        f"of up to {run.shard_size}",
    ]
    if run.address or os.environ.get("RAY_ADDRESS"):
        actors = run.num_actors
        lines.append(
            f"actors: {actors} (--num-actors)"
            if actors
            else "actors: one per GPU of the cluster, decided when it starts"
        )
        gpus = actors or 1
    else:
        sizing = size_actor_pool(run, float(_local_gpus()), float(os.cpu_count() or 1))
        kind = f"{sizing.gpus_per_actor:g} GPU each" if sizing.gpus_per_actor else "CPU actors"
        lines.append(f"actors: {sizing.count} ({kind}) on a local Ray")
        gpus = sizing.count if sizing.gpus_per_actor else 0
    estimate = estimate_gpu_time(pending["duration_s"].to_pylist(), run.generation)
    settings = f"at {run.generation.num_inference_steps} steps x {run.generation.candidates_per_clip} takes"
    lines.append(estimate.line(max(1, gpus), settings))
    if not gpus:
        lines.append(
            f"  (no GPU here: the {REFERENCE_CARD} estimate does not apply to CPU actors, which are far slower)"
        )
    lines.append("nothing was written and no Ray was started")
    return lines


def _local_gpus() -> int:
    """NVIDIA GPUs on this machine, from nvidia-smi (no torch or Ray import for a dry run)."""
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listed.stdout.splitlines() if line.startswith("GPU "))
