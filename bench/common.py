"""What every engine benchmark shares: its command-line preamble and the device it runs on."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


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
