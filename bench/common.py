"""What every engine benchmark shares: its command-line preamble, the device it runs on, the model it
builds (full size from the reference configs, random weights) and its rows of distinct prompts."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from machine import cpu_model  # bench/ is on sys.path

from birdgen_ray.rows import DEFAULT_NEGATIVE_PROMPT, PlanRow

REFERENCE_CONFIGS = (  # full-size component configs, first one found (see bench/README.md)
    Path(".whl/reference/audioldm2"),
    Path(__file__).resolve().parents[1].parent / "shared/reference/audioldm2/audioldm2",  # ../shared beside the repo
)
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


def bench_arguments(doc: str) -> argparse.ArgumentParser:
    """A parser with the options every engine benchmark takes; each script adds its own."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument(
        "--model", default=None, help="tiny, full (reference configs, random weights) or a snapshot dir"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--reference", type=Path, default=None, help="dir of full-size configs (model_index.json)")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "birdgen-bench")
    parser.add_argument("--json", type=Path, default=None, help="write the full report here")
    return parser


def bench_device(args: argparse.Namespace) -> torch.device:
    """Apply --threads and pick the device (cuda when available)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def make_rows(count: int, duration: float, first_seed: int) -> list[PlanRow]:
    rows = []
    for seed in range(first_seed, first_seed + count):
        # distinct prompts in every case and warm-up: the engine's text cache only knows the negative
        bird, place = BIRDS[seed % len(BIRDS)], PLACES[(seed // len(BIRDS)) % len(PLACES)]
        prompt = f"A song of a {bird} {place}, take {seed}."
        rows.append(PlanRow(f"bench-{seed}", "bench", prompt, DEFAULT_NEGATIVE_PROMPT, seed, duration))
    return rows


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


def prepare_model(choice: str, cache_dir: Path, reference: Path | None) -> str:
    if choice != "full":
        return choice  # "tiny", a hub id or a local snapshot directory
    from birdgen_ray.models.random_model import build_from_reference_configs

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
