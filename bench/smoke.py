"""The GPU script's first step: imports, the tiny model built and loaded on the device, one batch at 2 steps.

Under a minute. It stops bench/gpu_bench.sh with one clear line before the full-size cases spend the
device time, when a wheel is missing, CUDA is not there, or the engine fails on the device.

    python bench/smoke.py --device cuda
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    step = "imports"
    try:
        import numpy as np
        import torch
        from common import bench_arguments, bench_device, make_rows  # bench/ is on sys.path

        import birdgen_ray.schedule.actor  # noqa: F401  (the end-to-end case's path: pyarrow, fsspec, soundfile)
        from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds
        from birdgen_ray.generate.engine import AudioLDM2Engine

        args = bench_arguments(__doc__).parse_args(argv)
        device = bench_device(args)
        step = f"building and loading the tiny model on {device}"
        quality = QualityThresholds(min_clap_score=-1.0, max_retries=0)  # scored: the device CLAP features run too
        generation = GenerationConfig(model="tiny", num_inference_steps=2, quality=quality)
        engine = AudioLDM2Engine(generation, EngineConfig(batch_size=4, device=str(device)))
        step = "one batch of 4 clips at 2 steps"
        clips = engine.generate(make_rows(4, 1.0, first_seed=0))
        if not all(np.isfinite(c.audio).all() and c.audio.shape == (32_000,) for c in clips):
            raise RuntimeError("the clips came out non-finite or of the wrong length")
        choices = ", ".join(f"{k} {c.value}" for k, c in engine.choices.items())
        print(f"smoke ok in {time.perf_counter() - started:.1f} s on {device} (torch {torch.__version__}; {choices})")
        return 0
    except Exception as exc:  # noqa: BLE001 - any failure: one line, and the script stops
        print(f"SMOKE FAILED at {step}: {type(exc).__name__}: {exc} - stopping before the full-size cases", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
