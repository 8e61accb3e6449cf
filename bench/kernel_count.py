"""Kernel counts per clip and the engine's own counters, in one run (a CPU-measurable stand-in for
GPU launch overhead: every aten op is at least one kernel launch on a GPU, eager).

1. aten ops per clip, counted with `TorchDispatchMode`, for the engine (`AudioLDM2Engine.generate`) and
   for batched diffusers (`AudioLDM2Pipeline.__call__` with lists of prompts, one generator per clip),
   at the same batch, scheduler and steps, on fresh real-plan prompts (bench/plan_prompts.py), split
   by stage: text (CLAP text, T5, projection, GPT2), unet, vae, vocoder, other (scheduler, glue).
   The op count does not depend on the clip length (same graph, other shapes), so the full-size model
   is counted at short clips.
2. `engine_counts` from running the engine (tiny model by default: the counts depend on the prompts'
   token lengths, the batch and the start steps, not on the model's size): encoder calls for one
   256-row shard of the real plan, and UNet rows / padded rows for one shard with references at
   `--strength 0.3:0.7` (as `birdgen-ray plan --strength` draws it per row) at batch 64, 25 steps.

    python bench/kernel_count.py --model full --json bench/results/kernel-count.json
"""

from __future__ import annotations

import collections
import datetime
import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch
from cases import SharedPipelines
from common import bench_arguments, bench_device, machine_name, prepare_model  # bench/ is on sys.path
from plan_prompts import SHARD_ROWS, plan_rows
from torch.utils._python_dispatch import TorchDispatchMode

from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds
from birdgen_ray.generate.engine import AudioLDM2Engine, make_scheduler
from birdgen_ray.plan.references import row_strength

