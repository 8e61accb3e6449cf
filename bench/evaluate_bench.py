"""How long `birdgen-ray evaluate`'s compute takes at BirdCLEF-2022 size, on simulated embeddings.

BirdCLEF 2022: 152 classes, ~15k training recordings. Simulated: per class a random 1024-d centre, each
recording's windows around its class centre plus a recording offset (so windows of one recording are
closer than windows of two), class sizes long-tailed (a few classes with one recording), and a synthetic
set of `--synthetic-ratio` x the real windows. No BirdNET: embedding time is BENCHMARKS.md's verifier
figure x windows, and is not measured here.

It times, in one run: the exact real-to-real duplicate search, the exact near-copy search (synthetic
against real), a fold's shared probe statistics (basis and real training windows, once per fold), and
the probe fits (one per fold, variant and seed: the variant's added rows' statistics, the closed-form
solve, the test windows scored). `--scale` shrinks the recordings (classes stay 152); the JSON and the
printout extrapolate each stage to scale 1 by its cost model: searches grow with the product of the two
window counts, a fold's statistics and a fit with their rows (classes, dimensions and components fixed,
so the fixed parts are extrapolated too: an upper bound).

    python bench/evaluate_bench.py --scale 0.05 --json bench/results/evaluate.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date

import numpy as np
import torch

from bench.machine import cpu_model
from birdgen_ray.evaluate.embed import Windows
from birdgen_ray.evaluate.leakage import duplicate_recording_pairs, near_copies
from birdgen_ray.evaluate.probe import predict, real_fold
from birdgen_ray.evaluate.protocol import make_protocol

CLASSES, RECORDINGS, DIM = 152, 15_000, 1024
SAMPLED_VARIANTS = 6  # 2 baselines, 4 dose ratios: one fit per fold and seed
FIXED_VARIANTS = 3  # real only, all, passed: one fit per fold whatever the seeds


def simulate(scale: float, windows_per_recording: int, synthetic_ratio: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = max(CLASSES * 2, int(RECORDINGS * scale))
    weights = 1.0 / np.arange(1, CLASSES + 1) ** 0.8  # long tail
    labels = rng.choice(CLASSES, n, p=weights / weights.sum())
    labels[:CLASSES] = np.arange(CLASSES)  # every class at least once
    centres = rng.standard_normal((CLASSES, DIM)).astype(np.float32)
    offsets = rng.standard_normal((n, DIM)).astype(np.float32) * 0.7
    owner = np.repeat(np.arange(n), windows_per_recording)
    real = centres[labels[owner]] + offsets[owner] + rng.standard_normal((len(owner), DIM)).astype(np.float32)
    n_synthetic = int(len(owner) * synthetic_ratio)
    synthetic_labels = rng.choice(CLASSES, n_synthetic)
    synthetic = centres[synthetic_labels] + 1.3 * rng.standard_normal((n_synthetic, DIM)).astype(np.float32)
    names = np.array([f"c{c}" for c in range(CLASSES)])
    return names[labels], Windows(real, owner, np.ones(len(owner), np.float32)), synthetic, names[synthetic_labels]


CPU_S: dict[str, float] = {}  # CPU seconds of this process per stage: on a shared box, the work itself


def timed(fn, *args, stage: str = ""):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    if stage:
        CPU_S[stage] = CPU_S.get(stage, 0.0) + time.process_time() - cpu
    return time.perf_counter() - start, out


def _fit(basis, x_added, y_added, test_x):
    return predict(basis, basis.real + basis.stats(x_added, y_added), test_x)


def run(scale: float, windows_per_recording: int, synthetic_ratio: float, fits: int, seeds: int) -> dict:
    labels, real, synthetic, synthetic_labels = simulate(scale, windows_per_recording, synthetic_ratio)
    groups = np.arange(len(labels)).astype(str)
    protocol = make_protocol(labels, groups, 5, 0)
    duplicate_s, _ = timed(duplicate_recording_pairs, real.owner, real.embeddings, real.rms, stage="duplicate_search")
    clip_owner = np.arange(len(synthetic))
    near_s, _ = timed(
        near_copies, synthetic, clip_owner, real.embeddings, real.owner, real.rms, stage="near_copy_search"
    )
    fold = protocol.folds[0]
    train, test = np.isin(real.owner, fold.train), np.isin(real.owner, fold.test)
    classes = sorted(set(labels.tolist()))
    fold_s, basis = timed(
        real_fold, real.embeddings[train], labels[real.owner[train]], classes, stage="fold_statistics"
    )
    fit_times = []
    for _ in range(fits):  # real + all synthetic: the largest fit of a fold
        seconds, _ = timed(_fit, basis, synthetic, synthetic_labels, real.embeddings[test], stage="fits")
        fit_times.append(seconds)
    n_fits = len(protocol.folds) * (SAMPLED_VARIANTS * seeds + FIXED_VARIANTS)
    factor = 1.0 / scale
    measured = {
        "duplicate_search_s": duplicate_s,
        "near_copy_search_s": near_s,
        "fold_statistics_s": fold_s,
        "fit_s": float(np.median(fit_times)),
        "fit_rows": int(train.sum() + len(synthetic)),
    }
    extrapolated = {
        "duplicate_search_s": duplicate_s * factor**2,
        "near_copy_search_s": near_s * factor**2,
        "fold_statistics_s": fold_s * factor * len(protocol.folds),
        "fits_s": measured["fit_s"] * factor * n_fits,  # each fit: at most the measured (largest) size
    }
    extrapolated["total_s"] = sum(extrapolated.values())
    cpu = {**CPU_S, "fits": CPU_S["fits"] / fits}
    cpu_extrapolated = {
        "duplicate_search_s": cpu["duplicate_search"] * factor**2,
        "near_copy_search_s": cpu["near_copy_search"] * factor**2,
        "fold_statistics_s": cpu["fold_statistics"] * factor * len(protocol.folds),
        "fits_s": cpu["fits"] * factor * n_fits,
    }
    cpu_extrapolated["total_s"] = sum(cpu_extrapolated.values())
    return {
        "machine": cpu_model(),
        "threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],  # a shared box: other work inflates every figure
        "date": date.today().isoformat(),
        "classes": CLASSES,
        "recordings": len(labels),
        "real_windows": len(real.owner),
        "synthetic_windows": len(synthetic),
        "scale": scale,
        "fits_per_run": n_fits,
        "measured": measured,
        "extrapolated_to_scale_1": extrapolated,
        "cpu_s_measured": cpu,  # CPU time of this process (all its threads): what the load does not inflate
        "cpu_s_extrapolated_to_scale_1": cpu_extrapolated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.05, help="share of BirdCLEF-2022's 15k recordings")
    parser.add_argument("--windows-per-recording", type=int, default=1)
    parser.add_argument("--synthetic-ratio", type=float, default=2.0)
    parser.add_argument("--fits", type=int, default=2, help="probe fits timed (median)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    result = run(args.scale, args.windows_per_recording, args.synthetic_ratio, args.fits, args.seeds)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
