"""Engine benchmark: the naive diffusers recipe against AudioLDM2Engine, in one run.

Three cases, same model, same clip length, distinct prompts (so the engine's per-text cache only
helps with the shared negative prompt):
  naive        plain `pipe(prompt, negative_prompt=..., num_inference_steps=150, audio_length_in_s=5)`,
               one clip per call, DDIM, then the same post-processing and WAV encoding as the engine
  engine_ddim  AudioLDM2Engine, DDIM at the same step count, one large batch
  engine_fast  AudioLDM2Engine, DPM-Solver++ at 25 steps (the fast preset)

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
from pathlib import Path

import numpy as np
import torch
from common import bench_arguments, bench_device  # bench/ is on sys.path
from machine import cpu_model  # bench/machine.py (the script's folder is on sys.path)
from torch.utils.flop_counter import FlopCounterMode

from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds
from birdgen_ray.generate.engine import AudioLDM2Engine, make_scheduler
from birdgen_ray.generate.model import load_pipeline
from birdgen_ray.generate.postprocess import to_output
from birdgen_ray.generate.quality import measure
from birdgen_ray.generate.stages import StageClock
from birdgen_ray.io.audio import encode_wav
from birdgen_ray.rows import DEFAULT_NEGATIVE_PROMPT, PlanRow

STAGES = ("text", "gpt2", "unet", "vae", "vocoder", "scoring", "postprocess", "wav")
ENGINE_STAGE_NAMES = {"text_encoding": "text"}  # engine.stage_times key -> our column
REFERENCE_CONFIGS = (  # full-size component configs, first one found (see bench/README.md)
    Path(".whl/reference/audioldm2"),
    Path(__file__).resolve().parents[1].parent / "shared/reference/audioldm2/audioldm2",  # ../shared beside the repo
)
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
BIRDS = [
    "robin",
    "song thrush",
    "blackbird",
    "wren",
    "chiffchaff",
    "skylark",
    "tawny owl",
    "curlew",
    "nightingale",
    "great tit",
    "cuckoo",
    "kingfisher",
    "bittern",
    "swallow",
    "warbler",
    "woodpecker",
]
PLACES = [
    "in a forest at dawn",
    "near a river",
    "in a wetland",
    "in a city park",
    "on a hillside",
    "in a rainforest",
    "over a lake",
    "in tall grass at dusk",
]


class UNetCalls:
    """Counts UNet forwards (no sync, so timings are untouched) and keeps the first call's inputs."""

    def __init__(self, unet):
        self.unet, self.count, self.first = unet, 0, None
        original = unet.forward

        def counted(*args, **kwargs):
            self.count += 1
            if self.first is None:
                self.first = (args, kwargs)
            return original(*args, **kwargs)

        unet.forward = counted

    def remove(self) -> None:
        del self.unet.forward  # back to the class method

    @torch.no_grad()
    def flops_per_call(self) -> int:
        args, kwargs = self.first
        with FlopCounterMode(display=False) as counter:
            self.unet(*args, **kwargs)
        self.count -= 1  # the counting forward is not part of the run
        return int(counter.get_total_flops())


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


