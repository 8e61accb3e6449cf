"""What an evaluation needs, in one object."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

RATIOS = (0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class EvaluateConfig:
    real: str  # a BirdCLEF folder (train_metadata.csv or train.csv + train_audio/) or a label,path table
    synthetic: tuple[str, ...]  # our outputs (folders or URIs)
    out: Path  # EVAL/: the embedding cache, evaluation.json, index.html
    folds: int = 5  # at most; fewer when the real set has fewer groups
    seed: int = 0  # folds and bootstrap resamples; the first of `seeds` for the probe and sampling
    seeds: int = 3  # fits per fold and variant (synthetic picks, augmentation, probe), folded into the CIs
    ratios: tuple[float, ...] = RATIOS  # synthetic windows per class as a multiple of its real training windows
    bootstrap: int = 1000  # cluster-bootstrap resamples of the groups for the 95% intervals
    threshold: float = 0.5  # F1 is measured at this probability
    padding_rows: int = 5  # padded cmAP (BirdCLEF 2023)
    cnn: bool = True  # also train the log-mel CNN (a model independent of BirdNET) on the same folds
    match_bandwidth: bool = False  # also evaluate with real audio low-passed to the synthetic's bandwidth
    num_threads: int = 1  # BirdNET interpreter and probe (torch) threads
    batch_size: int = 4  # windows per BirdNET call: the fastest on one core, and little memory
    progress: bool = True
    storage_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.synthetic:
            raise ValueError("at least one --synthetic output is needed")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")
        if self.bootstrap < 0:
            raise ValueError(f"bootstrap must be >= 0, got {self.bootstrap}")
        if any(r <= 0 for r in self.ratios):
            raise ValueError(f"ratios must be > 0, got {self.ratios}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be within (0, 1), got {self.threshold}")
