"""Orchestration throughput: the whole `submit` path with the null generator (no model).

Measures clips/s through the real runner: plan validation, the output lock, Ray actors fed by
`ray.wait` with backpressure, per-clip synthesis and post-processing of the null generator, WAV
encoding, tar + Parquet index commit with fsync on local disk, consolidation and the summary, then a
rerun with nothing left to do (what a resume costs before any shard runs). The
figure says how many clips per second one node can orchestrate and write when generation costs
nothing, i.e. whether orchestration could ever hold back the GPUs.

    python bench/orchestration_bench.py                      # 20,000 clips, a few shard sizes / actor counts
    python bench/orchestration_bench.py --clips 5000 --shard-sizes 256 --actors 2 --json result.json

Each configuration writes a fresh output under a temporary folder, removed afterwards. The load
average of the machine is printed with the results: other work on the same cores lowers them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from machine import cpu_model  # bench/machine.py (the script's folder is on sys.path)

if "RAY_AUTH_MODE" not in os.environ:  # a private local Ray, with token auth (its servers listen on all interfaces)
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def bench_plan(num_clips: int, durations: list[float]) -> pa.Table:
    """Distinct short clips across a few labels; durations cycle through `durations`."""
    labels = ("asbfly", "comkin1", "grnwar1", "houspa", "eurbla")
    return pa.table(
        {
            "label": [labels[i % len(labels)] for i in range(num_clips)],
            "prompt": [f"a bird call, take {i}" for i in range(num_clips)],
            "seed": pa.array(range(num_clips), pa.int64()),
            "duration_s": [durations[i % len(durations)] for i in range(num_clips)],
        }
    )


def run_one(plan_path: str, work: Path, shard_size: int, actors: int, sample_rate: int) -> dict:
    from birdgen_ray.config import GenerationConfig, RunConfig
    from birdgen_ray.schedule.runner import submit

    out = work / f"out-s{shard_size}-a{actors}"
    run = RunConfig(
        plan_path=plan_path,
        out=str(out),
        generator="null",
        generation=GenerationConfig(output_sample_rate=sample_rate),
        num_actors=actors,
        gpus_per_actor=0,
        shard_size=shard_size,
        progress=False,
    )
    load_before = os.getloadavg()[0]
    cpu_before = time.process_time()
    summary = submit(run)
    driver_cpu = time.process_time() - cpu_before
    rerun = submit(run)  # nothing left to do: reads the one index.parquet, not every shard index
    shutil.rmtree(out, ignore_errors=True)
    clips = summary["generated_this_run"]
    return {
        "shard_size": shard_size,
        "actors": actors,
        "clips": clips,
        "status": summary["status"],
        "wall_seconds": summary["wall_seconds"],
        "clips_per_second": summary["clips_per_second"],
        # while shards run: without Ray/actor start-up and the final consolidation
        "steady_clips_per_second": round(clips / summary["driver_seconds"]["run_shards"], 1),
        "driver_seconds": summary["driver_seconds"],
        "rerun_seconds": rerun["wall_seconds"],  # a resume with nothing to do: prepare + finish
        "actor_ms_per_clip": round(1e3 * summary["actor_seconds"] / clips, 3),
        "driver_cpu_ms_per_clip": round(1e3 * driver_cpu / clips, 3),
        "stage_ms_per_clip": {k: round(1e3 * v / clips, 3) for k, v in summary["stage_seconds"].items()},
        "mb_written": round(summary["bytes_written"] / 1e6, 1),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=20_000)
    parser.add_argument("--durations", type=float, nargs="+", default=[0.5, 1.0], help="clip lengths in seconds")
    parser.add_argument("--sample-rate", type=int, default=16_000, help="output rate (16 kHz: no resampling)")
    parser.add_argument("--shard-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--work-dir", default=None, help="where outputs go (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    import ray

    cores = os.cpu_count() or 1
    # Logical CPUs are scheduling tokens: allow more actors than cores to overlap their disk waits.
    ray.init(num_cpus=max(cores, *args.actors), include_dashboard=False, log_to_driver=False, configure_logging=False)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="orchestration-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    plan_path = str(work / "plan.parquet")
    pq.write_table(bench_plan(args.clips, args.durations), plan_path)

    results = []
    try:
        for shard_size in args.shard_sizes:
            for actors in args.actors:
                result = run_one(plan_path, work, shard_size, actors, args.sample_rate)
                results.append(result)
                print(json.dumps(result), flush=True)
    finally:
        ray.shutdown()
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)

    machine = {"cpu": cpu_model(), "cores": cores, "python": platform.python_version(), "ray": ray.__version__}
    print(
        f"\nmachine: {machine['cpu']}, {cores} cores; {args.clips} clips of {args.durations} s at {args.sample_rate} Hz"
    )
    print(
        "| shard size | actors | clips/s end to end | clips/s while shards run | actor ms/clip "
        "| driver CPU ms/clip | rerun s | load avg before/after |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        load = "/".join(f"{x:.1f}" for x in r["load_average_1min"])
        print(
            f"| {r['shard_size']} | {r['actors']} | {r['clips_per_second']:.0f} | {r['steady_clips_per_second']:.0f} "
            f"| {r['actor_ms_per_clip']:.2f} "
            f"| {r['driver_cpu_ms_per_clip']:.3f} | {r['rerun_seconds']:.2f} | {load} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
