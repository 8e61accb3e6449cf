"""The index schema: one row per clip, the plan's columns first (layout: `birdgen_ray.io.layout`)."""

from __future__ import annotations

import pyarrow as pa

from birdgen_ray.plan.schema import PLAN_SCHEMA
from birdgen_ray.verify.columns import SPECIES_FIELDS

INDEX_SCHEMA = pa.schema(
    [
        *PLAN_SCHEMA,  # clip_id, label, prompt, negative_prompt, seed, duration_s
        # where the audio is
        ("shard", pa.string()),
        ("member", pa.string()),
        ("offset", pa.int64()),
        ("size", pa.int64()),
        ("sha256", pa.string()),  # of the clip's stored bytes (the WAV member), checked by every reader
        ("shard_bytes", pa.int64()),  # the whole tar's size: a truncated shard shows in a listing
        # what the audio is
        ("sample_rate", pa.int32()),
        ("num_samples", pa.int64()),
        ("source_sample_rate", pa.int32()),
        ("bandwidth_hz", pa.float32()),
        # how it was made
        ("model_id", pa.string()),
        ("settings", pa.string()),  # GenerationConfig as JSON
        ("settings_fingerprint", pa.string()),
        # JSON: the versions of what decided the audio where it was made (birdgen_ray/versions.py)
        ("versions", pa.string()),
        ("final_seed", pa.int64()),
        ("attempts", pa.int32()),
        ("verdict", pa.string()),
        # the quality gate's measurements of the kept take: raw model output, before resampling and
        # peak normalisation (the stored audio peaks at the run's peak_dbfs)
        ("clap_score", pa.float32()),
        ("peak_dbfs", pa.float32()),
        ("rms_dbfs", pa.float32()),
        ("silence_fraction", pa.float32()),
        ("clipping_fraction", pa.float32()),
        ("nonfinite", pa.bool_()),
        # the species verifier (submit --verify): species_confidence, species_top1(_confidence), verifier;
        # NaN / "" when the run did not verify (BirdNET v2.4 model: CC BY-NC-SA 4.0)
        *SPECIES_FIELDS,
    ]
)
# Reference-conditioned runs (plan --references) add, after the plan's other columns: the plan's
# reference, reference_root, reference_start_s and strength (null on text-only rows), then this
# sha256 of the reference file's bytes as the engine read it. Text-only runs have none of them.
REFERENCE_SHA256 = pa.field("reference_sha256", pa.string())
METRIC_COLUMNS = ("clap_score", "peak_dbfs", "rms_dbfs", "silence_fraction", "clipping_fraction")
