"""What an evaluation needs, in one object; its fields are `birdgen-ray evaluate`'s options (fields.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from birdgen_ray.fields import as_tuple, local_path, option, storage_options_field

RATIOS = (0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class EvaluateConfig:
    real: str = option(
        help="BirdCLEF folder (train_metadata.csv or train.csv + train_audio/), or a CSV/Parquet table with "
        "label and path columns (optional group).",
        flags=("--real",),
        parse=lambda text, flag: str(local_path(text, flag)),  # kept as text: a folder or a table's path
        metavar="FOLDER|FILE",
    )
    synthetic: tuple[str, ...] = option(
        help="One of our outputs (repeat for more).",
        flags=("--synthetic",),
        cli_type=list[str],
        parse=as_tuple,
        metavar="OUT",
    )
    out: Path = option(
        help="Folder for the cache, evaluation.json, index.html.",
        flags=("--out",),
        cli_type=str,
        parse=local_path,
        metavar="FOLDER",
    )
    folds: int = option(5, "Cross-validation folds (at most; fewer when the real set is small).", min=2)
    # folds and bootstrap resamples; the first of `seeds` for the probe and sampling
    seed: int = option(0, "Folds, bootstrap, and the first probe and sampling seed.")
    # fits per fold and variant (synthetic picks, augmentation, probe), folded into the CIs
    seeds: int = option(3, "Probe and sampling seeds per fold, folded into the intervals.", min=1)
    ratios: tuple[float, ...] = option(
        RATIOS,
        "Dose-response: synthetic windows per class as a multiple of real training windows (repeat for more).",
        flags=("--ratio",),
        cli_type=list[float],
        parse=as_tuple,
        default_text=" ".join(f"{r:g}" for r in RATIOS),
    )
    # cluster-bootstrap resamples of the groups
    bootstrap: int = option(1000, "Bootstrap resamples for the 95% intervals.", min=0)
    threshold: float = 0.5  # F1 is measured at this probability
    padding_rows: int = 5  # padded cmAP (BirdCLEF 2023)
    cnn: bool = option(
        True,
        "Also train a small log-mel CNN from scratch on the same folds (a model independent of BirdNET).",
        flags=("--cnn/--no-cnn",),
    )
    match_bandwidth: bool = option(
        False,
        "Also evaluate with real audio low-passed to the synthetic's bandwidth_hz (reports both).",
        flags=("--match-bandwidth/--no-match-bandwidth",),
    )
    num_threads: int = option(1, "BirdNET interpreter and probe threads.", flags=("--threads",), min=1)
    batch_size: int = 4  # windows per BirdNET call: the fastest on one core, and little memory
    progress: bool = option(True, "Progress bars while embedding.", flags=("--progress/--no-progress",))
    storage_options: dict = storage_options_field()

    def __post_init__(self) -> None:
        if not self.synthetic:
            raise ValueError("at least one --synthetic output is needed")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")
        if self.bootstrap < 0:
            raise ValueError(f"bootstrap must be >= 0, got {self.bootstrap}")
        if not all(r > 0 and math.isfinite(r) for r in self.ratios):
            raise ValueError(f"--ratio must be > 0 and finite, got {', '.join(map(str, self.ratios))}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be within (0, 1), got {self.threshold}")