def make_rows(count: int, duration: float, first_seed: int) -> list[PlanRow]:
    rows = []
    for seed in range(first_seed, first_seed + count):
        # distinct prompts in every case and warm-up: the engine's text cache only knows the negative
        bird, place = BIRDS[seed % len(BIRDS)], PLACES[(seed // len(BIRDS)) % len(PLACES)]
        prompt = f"A song of a {bird} {place}, take {seed}."
        rows.append(PlanRow(f"bench-{seed}", "bench", prompt, DEFAULT_NEGATIVE_PROMPT, seed, duration))
    return rows


def postprocess_like_engine(raw: np.ndarray, source_rate: int, gen: GenerationConfig, duration: float) -> np.ndarray:
    measure(raw, source_rate, gen.quality)
    return to_output(raw, source_rate, gen.output_sample_rate, duration, gen.peak_dbfs)


def run_naive(model: str, device: torch.device, gen: GenerationConfig, rows: list[PlanRow]) -> dict:
    """One clip per plain pipeline call, as the diffusers AudioLDM2 example does it."""
    pipe, _ = load_pipeline(model, str(device))
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    source_rate = int(pipe.vocoder.config.sampling_rate)
    call = dict(audio_length_in_s=rows[0].duration_s, guidance_scale=gen.guidance_scale)
    pipe(rows[0].prompt, negative_prompt=rows[0].negative_prompt, num_inference_steps=2, **call)  # warm-up

    clock = StageClock(device)
    clock.wrap(pipe, "encode_prompt", "text")
    clock.wrap(pipe, "generate_language_model", "gpt2")
    clock.wrap(pipe.vae, "decode", "vae")
    clock.wrap(pipe, "mel_spectrogram_to_waveform", "vocoder")
    clock.wrap(pipe, "score_waveforms", "scoring")
    unet = UNetCalls(pipe.unet)
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
        with clock.stage("postprocess"):
            audio = postprocess_like_engine(raw, source_rate, gen, row.duration_s)
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
    unet.remove()
    del pipe
    return result


class SchedulerSteps:
    """Counts UNet forwards from outside a compiled UNet: each forward is followed by one scheduler
    step (DDIM, DPM-Solver++). Wrapping the compiled module's forward would make Dynamo recompile."""

    def __init__(self, scheduler):
        self.scheduler, self.count = scheduler, 0
        original = scheduler.step

        def counted(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)

        scheduler.step = counted

    def remove(self) -> None:
        del self.scheduler.step


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


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


def prepare_model(choice: str, cache_dir: Path, reference: Path | None) -> str:
    if choice != "full":
        return choice  # "tiny", a hub id or a local snapshot directory
    from birdgen_ray.generate.random_model import build_from_reference_configs

    candidates = [reference] if reference else list(REFERENCE_CONFIGS)
    found = next((c for c in candidates if (c / "model_index.json").is_file()), None)
    if found is None:
        raise SystemExit(f"no AudioLDM2 reference configs (model_index.json) in {', '.join(map(str, candidates))}")
    out = cache_dir / "audioldm2-full-random"
    if not (out / "model_index.json").exists():
        print(f"building full-size AudioLDM2 with random weights from {found} in {out} ...", flush=True)
        started = time.perf_counter()
        build_from_reference_configs(found, out)
        print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    return str(out)


def print_table(report: dict) -> None:
    cases = report["cases"]
    base = cases[0]["clips_per_s"]
    head = f"{'case':<22}{'sched':>6}{'steps':>6}{'batch':>6}{'clips':>6}{'clips/s':>10}{'x naive':>9}{'s/clip':>9}"
    print(f"\n{report['machine']} | {report['settings']} | load avg {report['load_average_before_after']}")
    print(head)
    for c in cases:
        print(
            f"{c['case']:<22}{c['scheduler']:>6}{c['steps']:>6}{c['batch']:>6}{c['clips']:>6}"
            f"{c['clips_per_s']:>10.3f}{c['clips_per_s'] / base:>9.1f}{c['s_per_clip']:>9.4f}"
        )
    print("\nseconds per clip by stage")
    print(f"{'case':<22}" + "".join(f"{s:>12}" for s in STAGES) + f"{'other':>12}")
    for c in cases:
        print(
            f"{c['case']:<22}"
            + "".join(f"{c['stages_s_per_clip'][s]:>12.4f}" for s in STAGES)
            + f"{c['other_s_per_clip']:>12.4f}"
        )
    ceiling = report["matmul_ceiling_tflops"]
    print(
        f"\nUNet utilisation vs {report['matmul_ceiling']} ceiling of {ceiling:.2f} TFLOP/s "
        "(UNet-loop time includes the scheduler)"
    )
    for c in cases:
        print(
            f"{c['case']:<22}{c['unet_forwards']:>6} forwards x {c['unet_tflop_per_forward']:.4f} TFLOP"
            f" -> {c['unet_tflops_achieved']:.3f} TFLOP/s = {100 * c['unet_tflops_achieved'] / ceiling:.1f}% MFU"
        )


def main(argv: list[str] | None = None) -> dict:
    parser = bench_arguments(__doc__)
    parser.add_argument("--duration", type=float, default=None, help="clip length in seconds (paper recipe: 5)")
    parser.add_argument("--steps-scale", type=float, default=None, help="multiply 150 DDIM / 25 DPM steps by this")
    parser.add_argument("--naive-clips", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None, help="engine batch size")
    parser.add_argument("--clips", type=int, default=None, help="clips for the engine at DDIM")
    parser.add_argument("--fast-clips", type=int, default=None, help="clips for the engine at the fast preset")
    parser.add_argument("--compile", action="store_true", help="torch.compile the engine's UNet in every engine case")
    parser.add_argument(
        "--compiled-case",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add engine_fast_compiled: the fast preset with a compiled UNet (default: on GPU only)",
    )
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    device = bench_device(args)
    preset = PRESETS[device.type]
    opt = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in preset.items()}
    ddim_steps = max(2, round(150 * opt["steps_scale"]))
    fast_steps = max(2, round(25 * opt["steps_scale"]))
    model = prepare_model(opt["model"], args.cache_dir, args.reference)
    quality = QualityThresholds(max_retries=0)  # random weights make noise: never spend time on retries
    ddim = GenerationConfig(model=model, scheduler="ddim", num_inference_steps=ddim_steps, quality=quality)
    fast = dataclasses.replace(ddim, scheduler="dpm", num_inference_steps=fast_steps)
    engine_cfg = EngineConfig(batch_size=opt["batch"], compile_unet=args.compile, device=str(device))
    torch.manual_seed(0)

    import diffusers
    import transformers

    import birdgen_ray.generate.engine as _engine_module  # noqa: F401  (fail early on a missing package)

    ceiling, ceiling_what = matmul_ceiling_tflops(device)
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_name(device),
        "device": device.type,
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "diffusers": diffusers.__version__,
        },
        "settings": (
            f"model={opt['model']} clip={opt['duration']}s DDIM {ddim_steps} / DPM {fast_steps} steps, "
            f"engine batch {opt['batch']}, {'fp16' if device.type == 'cuda' else 'fp32'}"
            f"{', compiled UNet' if args.compile else ''}"
        ),
        "options": {**opt, "ddim_steps": ddim_steps, "fast_steps": fast_steps, "compile": args.compile},
        "matmul_ceiling": ceiling_what,
        "matmul_ceiling_tflops": ceiling,
        "cases": [],
    }
    print(f"matmul ceiling: {ceiling:.2f} TFLOP/s ({ceiling_what})", flush=True)
    fast_rows = make_rows(opt["fast_clips"], opt["duration"], 2000)
    runs = [
        lambda: run_naive(model, device, ddim, make_rows(opt["naive_clips"], opt["duration"], 0)),
        lambda: run_engine("engine_ddim", ddim, engine_cfg, make_rows(opt["clips"], opt["duration"], 1000)),
        lambda: run_engine("engine_fast", fast, engine_cfg, fast_rows),
    ]
    if opt["compiled_case"] and not args.compile:  # last: its compilation is the slowest step of the run

        def run_compiled() -> dict:
            eager = next(c for c in report["cases"] if c["case"] == "engine_fast")  # same batch shape
            compiled_cfg = dataclasses.replace(engine_cfg, compile_unet=True)
            return run_engine(
                "engine_fast_compiled", fast, compiled_cfg, fast_rows, round(eager["unet_tflop_per_forward"] * 1e12)
            )

        runs.append(run_compiled)
    for run in runs:
        case = run()
        gc.collect()  # the timing wrappers form cycles with the pipeline; free its GPU memory now
        if device.type == "cuda":
            torch.cuda.empty_cache()
        report["cases"].append(case)
        base = report["cases"][0]["clips_per_s"]
        report["speedup_vs_naive"] = {c["case"]: c["clips_per_s"] / base for c in report["cases"]}
        report["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
        warmup = f", warm-up {case['warmup_s']:.1f} s" if "warmup_s" in case else ""
        print(f"{case['case']}: {case['clips_per_s']:.4f} clips/s ({case['wall_s']:.1f} s{warmup})", flush=True)
        if args.json:  # after every case, so a run cut short still leaves its figures
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2))
    print_table(report)
    if args.json:
        print(f"\nwrote {args.json}")
    return report


if __name__ == "__main__":
    main()
