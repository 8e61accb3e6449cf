"""Cost per clip with a reference (SDEdit, strength 0.5) against text-only at the same step count, in one run.

Same engine, same batch size, same prompts and seeds; the two cases alternate for `--rounds` rounds
(so drift on a shared machine hits both) and the median round is reported. A reference row runs
round(strength x steps) UNet steps plus one VAE encoding of its window (cached per recording window,
so the first round pays it; `encode_s` reports that separately).

    python bench/reference_bench.py --json bench/results/reference_cpu.json                 # tiny, CPU
    python bench/reference_bench.py --model full --steps 4 --clips 2 --batch 1 --rounds 1  # full size, random
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from common import machine_name, prepare_model  # bench/ is on sys.path

from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds
from birdgen_ray.generate.engine import AudioLDM2Engine
from birdgen_ray.rows import DEFAULT_NEGATIVE_PROMPT, PlanRow

AUDIO = Path(os.environ.get("BIRDGEN_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared") / "audio"
PROMPTS = ["a spinetail calling in a forest", "a songbird trilling at dawn", "a wren singing", "birdsong, distant"]


def rows(count: int, duration: float, reference: Path | None, strength: float | None) -> list[PlanRow]:
    return [
        PlanRow(
            f"clip-{i}",
            "spinet",
            f"{PROMPTS[i % len(PROMPTS)]}, take {i}",
            DEFAULT_NEGATIVE_PROMPT,
            1000 + i,
            duration,
            reference.name if reference else None,
            str(reference.parent) if reference else None,
            float(i % 8) if reference else None,  # different windows of the recording
            strength,
        )
        for i in range(count)
    ]


def unet_calls(engine) -> list[int]:
    calls: list[int] = []
    engine.pipe.unet.register_forward_pre_hook(lambda _m, _a: calls.append(1))
    return calls


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="tiny, full (random weights from the reference configs), ...")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reference", type=Path, default=AUDIO / "scikit-maad-spinetail.wav")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "birdgen-ray" / "bench")
    parser.add_argument("--configs", type=Path, help="AudioLDM2 reference configs for --model full")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    model = prepare_model(args.model, args.cache_dir, args.configs)
    generation = GenerationConfig(
        model=model, scheduler="dpm", num_inference_steps=args.steps, quality=QualityThresholds(max_retries=0)
    )
    engine = AudioLDM2Engine(generation, EngineConfig(batch_size=args.batch, device=args.device))
    calls = unet_calls(engine)
    cases = {
        "text_only": rows(args.clips, args.duration, None, None),
        f"reference_strength_{args.strength:g}": rows(args.clips, args.duration, args.reference, args.strength),
    }
    engine.generate(rows(args.batch, args.duration, None, None))  # warm-up: allocator, prompt cache of negatives
    timings: dict[str, list[float]] = {name: [] for name in cases}
    forwards: dict[str, int] = {}
    encode_s = 0.0
    for round_index in range(args.rounds):
        for name, case in cases.items():
            vae_before, calls_before = engine.stage_times["vae"], len(calls)
            started = time.perf_counter()
            engine.generate(case)
            timings[name].append((time.perf_counter() - started) / len(case))
            forwards[name] = len(calls) - calls_before
            if round_index == 0 and name != "text_only":
                encode_s = engine.stage_times["vae"] - vae_before
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_name(torch.device(args.device)),
        "model": engine.model_id,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "cases": {
            name: {
                "s_per_clip_median": statistics.median(values),
                "s_per_clip_rounds": values,
                "unet_forwards_per_round": forwards[name],
            }
            for name, values in timings.items()
        },
        "first_round_vae_s_with_reference_encoding": encode_s,
    }
    names = list(cases)
    report["reference_cost_vs_text_only"] = (
        report["cases"][names[1]]["s_per_clip_median"] / report["cases"][names[0]]["s_per_clip_median"]
    )
    for name, case in report["cases"].items():
        print(f"{name:28s} {case['s_per_clip_median']:.4f} s/clip  ({case['unet_forwards_per_round']} UNet forwards)")
    print(f"reference / text-only: {report['reference_cost_vs_text_only']:.2f}x  ({report['machine']})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    sys.exit(main() and 0)
