"""The content checksum of a plan written by `plan`: column names, types, values and the plan's own
metadata, as SHA-256 of the table's Arrow IPC stream, kept in the Parquet footer.

Page checksums guard the pages only; a flipped bit in the footer can rename a column, change a type
or drop the plan's metadata. This one is computed over what a reader gets, so any such change is an
error. A plan that says it was written by `plan` (its metadata) but carries no checksum is corrupt
too, unless it is of the first format, written before the checksum existed.
"""

from __future__ import annotations

import json

import pyarrow as pa

from birdgen_ray.io.storage import CHECKSUM_KEYS, content_sha256

PLAN_METADATA_KEY = b"birdgen_ray.plan"  # the plan's options and per-class allocations (plan/build.py)
CHECKSUM_KEY = CHECKSUM_KEYS[1]  # b"birdgen_ray.plan.sha256"
FIRST_CHECKSUMMED_FORMAT = 2


def content_checksum(table: pa.Table) -> str:
    """SHA-256 over names, types, values and metadata (but the checksums themselves), chunking aside."""
    return content_sha256(table)


def with_checksum(table: pa.Table) -> pa.Table:
    metadata = dict(table.schema.metadata or {})
    metadata[CHECKSUM_KEY] = content_checksum(table).encode()
    return table.replace_schema_metadata(metadata)


def checksum_problem(table: pa.Table) -> str | None:
    """Why a plan fails its checksum, or None (it matches, or the plan is another writer's)."""
    metadata = table.schema.metadata or {}
    stored = metadata.get(CHECKSUM_KEY)
    # (the IPC stream carries the names as bytes: a name that is no longer UTF-8 fails the comparison)
    if stored is not None:
        if stored.decode("latin-1") != content_checksum(table):
            return "its content checksum does not match (a changed value, column name, type or metadata)"
        return None
    if PLAN_METADATA_KEY not in metadata:
        return None  # another writer's plan: the strict schema applies
    try:
        written = json.loads(metadata[PLAN_METADATA_KEY])
        old = isinstance(written, dict) and written.get("format") == FIRST_CHECKSUMMED_FORMAT - 1
    except ValueError:
        old = False
    return None if old else "written by `birdgen-ray plan`, but its content checksum is missing"