AUDIO = Path(os.environ.get("BIRDGEN_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared") / "audio"
STAGE_MODULES = {  # pipeline attribute -> stage
    "text_encoder": "text",
    "text_encoder_2": "text",
    "projection_model": "text",
    "language_model": "text",
    "unet": "unet",
    "vae": "vae",
    "vocoder": "vocoder",
}


class OpCounter(TorchDispatchMode):
    """Counts aten ops by the stage whose module is running (forward hooks set it)."""

    def __init__(self):
        super().__init__()
        self.stage = "other"
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[self.stage] += 1
        return func(*args, **(kwargs or {}))


@contextmanager
def counting(pipe, encode=None):
    """`encode`: (object, method) that encodes prompts as a whole, glue included (else: the modules)."""
    counter = OpCounter()
    handles = []
    for attr, stage in STAGE_MODULES.items():
        module = getattr(pipe, attr, None)
        if module is None:
            continue
        previous: list[str] = []

        def enter(_m, _a, stage=stage, previous=previous):
            previous.append(counter.stage)
            counter.stage = stage

        def leave(_m, _a, _o, previous=previous):
            counter.stage = previous.pop()

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    # the VAE's decode and the pipeline's vocoder call are not module forwards: wrap them too
    handles.append(_wrap(counter, pipe.vae, "decode", "vae"))
    handles.append(_wrap(counter, pipe, "mel_spectrogram_to_waveform", "vocoder"))
    if encode is not None:
        handles.append(_wrap(counter, *encode, "text"))
    try:
        with counter:
            yield counter
    finally:
        for handle in handles:
            handle.remove()


class _Unwrap:
    def __init__(self, obj, attr):
        self.obj, self.attr = obj, attr

    def remove(self):
        delattr(self.obj, self.attr)


def _wrap(counter: OpCounter, obj, attr: str, stage: str) -> _Unwrap:
    original = getattr(obj, attr)

    def wrapped(*args, **kwargs):
        previous, counter.stage = counter.stage, stage
        try:
            return original(*args, **kwargs)
        finally:
            counter.stage = previous

    setattr(obj, attr, wrapped)
    return _Unwrap(obj, attr)


def per_clip(counts: collections.Counter, clips: int) -> dict:
    stages = {s: counts.get(s, 0) / clips for s in ("text", "unet", "vae", "vocoder", "other")}
    return {"total": sum(counts.values()) / clips, **stages}


def count_diffusers(pipes, model, gen: GenerationConfig, rows) -> dict:
    pipe, _ = pipes(model, "cpu")
    pipe.scheduler = make_scheduler(gen.scheduler, pipe.scheduler.config)
    with torch.no_grad(), counting(pipe, (pipe, "encode_prompt")) as counter:
        pipe(
            [r.prompt for r in rows],
            negative_prompt=[r.negative_prompt for r in rows],
            generator=[torch.Generator().manual_seed(r.seed) for r in rows],
            num_inference_steps=gen.num_inference_steps,
            audio_length_in_s=rows[0].duration_s,
            guidance_scale=gen.guidance_scale,
        )
    return per_clip(counter.counts, len(rows))


def count_engine(gen: GenerationConfig, batch: int, rows) -> dict:
    engine = AudioLDM2Engine(gen, EngineConfig(batch_size=batch, device="cpu"))
    with counting(engine.pipe, (engine.renderer, "encode")) as counter:
        engine.generate(rows)
    return {**per_clip(counter.counts, len(rows)), "engine_counts": engine.engine_counts}


def shard_counts(model: str, steps: int, batch: int, duration: float) -> dict:
    """engine_counts for one real-plan shard, text only and with references at strength 0.3:0.7."""
    quality = QualityThresholds(max_retries=0)
    results = {}
    shard = plan_rows(SHARD_ROWS, duration)
    # encoder calls do not depend on the step count: the text-only shard runs 2 steps
    text = GenerationConfig(model=model, scheduler="dpm", num_inference_steps=2, quality=quality)
    engine = AudioLDM2Engine(text, EngineConfig(batch_size=batch, device="cpu"))
    engine.generate(shard)
    results["text_only"] = engine.engine_counts
    reference = AUDIO / "scikit-maad-spinetail.wav"
    with_references = [
        _with_reference(r, reference, float(i % 8), row_strength((0.3, 0.7), r.seed, r.label, 0))
        for i, r in enumerate(plan_rows(SHARD_ROWS, duration, offset=SHARD_ROWS))
    ]
    ranged = GenerationConfig(model=model, scheduler="dpm", num_inference_steps=steps, quality=quality)
    engine = AudioLDM2Engine(ranged, EngineConfig(batch_size=batch, device="cpu"))
    engine.generate(with_references)
    results["strength_0.3:0.7"] = engine.engine_counts
    for counts in results.values():
        counts["padded_share"] = counts["padded_rows"] / counts["unet_rows"] if counts["unet_rows"] else 0.0
    return results


def _with_reference(row, recording: Path, start: float, strength: float):
    import dataclasses

    return dataclasses.replace(
        row, reference=recording.name, reference_root=str(recording.parent), reference_start_s=start, strength=strength
    )


def main(argv: list[str] | None = None) -> dict:
    parser = bench_arguments(__doc__)
    parser.add_argument("--batch", type=int, default=4, help="clips per call for the kernel counts")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--duration", type=float, default=0.5, help="clip length for the kernel counts")
    parser.add_argument("--counts-model", default="tiny", help="model for engine_counts (they do not depend on it)")
    parser.add_argument("--counts-steps", type=int, default=25)
    parser.add_argument("--counts-batch", type=int, default=64)
    parser.add_argument("--counts-duration", type=float, default=0.5)
    parser.add_argument("--skip-kernels", action="store_true", help="engine_counts only")
    parser.add_argument("--skip-counts", action="store_true", help="aten op counts only")
    args = parser.parse_args(argv)
    device = bench_device(args)
    load_before = os.getloadavg()
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_name(device),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    if not args.skip_kernels:
        model = prepare_model(args.model or "full", args.cache_dir, args.reference)
        gen = GenerationConfig(
            model=model, scheduler="dpm", num_inference_steps=args.steps, quality=QualityThresholds(max_retries=0)
        )
        rows = plan_rows(args.batch, args.duration)
        with SharedPipelines().installed() as pipes:
            report["aten_ops_per_clip"] = {
                "diffusers_batched": count_diffusers(pipes, model, gen, rows),
                "engine": count_engine(gen, args.batch, rows),
            }
        for name, figures in report["aten_ops_per_clip"].items():
            stages = ", ".join(f"{s} {figures[s]:.0f}" for s in ("text", "unet", "vae", "vocoder", "other"))
            print(f"{name:18s} {figures['total']:.0f} aten ops per clip ({stages})", flush=True)
    if not args.skip_counts:
        report["engine_counts_per_shard"] = shard_counts(
            args.counts_model, args.counts_steps, args.counts_batch, args.counts_duration
        )
        for name, counts in report["engine_counts_per_shard"].items():
            print(f"one {SHARD_ROWS}-row shard, {name}: {counts}", flush=True)
    report["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
