"""Both model families at equal clip length: FLOPs, kernels and seconds per clip, in one run.

For AudioLDM2 (the engine, `--audioldm2`: tiny or full from its reference configs) and Stable Audio
Open (`--stable-audio`: tiny-stable-audio or full from bench/reference/stable-audio-open-1.0), each
with random weights, the same clips (`--batch` rows of `--duration` s, `--steps` steps, guidance on):
  - FLOPs per clip: torch's FlopCounterMode over one `generate` (matmuls and convolutions);
  - kernels per clip: aten ops dispatched during one `generate` (a TorchDispatchMode), the CPU-measurable
    stand-in for GPU launch overhead;
  - seconds per clip: one timed `generate` after the counted one (which warms up). Their ratio, Stable
    Audio over AudioLDM2, is the CPU proxy ratio; on a GPU, the GPU ratio.

    python bench/renderer_bench.py --device cpu --threads 2 --duration 1 --steps 2 \\
        --audioldm2 full --reference ../shared/reference/audioldm2/audioldm2 --stable-audio full
"""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import torch
from common import bench_arguments, bench_device, machine_name, make_rows, prepare_model  # bench/ is on sys.path
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from birdgen_ray.config import EngineConfig, GenerationConfig
from birdgen_ray.generate.engine import AudioLDM2Engine, StableAudioEngine
from birdgen_ray.models.random_stable_audio import build_from_reference_configs

STABLE_AUDIO_CONFIGS = Path(__file__).resolve().parent / "reference" / "stable-audio-open-1.0"


class KernelCount(TorchDispatchMode):
    """Counts every aten op dispatched while active."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def prepare_stable_audio(choice: str, cache_dir: Path) -> str:
    if choice != "full":
        return choice  # "tiny-stable-audio" or a snapshot directory
    out = cache_dir / "stable-audio-open-full-random"
    if not (out / "model_index.json").exists():
        print(f"building full-size Stable Audio Open with random weights in {out} ...", flush=True)
        build_from_reference_configs(STABLE_AUDIO_CONFIGS, out)
    return str(out)


def measure(engine, args, first_seed: int) -> dict:
    """FLOPs, kernels and seconds per clip of `args.batch` clips. The counted pass (FLOPs and kernels at
    once) is also the warm-up; the timed pass renders fresh prompts and seeds."""
    rows = lambda seed: make_rows(args.batch, args.duration, first_seed=seed)  # noqa: E731
    with torch.no_grad():
        with FlopCounterMode(display=False) as flops, KernelCount() as kernels:
            engine.generate(rows(first_seed))
        engine.stage_times = {}
        started = time.perf_counter()
        engine.generate(rows(first_seed + 100))
        seconds = time.perf_counter() - started
    return {
        "seconds_per_clip": round(seconds / args.batch, 3),
        "gflop_per_clip": round(flops.get_total_flops() / args.batch / 1e9, 3),
        "kernels_per_clip": kernels.count // args.batch,
        "stages_s_per_clip": {k: round(v / args.batch, 3) for k, v in engine.stage_times.items() if v},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = bench_arguments(__doc__)
    parser.add_argument("--audioldm2", default="tiny", help="tiny, full or a snapshot dir")
    parser.add_argument("--stable-audio", default="tiny-stable-audio", help="tiny-stable-audio, full or a dir")
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args(argv)
    device = bench_device(args)
    models = {
        "audioldm2": (prepare_model(args.audioldm2, args.cache_dir, args.reference), AudioLDM2Engine),
        "stable-audio-open": (prepare_stable_audio(args.stable_audio, args.cache_dir), StableAudioEngine),
    }
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_name(device),
        "clips": {"duration_s": args.duration, "steps": args.steps, "batch": args.batch, "guidance": 3.5},
        "models": {"audioldm2": args.audioldm2, "stable-audio-open": args.stable_audio},
        "families": {},
    }
    for family, (model, engine_class) in models.items():
        generation = GenerationConfig(model=model, num_inference_steps=args.steps)
        engine = engine_class(generation, EngineConfig(batch_size=args.batch, device=str(device)))
        report["families"][family] = {"model_id": engine.model_id, **measure(engine, args, first_seed=1)}
        print(family, json.dumps(report["families"][family]), flush=True)
        del engine
    audioldm2, stable_audio = report["families"]["audioldm2"], report["families"]["stable-audio-open"]
    report["stable_audio_over_audioldm2"] = {
        key: round(stable_audio[key] / audioldm2[key], 2)
        for key in ("seconds_per_clip", "gflop_per_clip", "kernels_per_clip")
    }
    print("ratio", json.dumps(report["stable_audio_over_audioldm2"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
