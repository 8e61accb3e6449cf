"""Typed run configuration: what a `submit` needs, in one object.

Everything that changes a clip's audio lives in `GenerationConfig`; its fingerprint is stored with
the output so a rerun with different settings is refused instead of silently mixing two datasets.
A field that is a `submit` option is declared with `option(...)` (fields.py): its flag, default and
help live here and nowhere else; `birdgen-ray submit` is built from these declarations.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field

from birdgen_ray.fields import option, parse_env_pairs, storage_options_field

TINY_MODEL = "tiny"  # the built-in tiny random AudioLDM2
TINY_MODEL_VERSION = "3"  # of the built-in tiny model (models/tiny.py): bumped when its bytes change
TINY_STABLE_AUDIO_MODEL = "tiny-stable-audio"  # the built-in tiny random Stable Audio Open
TINY_STABLE_AUDIO_MODEL_VERSION = "1"  # of models/tiny_stable_audio.py
BUILTIN_MODELS = (TINY_MODEL, TINY_STABLE_AUDIO_MODEL)  # built offline, small enough for CPU actors
DEFAULT_MODEL = "cvssp/audioldm2"
SCHEDULERS = ("ddim", "dpm", "unipc", "pndm")
GENERATORS = ("audioldm2", "null")  # what schedule/actor.py builds
VERIFIERS = ("birdnet",)  # species verifiers `submit --verify` knows (birdgen_ray/verify)
RANK_BY = ("clap", "species")  # what picks the kept take among candidates_per_clip
# BirdNET threads a verifying GPU actor runs beside its model: 5 s clips at 75 clips/s per GPU are
# 150 windows/s, and one core scores about 25 windows/s (BENCHMARKS.md).
GPU_VERIFIER_THREADS = 6


def species_threshold_fields(text: str, flag: str = "--min-species-confidence") -> dict:
    """'0.4' -> an absolute confidence; '0.5x' -> a share of each class's band ceiling (what that means:
    verify/thresholds.py). A ValueError names `flag`."""
    raw = text.strip().lower()
    relative = raw.endswith("x")
    try:
        value = float(raw[:-1] if relative else raw)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"{flag} must be a confidence in [0, 1] or a share of the class's ceiling like 0.5x, got {text!r}"
        )
    return {"min_species_confidence": value, "species_confidence_relative": relative}


@dataclass(frozen=True)
class QualityThresholds:
    """A clip passes the gate when every measured value is inside these bounds."""

    min_clap_score: float | None = option(
        None,
        "Quality gate: reject clips whose CLAP score (-1 to 1) is below this.",
        flags=("--min-clap",),
        min=-1,
        max=1,
        default_text="off",
    )
    max_silence_fraction: float = 0.95  # share of 20 ms frames quieter than silence_dbfs
    silence_dbfs: float = -60.0
    max_clipping_fraction: float = 0.01  # share of samples at |x| >= 0.999 before normalisation
    min_peak_dbfs: float = -80.0  # a clip quieter than this is treated as empty
    max_retries: int = option(2, "Regenerations (derived seeds) for a clip the quality gate rejects.", min=0)
    # the target species' BirdNET confidence (max over 3 s windows); None disables; needs a verifier
    min_species_confidence: float | None = option(
        None,
        "Quality gate (with --verify): reject takes whose species confidence is below X (0-1), or below a "
        "share of the class's band ceiling (0.5x; plan --references); after the retries such a clip is kept "
        "as fail:species.",
        cli_type=str,
        parse=species_threshold_fields,
        spreads=True,
        metavar="X",
        default_text="off",
    )
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

    model: str = option(
        DEFAULT_MODEL,
        "Hub id or local snapshot folder of AudioLDM2 or Stable Audio Open (the family is read from its "
        "model_index.json), or a built-in random model, offline: 'tiny' (AudioLDM2), 'tiny-stable-audio'.",
    )
    scheduler: str = option("dpm", "AudioLDM2's sampler (Stable Audio Open keeps its own).", choices=SCHEDULERS)
    num_inference_steps: int = option(25, "Denoising steps per clip.", flags=("--steps",), min=1)
    guidance_scale: float = option(3.5, "Classifier-free guidance scale (<= 1: off).", flags=("--guidance",), min=0)
    candidates_per_clip: int = option(
        1,
        "Takes per clip; the one closest to its own prompt (CLAP) is kept. Without --min-clap, one take "
        "skips CLAP scoring (clap_score null).",
        flags=("--candidates",),
        min=1,
    )
    output_sample_rate: int = option(
        32_000,
        "Output rate in Hz (BirdCLEF: 32000; AudioLDM2 makes 16000, Stable Audio Open 44100).",
        flags=("--sample-rate",),
        min=8_000,
    )
    peak_dbfs: float = option(-1.0, "Peak-normalise every clip to this level.", max=0)
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    verifier: str | None = option(
        None,
        "Score every take's species with BirdNET v2.4 on CPU threads beside the model (needs "
        "birdgen-ray[birdnet]; model licence CC BY-NC-SA 4.0).",
        flags=("--verify",),
        choices=VERIFIERS,
        default_text="off",
    )
    rank_by: str = option(
        "clap",
        "With --candidates > 1: keep the take closest to its prompt (clap) or the one BirdNET hears as its "
        "species most confidently (species).",
        choices=RANK_BY,
    )
    drop_species_failures: bool = option(
        False,
        "Store no audio for clips still fail:species after the retries (their index row, verdict and "
        "embedding stay; readers, export and the report skip them).",
    )
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
        given = [
            flag
            for flag, on in (
                ("--rank-by species", self.rank_by == "species"),
                ("--min-species-confidence", self.quality.min_species_confidence is not None),
                ("--drop-species-failures", self.drop_species_failures),
            )
            if on
        ]
        if self.verifier is None and given:
            raise ValueError(f"{' and '.join(given)} {'needs' if len(given) == 1 else 'need'} --verify birdnet")

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

    batch_size: int | None = option(
        None,
        "Clips per model call on one actor.",
        min=1,
        default_text="auto: from the GPU's free memory and the clip length (at most 128); 8 on CPU actors",
    )
    compile_unet: bool | None = option(
        None,
        "torch.compile the UNet once per actor.",
        flags=("--compile/--no-compile",),
        default_text="auto: on CUDA when each actor has enough clips to earn the ~100 s compile back",
    )
    device: str | None = None  # None: cuda when available, else cpu
    postprocess_threads: int = 2
    verifier_threads: int | None = option(
        None, "BirdNET threads per actor.", min=1, default_text="6 on a GPU actor, 1 on a CPU actor"
    )
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

    plan_path: str = option(
        help="Plan table (Parquet, local path or s3://...): label, prompt, seed, duration_s "
        "[, clip_id, negative_prompt].",
        argument=True,
        metavar="PLAN",
    )
    out: str = option(help="Output folder or object-storage URI (s3://bucket/prefix).", flags=("--out", "-o"))
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    species_map: str | None = option(
        None,
        "CSV label,birdnet_label: overrides or fills in scientific-name matches (for --verify).",
        metavar="FILE",
    )
    engine: EngineConfig = field(default_factory=EngineConfig)
    shard_size: int = option(256, "Clips per output shard (one tar + one index file).", min=1)
    num_actors: int | None = option(None, "Generator actors.", min=1, default_text="one per GPU, else one per 2 CPUs")
    # None (auto): 1 GPU each if the cluster has GPUs now, else CPU actors; > 0: always GPU actors
    # (pending ones make an autoscaler add GPU nodes); 0: CPU actors.
    gpus_per_actor: float | None = option(
        None,
        "GPUs per actor. A value > 0 always asks for GPU actors (as many as --num-actors says; an autoscaler "
        "adds GPU nodes while they wait); 0: CPU actors.",
        min=0,
        default_text="auto: 1 if the cluster has GPUs now, else CPU actors",
    )
    address: str | None = option(None, "Ray cluster to join ('auto', ray://...).", default_text="a local Ray")
    generator: str = option(
        "audioldm2",
        "audioldm2: the --model, of either family; null: no model, deterministic test audio (--model is ignored).",
        choices=GENERATORS,
    )
    storage_options: dict = storage_options_field()
    actor_env: dict = option(
        help="NAME=VALUE environment variable for the generator actors (repeatable).",
        factory=dict,
        cli_type=list[str],
        parse=parse_env_pairs,
        metavar="NAME=VALUE",
    )
    shard_timeout_s: float | None = option(
        None,
        "Seconds an actor may work without finishing a shard; it is then killed and its oldest shard retried.",
        flags=("--shard-timeout",),
        min=1,
        default_text="off",
    )
    max_shard_attempts: int = option(
        3, "Tries per shard (a dead actor's shard is retried elsewhere) before it is recorded as failed.", min=1
    )
    max_inflight_per_actor: int = 2
    break_lock: bool = option(
        False,
        "Take over the output's lease even while it is fresh (a dead run's expired lease is taken over "
        "without it). Check the other run is really gone first.",
    )
    lease_ttl_s: float = option(300.0, "Seconds without renewal after which the output's lease expires.", min=1)
    lease_renew_s: float = option(30.0, "How often the run renews its lease.", min=0.1)
    placement_timeout_s: float = option(
        1800.0,
        "End the run when no generator actor can be placed and started for this long (0: wait forever).",
        min=0,
    )
    allow_cpu: bool = option(False, "On a cluster without GPUs, generate on CPU actors instead of refusing to start.")
    allow_version_change: bool = option(
        False,
        "Resume OUT although it was made with other versions of torch, diffusers, transformers, tokenizers, "
        "numpy or soxr, or other model weights (the change is recorded in summary.json).",
    )
    progress: bool = option(True, "Show a live progress bar.", flags=("--progress/--no-progress",))
    progress_every_s: float = option(
        30.0, "Where stderr is no terminal (a job's log, CI): seconds between plain progress lines.", min=0.1
    )
    allow_extra_columns: bool = option(
        False,
        "Carry a plan's columns that a plan does not have into the index (a plan not written by "
        "'birdgen-ray plan'; without it such a column is refused as a possible damaged name).",
    )

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
