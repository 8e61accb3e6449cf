"""Output layout and the index schema (one row per clip).

    OUT/
      plan.parquet              the validated plan of the latest submit
      shards/<shard_id>.tar     WAV clips as tar members "<clip_id>.wav" (WebDataset-style)
      shards/<shard_id>.parquet that shard's index, written after its tar: a shard is committed
                                when both exist (a lone tar or index is a crash leftover, removed)
      failures/<shard_id>.json  a shard that kept failing, with its error (removed once it succeeds)
      index.parquet             all shard indexes, one row per clip_id (rebuilt after each run)
      summary.json              the last run's counts, throughput, stage times, versions, settings
      _birdgen/run.json         generation settings the output was started with (reruns must match)
      _birdgen/lock.json        the one-writer lock

A clip is readable from its index row alone: `shard` (path relative to OUT), `offset` and `size`
locate the WAV bytes inside the tar. Plan columns beyond the core ones (taxon class, common name,
...) follow the index columns unchanged.
"""
from __future__ import annotations

import pyarrow as pa

from birdgen_ray.plan.schema import PLAN_SCHEMA

PLAN_FILE = "plan.parquet"
SHARDS_DIR = "shards"
FAILURES_DIR = "failures"
INDEX_FILE = "index.parquet"
SUMMARY_FILE = "summary.json"
META_DIR = "_birdgen"
RUN_FILE = f"{META_DIR}/run.json"
LOCK_FILE = f"{META_DIR}/lock.json"


def shard_paths(shard_id: str) -> tuple[str, str]:
    """(tar, index) paths of a shard, relative to the output root; the tar's is the index's `shard`."""
    return f"{SHARDS_DIR}/{shard_id}.tar", f"{SHARDS_DIR}/{shard_id}.parquet"


INDEX_SCHEMA = pa.schema(
    [
        *PLAN_SCHEMA,  # clip_id, label, prompt, negative_prompt, seed, duration_s
        # where the audio is
        ("shard", pa.string()),
        ("member", pa.string()),
        ("offset", pa.int64()),
        ("size", pa.int64()),
        # what the audio is
        ("sample_rate", pa.int32()),
        ("num_samples", pa.int64()),
        ("source_sample_rate", pa.int32()),
        ("bandwidth_hz", pa.float32()),
        # how it was made
        ("model_id", pa.string()),
        ("settings", pa.string()),  # GenerationConfig as JSON
        ("settings_fingerprint", pa.string()),
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
    ]
)
METRIC_COLUMNS = ("clap_score", "peak_dbfs", "rms_dbfs", "silence_fraction", "clipping_fraction")
