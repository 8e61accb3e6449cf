"""Small plan tables for tests, written as real Parquet files."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from birdgen_ray.plan.build import PLAN_METADATA_KEY

PROMPTS = [
    "a bird song",
    "a small songbird singing a long melodic trill at dawn in a dense tropical rainforest with insects",
    "frog croaking near a pond at night",
    "a woodpecker drumming",
]


def plan_table(n: int, labels=("asbfly", "comkin1", "grnwar1"), durations=(1.0, 1.5), start_seed: int = 0) -> pa.Table:
    return pa.table(
        {
            "label": [labels[i % len(labels)] for i in range(n)],
            "prompt": [f"{PROMPTS[i % len(PROMPTS)]}, take {i}" for i in range(n)],
            "seed": pa.array([start_seed + i for i in range(n)], pa.int64()),
            "duration_s": [durations[i % len(durations)] for i in range(n)],
            "taxon_class": ["Aves"] * n,
        }
    )


def write_plan(path: Path, table: pa.Table) -> str:
    pq.write_table(table, path)
    return str(path)


def read_plan_metadata(path: str | Path) -> dict:
    """The per-class allocations and options recorded in a plan written by write_plan."""
    schema = pq.read_schema(path)
    return json.loads((schema.metadata or {})[PLAN_METADATA_KEY])
