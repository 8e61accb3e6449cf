"""Typed run configuration: what a `submit` needs, in one object.

Everything that changes a clip's audio lives in `GenerationConfig`; its fingerprint is stored with
the output so a rerun with different settings is refused instead of silently mixing two datasets.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field

TINY_MODEL = "tiny"  # the built-in tiny random AudioLDM2
TINY_MODEL_VERSION = "3"  # of the built-in tiny model (generate/tiny.py): bumped when its bytes change
TINY_STABLE_AUDIO_MODEL = "tiny-stable-audio"  # the built-in tiny random Stable Audio Open
TINY_STABLE_AUDIO_MODEL_VERSION = "1"  # of generate/tiny_stable_audio.py
BUILTIN_MODELS = (TINY_MODEL, TINY_STABLE_AUDIO_MODEL)  # built offline, small enough for CPU actors
DEFAULT_MODEL = "cvssp/audioldm2"
SCHEDULERS = ("ddim", "dpm", "unipc", "pndm")
VERIFIERS = ("birdnet",)  # species verifiers `submit --verify` knows (birdgen_ray/verify)
RANK_BY = ("clap", "species")  # what picks the kept take among candidates_per_clip
# BirdNET threads a verifying GPU actor runs beside its model: 5 s clips at 75 clips/s per GPU are
# 150 windows/s, and one core scores about 25 windows/s (BENCHMARKS.md).
GPU_VERIFIER_THREADS = 6


@dataclass(frozen=True)
class QualityThresholds:
    """A clip passes the gate when every measured value is inside these bounds."""

    min_clap_score: float | None = None  # cosine similarity to its own prompt; None disables
    max_silence_fraction: float = 0.95  # share of 20 ms frames quieter than silence_dbfs
    silence_dbfs: float = -60.0
    max_clipping_fraction: float = 0.01  # share of samples at |x| >= 0.999 before normalisation
    min_peak_dbfs: float = -80.0  # a clip quieter than this is treated as empty
    max_retries: int = 2  # regenerations with a derived seed after a rejected clip
    # the target species' BirdNET confidence (max over 3 s windows); None disables; needs a verifier
    min_species_confidence: float | None = None
    # True: min_species_confidence is a share of each class's reference_ceiling (`0.5x`), not a confidence
    species_confidence_relative: bool = False

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.min_species_confidence is not None and not 0.0 <= self.min_species_confidence <= 1.0:
            raise ValueError(f"min_species_confidence must be within [0, 1], got {self.min_species_confidence}")
        for name in ("max_silence_fraction", "max_clipping_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class GenerationConfig:
    """Settings that decide a clip's audio. Per run, recorded in every index row."""

    model: str = DEFAULT_MODEL  # hub id, local snapshot dir, or a built-in: "tiny", "tiny-stable-audio"
    scheduler: str = "dpm"
    num_inference_steps: int = 25
    guidance_scale: float = 3.5
    candidates_per_clip: int = 1
    output_sample_rate: int = 32_000
    peak_dbfs: float = -1.0
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    verifier: str | None = None  # "birdnet": score every take's species (CPU threads beside the model)
    rank_by: str = "clap"  # with candidates_per_clip > 1: keep the take closest to its prompt, or its species
    # a clip kept as fail:species after the retries is stored without its audio (index row and embedding stay)
    drop_species_failures: bool = False
    # label -> BirdNET label, resolved per run from the plan's scientific names and --species-map. Not in
    # the settings JSON or fingerprint: a plan that adds classes adds labels, and must still resume.
    species_labels: dict = field(default_factory=dict, compare=False)
    # label -> the plan's reference_ceiling, resolved per run for a relative species threshold; as above
    species_ceilings: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        if self.num_inference_steps < 1:
            raise ValueError("num_inference_steps must be >= 1")
        if self.candidates_per_clip < 1:
            raise ValueError("candidates_per_clip must be >= 1")
        if self.output_sample_rate < 8_000:
            raise ValueError("output_sample_rate must be >= 8000 Hz")
        if self.peak_dbfs > 0:
            raise ValueError("peak_dbfs must be <= 0")
        if not self.guidance_scale >= 0:  # also refuses nan
            raise ValueError(f"guidance_scale must be >= 0, got {self.guidance_scale}")
        if self.verifier is not None and self.verifier not in VERIFIERS:
            raise ValueError(f"verifier must be one of {VERIFIERS}, got {self.verifier!r}")
        if self.rank_by not in RANK_BY:
            raise ValueError(f"rank_by must be one of {RANK_BY}, got {self.rank_by!r}")
        species_options = self.rank_by == "species" or self.drop_species_failures
        if self.verifier is None and (species_options or self.quality.min_species_confidence is not None):
            raise ValueError(
                "--rank-by species, --min-species-confidence and --drop-species-failures need --verify birdnet"
            )

    def to_json(self) -> str:
        """The settings as JSON. Options added later are left out while they are off, so an output
        made before they existed keeps its fingerprint and can be resumed."""
        data = asdict(self)
        data.pop("species_labels")
        data.pop("species_ceilings")
        for name, off in _ADDED_OFF.items():
            if data.get(name) == off:
                data.pop(name)
        if data["quality"].get("min_species_confidence") is None:
            data["quality"].pop("min_species_confidence")
        if not data["quality"].get("species_confidence_relative"):
            data["quality"].pop("species_confidence_relative")
        return json.dumps(data, sort_keys=True)

    def fingerprint(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def from_json(cls, text: str) -> "GenerationConfig":
        data = json.loads(text)
        data["quality"] = QualityThresholds(**data.get("quality", {}))
        return cls(**data)


_ADDED_OFF = {"verifier": None, "rank_by": "clap", "drop_species_failures": False}  # fields added with the verifier


@dataclass(frozen=True)
class EngineConfig:
    """How one actor runs the model: speed knobs that never change a clip's audio."""

    batch_size: int | None = None  # None (auto): from free GPU memory and clip length; 8 on the CPU
    compile_unet: bool | None = None  # None (auto): on CUDA when each actor has clips enough to pay it back
    device: str | None = None  # None: cuda when available, else cpu
    postprocess_threads: int = 2
    verifier_threads: int | None = None  # BirdNET threads when verifying; None: 6 on a GPU actor, 1 on a CPU one
    verifier_batch_size: int = 4  # 3 s windows per BirdNET call (the fastest per window on one core)

    # What the auto choices read, filled in by the runner: the run's longest clip, clips per actor.
    clip_duration_s: float | None = None
    clips_per_actor: int | None = None

    def verifier_threads_for(self, gpu: bool) -> int:
        return self.verifier_threads or (GPU_VERIFIER_THREADS if gpu else 1)

    def __post_init__(self) -> None:
        if self.verifier_threads is not None and self.verifier_threads < 1:
            raise ValueError(f"verifier_threads must be >= 1, got {self.verifier_threads}")
        if self.verifier_batch_size < 1:
            raise ValueError(f"verifier_batch_size must be >= 1, got {self.verifier_batch_size}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.postprocess_threads < 1:
            raise ValueError(f"postprocess_threads must be >= 1, got {self.postprocess_threads}")


@dataclass(frozen=True)
class RunConfig:
    """One `submit`: the plan, where output goes, and how work is spread."""

    plan_path: str
    out: str
    storage_options: dict = field(default_factory=dict)  # fsspec options, e.g. {"endpoint_url": ...}
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    generator: str = "audioldm2"  # or "null": deterministic audio, no model (tests, benchmarks)
    address: str | None = None  # Ray address; None starts a local Ray
    num_actors: int | None = None  # None: one per GPU, else one per 2 CPUs (at least 1)
    # None (auto): 1 GPU each if the cluster has GPUs now, else CPU actors; > 0: always GPU actors
    # (pending ones make an autoscaler add GPU nodes); 0: CPU actors.
    gpus_per_actor: float | None = None
    shard_size: int = 256  # clips per shard
    max_inflight_per_actor: int = 2
    max_shard_attempts: int = 3
    shard_timeout_s: float | None = None  # a shard still running after this (from dispatch) kills its actor
    actor_env: dict = field(default_factory=dict)  # environment variables for the generator actors
    break_lock: bool = False  # take over even a fresh lease (a stale one is taken over anyway)
    lease_ttl_s: float = 300.0  # the output's lease expires this long after its last renewal
    lease_renew_s: float = 30.0  # the driver renews it this often
    placement_timeout_s: float = 1800.0  # no actor placed and started for this long ends the run; 0: wait forever
    allow_cpu: bool = False  # on a cluster without GPUs, generate on CPU actors instead of refusing
    # resume an output made under other versions of torch, diffusers, ... or other weights (birdgen_ray/versions.py)
    allow_version_change: bool = False
    progress: bool = True
    species_map: str | None = None  # CSV label,birdnet_label for the verifier (overrides scientific names)
    allow_extra_columns: bool = False  # a plan from another writer may carry columns a plan does not have

    def __post_init__(self) -> None:
        if self.gpus_per_actor is not None and not self.gpus_per_actor >= 0:
            raise ValueError(f"gpus_per_actor must be >= 0 (or None: auto), got {self.gpus_per_actor}")
        if self.num_actors is not None and self.num_actors < 1:
            raise ValueError(f"num_actors must be >= 1 (or None: auto), got {self.num_actors}")
        for name in ("shard_size", "max_inflight_per_actor", "max_shard_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.lease_renew_s < self.lease_ttl_s:
            raise ValueError(
                f"lease_renew_s ({self.lease_renew_s:g}) must be > 0 and below lease_ttl_s ({self.lease_ttl_s:g})"
            )
        if not self.placement_timeout_s >= 0:
            raise ValueError(f"placement_timeout_s must be >= 0 (0: wait forever), got {self.placement_timeout_s}")
        if self.generation.verifier is not None and self.generator != "audioldm2":
            raise ValueError("--verify needs the audioldm2 generator (the null generator makes no bird sound)")
        if self.shard_timeout_s is not None and not self.shard_timeout_s > 0:
            raise ValueError(f"shard_timeout_s must be > 0 (or None: no timeout), got {self.shard_timeout_s}")


def parse_range(text: str, option: str, low: float = -math.inf, high: float = math.inf) -> tuple[float, float]:
    """'0.5' -> (0.5, 0.5); '0.3:0.7' -> (0.3, 0.7), with low <= lo <= hi <= high; ValueError names the option."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not all(math.isfinite(p) and low <= p <= high for p in parts) or parts[0] > parts[1]:
        bounds = f"{low:g} <= lo <= hi <= {high:g}" if math.isfinite(low) and math.isfinite(high) else "lo <= hi"
        raise ValueError(f"{option} must be a number or a range lo:hi with {bounds}, got {text!r}")
    return parts[0], parts[1]
