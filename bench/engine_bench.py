"""Engine benchmark: the naive diffusers recipe and batched diffusers against AudioLDM2Engine, in one run.

Cases, same model, same clip length, prompts of a real plan (bench/plan_prompts.py; warm-ups use others):
  naive              plain `pipe(prompt, negative_prompt=..., num_inference_steps=150, audio_length_in_s=5)`,
                     one clip per call, DDIM, then the same post-processing and WAV encoding as the engine
  diffusers_batched  plain diffusers with lists of prompts, `--batch` clips per call, one generator per
                     clip, DPM-Solver++ at 25 steps: the fair peer of engine_fast (bench/cases.py)
  engine_ddim        AudioLDM2Engine, DDIM at the naive step count, one large batch
  engine_fast        AudioLDM2Engine, DPM-Solver++ at 25 steps (the fast preset)
  end_to_end         engine_fast through ShardWorker.run_shard: WAV tar, shard index and commit (no Ray)
Headline: engine_fast "x batched diffusers" (same scheduler and steps), "x naive" (the seed recipe), and
end_to_end / engine_fast (what writing a shard adds). `--cpu-proxy`: the same cases at full size (random
weights) with 5 s clips and 10 steps on the CPU, batch 1, as ratios: a CPU figure, not a GPU one.

Per-stage seconds per clip (text encoding, GPT2, UNet loop, VAE, vocoder, scoring, post-processing,
WAV bytes), clips/s, speed-ups over naive, and the UNet's model FLOP utilisation against a matmul
ceiling measured in the same run. On a GPU the full-size architecture is built from the reference
configs with random weights (no download); on a CPU the built-in tiny model at reduced sizes.

    python bench/engine_bench.py --json bench/results/cpu.json               # CPU, tiny, ~2 min
    python bench/engine_bench.py --device cuda --json gpu.json               # full size (see README)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import os
import sys
import time

import numpy as np
import torch
from cases import (
    CaseTimedOut,
    RerunCounter,
    SharedPipelines,
    case_cap,
    postprocess_like_engine,
    run_diffusers_batched,
    run_end_to_end,
)
from common import bench_arguments, bench_device, machine_name, make_rows, prepare_model  # bench/ is on sys.path
from counters import SchedulerSteps, UNetCalls
from plan_prompts import SHARD_ROWS, plan_rows
from tables import STAGES, headline, print_table

from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds
from birdgen_ray.generate.engine import AudioLDM2Engine, make_scheduler
from birdgen_ray.generate.stages import StageClock
from birdgen_ray.io.audio import encode_wav
from birdgen_ray.rows import PlanRow

PROXY_STEPS = 10
ENGINE_STAGE_NAMES = {"text_encoding": "text"}  # engine.stage_times key -> our column
PRESETS = {  # per device: what finishes in ~2 min on a 2-core CPU, or < 7 min on one H100/H200
    "cpu": dict(
        model="tiny",
        duration=1.0,
        steps_scale=0.1,
        naive_clips=3,
        batch=8,
        clips=16,
        fast_clips=32,
        compiled_case=False,
    ),
    "proxy": dict(  # --cpu-proxy: full size on the CPU, 5 s clips, 10 steps for every scheduler, batch 1
        model="full",
        duration=5.0,
        steps_scale=None,
        naive_clips=1,
        batch=1,
        clips=1,
        fast_clips=2,
        compiled_case=False,
    ),
    "cuda": dict(
        model="full",
        duration=5.0,
        steps_scale=1.0,
        naive_clips=3,
        batch=64,
        clips=64,
        fast_clips=128,
        compiled_case=True,
    ),
}


def matmul_ceiling_tflops(device: torch.device) -> tuple[float, str]:
    """Best sustained dense matmul rate: fp16 8192^3 on GPU, fp32 2048^3 on CPU."""
    n, dtype, reps = (8192, torch.float16, 50) if device.type == "cuda" else (2048, torch.float32, 5)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    clock = StageClock(device)
    best = float("inf")
    for _ in range(3):
        with clock.stage("mm"):
            for _ in range(reps):
                a @ b
        best = min(best, clock.times.pop("mm"))
    return 2 * n**3 * reps / best / 1e12, f"{str(dtype).removeprefix('torch.')} {n}x{n} matmul"


def run_naive(pipes, model: str, device: torch.device, gen: GenerationConfig, rows: list[PlanRow]) -> dict:
    """One clip per plain pipeline call, as the diffusers AudioLDM2 example does it."""
    pipe, _ = pipes(model, str(device))
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    source_rate = int(pipe.vocoder.config.sampling_rate)
    call = dict(audio_length_in_s=rows[0].duration_s, guidance_scale=gen.guidance_scale)
    pipe(rows[0].prompt, negative_prompt=rows[0].negative_prompt, num_inference_steps=2, **call)  # warm-up

    clock = StageClock(device)
    wrapped = [
        (pipe, "encode_prompt", "text"),
        (pipe, "generate_language_model", "gpt2"),
        (pipe.vae, "decode", "vae"),
        (pipe, "mel_spectrogram_to_waveform", "vocoder"),
        (pipe, "score_waveforms", "scoring"),
    ]
    for obj, attr, name in wrapped:
        clock.wrap(obj, attr, name)
    unet = UNetCalls(pipe.unet)
    nonfinite = 0
    started = time.perf_counter()
    for row in rows:
        generator = torch.Generator(device).manual_seed(row.seed)
        with clock.stage("unet"):  # the call's self time: the denoising loop and its scheduler
            raw = pipe(
                row.prompt,
                negative_prompt=row.negative_prompt,
                num_inference_steps=gen.num_inference_steps,
                generator=generator,
                **call,
            ).audios[0]
        nonfinite += int(not np.isfinite(raw).all())
        with clock.stage("postprocess"):
            audio = postprocess_like_engine(np.nan_to_num(raw), source_rate, gen, row.duration_s)
        with clock.stage("wav"):
            encode_wav(audio, gen.output_sample_rate)
    wall = time.perf_counter() - started
    result = summarise(
        "naive",
        "ddim",
        gen.num_inference_steps,
        1,
        len(rows),
        wall,
        dict(clock.times),
        unet.count,
        unet.flops_per_call(),
    )
    result["nonfinite_clips"] = nonfinite  # diffusers reruns nothing: these clips stay NaN/inf
    unet.remove()
    for obj, attr, _ in wrapped:
        delattr(obj, attr)  # the next case gets the pipeline's own methods back
    return result


def run_batched_diffusers(pipes, model, device, gen: GenerationConfig, rows: list[PlanRow], batch: int) -> dict:
    wall, stages, nonfinite, forwards, flops = run_diffusers_batched(pipes, model, device, gen, rows, batch)
    result = summarise(
        "diffusers_batched", gen.scheduler, gen.num_inference_steps, batch, len(rows), wall, stages, forwards, flops
    )
    result["nonfinite_clips"] = nonfinite
    return result


def run_shard_path(gen: GenerationConfig, engine_cfg: EngineConfig, rows: list[PlanRow], flop_per_forward: int) -> dict:
    wall, stages, nbytes = run_end_to_end(gen, engine_cfg, rows)
    stages = {ENGINE_STAGE_NAMES.get(k, k): v for k, v in stages.items()}
    stages["wav"] = stages.pop("write", 0.0)  # WAV tar + shard index + commit
    forwards = 0  # not counted here: engine_fast, at the same shapes, has them
    result = summarise(
        "end_to_end",
        gen.scheduler,
        gen.num_inference_steps,
        engine_cfg.batch_size,
        len(rows),
        wall,
        stages,
        forwards,
        flop_per_forward,
    )
    result["bytes_written"] = nbytes
    return result


def run_engine(
    name: str, gen: GenerationConfig, engine_cfg: EngineConfig, rows: list[PlanRow], flop_per_forward: int | None = None
) -> dict:
    """A compiled case counts forwards by scheduler steps and takes `flop_per_forward` from an eager
    case at the same batch shape (the FLOPs of a forward do not change with compilation)."""
    engine = AudioLDM2Engine(gen, engine_cfg)
    device = engine.device
    # Warm-up on one full batch at 2 steps (kernels, allocator, cuDNN plans, compilation); then a clean slate.
    warmup_clock = StageClock(device)
    with warmup_clock.stage("warmup"):
        engine.generation = dataclasses.replace(gen, num_inference_steps=2)
        engine.generate(make_rows(engine_cfg.batch_size, rows[0].duration_s, first_seed=10**6))
    engine.generation = gen
    engine.stage_times = dict.fromkeys(engine.stage_times, 0.0)

    clock = StageClock(device)
    counter = SchedulerSteps(engine.pipe.scheduler) if engine_cfg.compile_unet else UNetCalls(engine.pipe.unet)
    started = time.perf_counter()
    clips = engine.generate(rows)
    with clock.stage("wav"):
        for clip in clips:
            encode_wav(clip.audio, clip.sample_rate)
    wall = time.perf_counter() - started
    stages = {ENGINE_STAGE_NAMES.get(k, k): v for k, v in engine.stage_times.items()}
    stages["wav"] = clock.times["wav"]
    if flop_per_forward is None:
        flop_per_forward = counter.flops_per_call()
    result = summarise(
        name,
        gen.scheduler,
        gen.num_inference_steps,
        engine_cfg.batch_size,
        len(rows),
        wall,
        stages,
        counter.count,
        flop_per_forward,
    )
    result.update(compiled=engine_cfg.compile_unet, warmup_s=warmup_clock.times["warmup"])
    counter.remove()
    del engine
    return result


def summarise(name, scheduler, steps, batch, clips, wall, stages, forwards: int, flop_per_forward: int) -> dict:
    unet_s = stages.get("unet", 0.0)
    return {
        "case": name,
        "scheduler": scheduler,
        "steps": steps,
        "batch": batch,
        "clips": clips,
        "wall_s": wall,
        "clips_per_s": clips / wall,
        "s_per_clip": wall / clips,
        "stages_s_per_clip": {s: stages.get(s, 0.0) / clips for s in STAGES},
        "other_s_per_clip": (wall - sum(stages.get(s, 0.0) for s in STAGES)) / clips,
        "unet_forwards": forwards,
        "unet_tflop_per_forward": flop_per_forward / 1e12,
        "unet_tflops_achieved": flop_per_forward * forwards / unet_s / 1e12 if unet_s else 0.0,
    }


def main(argv: list[str] | None = None) -> dict:
    with SharedPipelines().installed() as pipes:  # one load for every case
        return _main(argv, pipes)


def _main(argv: list[str] | None, pipes: SharedPipelines) -> dict:
    parser = bench_arguments(__doc__)
    parser.add_argument("--duration", type=float, default=None, help="clip length in seconds (paper recipe: 5)")
    parser.add_argument("--steps-scale", type=float, default=None, help="multiply 150 DDIM / 25 DPM steps by this")
    parser.add_argument("--naive-clips", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None, help="engine and batched-diffusers batch size")
    parser.add_argument("--clips", type=int, default=None, help="clips for the engine at DDIM")
    parser.add_argument("--fast-clips", type=int, default=None, help="clips for every case at the fast preset")
    parser.add_argument("--compile", action="store_true", help="torch.compile the engine's UNet in every engine case")
    parser.add_argument(
        "--compiled-case",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add engine_fast_compiled: the fast preset with a compiled UNet (default: on GPU only)",
    )
    parser.add_argument(
        "--cpu-proxy", action="store_true", help="full size on CPU, 5 s clips, 10 steps, batch 1: ratios"
    )
    parser.add_argument("--case-cap", type=float, default=None, help="seconds per case before it is cut off")
    parser.add_argument("--compiled-case-cap", type=float, default=None, help="its own cap (compiling is slow)")
    parser.add_argument("--only", nargs="+", default=None, help="run only these cases")
    parser.add_argument("--build-only", action="store_true", help="build the model (e.g. full size) and stop")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    device = bench_device(args)
    preset = PRESETS["proxy" if args.cpu_proxy else device.type]
    opt = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in preset.items()}
    if opt["steps_scale"] is None:  # the proxy: 10 steps for every scheduler
        ddim_steps = fast_steps = PROXY_STEPS
    else:
        ddim_steps = max(2, round(150 * opt["steps_scale"]))
        fast_steps = max(2, round(25 * opt["steps_scale"]))
    model = prepare_model(opt["model"], args.cache_dir, args.reference)
    if args.build_only:
        print(f"model ready: {model}")
        return {"model": model}
    quality = QualityThresholds(max_retries=0)  # random weights make noise: never spend time on retries
    ddim = GenerationConfig(model=model, scheduler="ddim", num_inference_steps=ddim_steps, quality=quality)
    fast = dataclasses.replace(ddim, scheduler="dpm", num_inference_steps=fast_steps)
    engine_cfg = EngineConfig(batch_size=opt["batch"], compile_unet=args.compile, device=str(device))
    torch.manual_seed(0)
    reruns = RerunCounter()

    import diffusers
    import transformers

    ceiling, ceiling_what = matmul_ceiling_tflops(device)
    precision = "fp16" if device.type == "cuda" else "fp32"
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_name(device),
        "device": device.type,
        "label": f"CPU proxy (full size, random weights, {opt['duration']:g} s clips, {PROXY_STEPS} steps, "
        "real-plan prompts): ratios on a CPU, not GPU figures"
        if args.cpu_proxy
        else "",
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "diffusers": diffusers.__version__,
        },
        "settings": (
            f"model={opt['model']} clip={opt['duration']}s DDIM {ddim_steps} / DPM {fast_steps} steps, "
            f"batch {opt['batch']}, {precision}{', compiled UNet' if args.compile else ''}"
        ),
        "options": {**opt, "ddim_steps": ddim_steps, "fast_steps": fast_steps, "compile": args.compile},
        "matmul_ceiling": ceiling_what,
        "matmul_ceiling_tflops": ceiling,
        "cases": [],
    }
    print(f"matmul ceiling: {ceiling:.2f} TFLOP/s ({ceiling_what})", flush=True)
    fast_rows = plan_rows(opt["fast_clips"], opt["duration"], offset=0)  # the real plan's first shard

    def fast_flops() -> int:
        eager = next((c for c in report["cases"] if c["case"] == "engine_fast"), None)  # same batch shape
        return round(eager["unet_tflop_per_forward"] * 1e12) if eager else 0

    runs = [
        ("naive", lambda: run_naive(pipes, model, device, ddim, plan_rows(opt["naive_clips"], opt["duration"], 0))),
        ("diffusers_batched", lambda: run_batched_diffusers(pipes, model, device, fast, fast_rows, opt["batch"])),
        (
            "engine_ddim",
            lambda: run_engine("engine_ddim", ddim, engine_cfg, plan_rows(opt["clips"], opt["duration"], SHARD_ROWS)),
        ),
        ("engine_fast", lambda: run_engine("engine_fast", fast, engine_cfg, fast_rows)),
        ("end_to_end", lambda: run_shard_path(fast, engine_cfg, fast_rows, fast_flops())),
    ]
    if opt["compiled_case"] and not args.compile:  # last: its compilation is the slowest step of the run
        compiled_cfg = dataclasses.replace(engine_cfg, compile_unet=True)
        runs.append(
            (
                "engine_fast_compiled",
                lambda: run_engine("engine_fast_compiled", fast, compiled_cfg, fast_rows, fast_flops()),
            )
        )
    runs = [(name, run) for name, run in runs if args.only is None or name in args.only]
    for name, run in runs:
        started = time.perf_counter()
        try:
            cap = args.compiled_case_cap if name.endswith("_compiled") and args.compiled_case_cap else args.case_cap
            with case_cap(cap), reruns.counting():
                case = run()
            case["fp16_reruns"] = reruns.reruns  # clips the engine reran for NaN/inf (0 for diffusers' cases)
            case["nonfinite_after_reruns"] = reruns.persistent
        except CaseTimedOut as exc:
            case = {"case": name, "error": str(exc), "wall_s": time.perf_counter() - started}
        gc.collect()  # the timing wrappers form cycles with the pipeline; free its GPU memory now
        if device.type == "cuda":
            torch.cuda.empty_cache()
        report["cases"].append(case)
        report["headline"] = headline(report["cases"])
        rated = [c for c in report["cases"] if "clips_per_s" in c]
        base = next((c["clips_per_s"] for c in rated if c["case"] == "naive"), None)
        report["speedup_vs_naive"] = {c["case"]: c["clips_per_s"] / base for c in rated} if base else {}
        report["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
        if "clips_per_s" in case:
            warmup = f", warm-up {case['warmup_s']:.1f} s" if "warmup_s" in case else ""
            print(f"{name}: {case['clips_per_s']:.4f} clips/s ({case['wall_s']:.1f} s{warmup})", flush=True)
        else:
            print(f"{name}: {case['error']}", flush=True)
        if args.json:  # after every case, so a run cut short still leaves its figures
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2))
    print_table(report)
    if args.json:
        print(f"\nwrote {args.json}")
    return report


if __name__ == "__main__":
    main()
