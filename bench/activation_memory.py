"""Activation memory per clip of the full-size engine, measured on the CPU: the tables behind
`birdgen_ray.generate.batch_size` (AudioLDM2's, and Stable Audio Open's with `--family stable-audio`).

How: one process loads the full-size architecture (random weights, fp32). For each clip length and batch
size it frees what it can (gc, glibc malloc_trim), resets the kernel's peak-RSS mark (`5 > /proc/self/
clear_refs`), reads VmRSS, runs one `engine.generate` (2 DPM steps, CLAP scoring on, so its peak counts too)
and reads VmHWM. The peak minus the resident size before is that batch's working memory; the difference
between batch 2 and batch 1, per extra clip, is the activation memory of one clip (the batch-independent
part, workspaces and buffers, cancels). On the CPU torch allocates straight from malloc, so RSS is what the
tensors need at the moment of the peak.

    python bench/activation_memory.py --model full --json bench/results/activation-memory.json
    python bench/activation_memory.py --family stable-audio --model full --durations 1 5 10
"""

from __future__ import annotations

import ctypes
import datetime
import gc
import json
import re
from pathlib import Path

import torch
from common import bench_arguments, bench_device, make_rows, prepare_model  # bench/ is on sys.path
from machine import cpu_model

from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds
from birdgen_ray.generate.engine import AudioLDM2Engine, StableAudioEngine


def _status_mb(field: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) / 1024


def working_memory_mib(engine: AudioLDM2Engine, batch: int, duration: float) -> float:
    """Peak RSS during one generate of `batch` clips, above the resident size before it."""
    engine.batch_size = batch
    rows = make_rows(batch, duration, first_seed=10 * batch + int(duration * 100))
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status_mb("VmRSS")
    engine.generate(rows)
    return _status_mb("VmHWM") - before


def main(argv: list[str] | None = None) -> dict:
    parser = bench_arguments(__doc__)
    parser.add_argument("--durations", type=float, nargs="+", default=[1.0, 2.5, 5.0, 10.0])
    parser.add_argument("--batches", type=int, nargs=2, default=[1, 2], help="the two batch sizes compared")
    parser.add_argument("--family", choices=("audioldm2", "stable-audio"), default="audioldm2")
    args = parser.parse_args(argv)
    device = bench_device(args)
    if device.type != "cpu":
        raise SystemExit("this measures peak RSS: run it on the CPU (--device cpu)")
    if args.family == "stable-audio":  # no CLAP: nothing to score
        from renderer_bench import prepare_stable_audio

        model = prepare_stable_audio(args.model or "full", args.cache_dir)
        generation = GenerationConfig(model=model, num_inference_steps=2, quality=QualityThresholds(max_retries=0))
        engine = StableAudioEngine(generation, EngineConfig(batch_size=1, device="cpu"))
    else:
        model = prepare_model(args.model or "full", args.cache_dir, args.reference)
        quality = QualityThresholds(min_clap_score=-1.0, max_retries=0)  # every clip scored, none retried
        generation = GenerationConfig(model=model, num_inference_steps=2, quality=quality)
        engine = AudioLDM2Engine(generation, EngineConfig(batch_size=1, device="cpu"))
    working_memory_mib(engine, 1, min(args.durations))  # warm-up: one-off allocations (thread pools, plans)
    small, large = args.batches
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{cpu_model()}, {torch.get_num_threads()} threads",
        "model": args.model or "full",
        "family": args.family,
        "dtype": "float32",
        "how": "peak RSS (VmHWM after clear_refs) of one generate, batch 2 minus batch 1",
        "rows": [],
    }
    for duration in args.durations:
        mb = {b: working_memory_mib(engine, b, duration) for b in (small, large)}
        per_clip = (mb[large] - mb[small]) / (large - small)
        report["rows"].append(
            {
                "duration_s": duration,
                "working_mib": {str(b): round(v, 1) for b, v in mb.items()},
                "mib_per_clip": round(per_clip, 1),
            }
        )
        print(
            f"{duration:>5.1f} s: batch {small} {mb[small]:8.1f} MiB, batch {large} {mb[large]:8.1f} MiB"
            f" -> {per_clip:7.1f} MiB/clip",
            flush=True,
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
