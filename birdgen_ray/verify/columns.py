"""The species columns the index and the sidecars carry, and the embeddings table, as Arrow."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa

from birdgen_ray.verify.birdnet import EMBEDDING_DIM, LICENCE
from birdgen_ray.verify.score import ClipScore

SPECIES_FIELDS = [
    pa.field("species_confidence", pa.float32()),  # target species, max over 3 s windows; NaN: unverifiable
    pa.field("species_top1", pa.string()),  # the BirdNET label heard most confidently
    pa.field("species_top1_confidence", pa.float32()),
    pa.field("verifier", pa.string()),  # model id and version, e.g. birdnet-2.4-fp32; "" when not verified
]
SPECIES_COLUMNS = tuple(f.name for f in SPECIES_FIELDS)
EMBEDDING_TYPE = pa.list_(pa.float32(), EMBEDDING_DIM)
EMBEDDINGS_SCHEMA = pa.schema(
    [pa.field("clip_id", pa.string()), pa.field("embedding", EMBEDDING_TYPE)],
    metadata={"verifier_licence": LICENCE},
)
SIDECAR_SCHEMA = pa.schema(
    [pa.field("clip_id", pa.string()), *SPECIES_FIELDS, pa.field("embedding", EMBEDDING_TYPE)],
    metadata={"verifier_licence": LICENCE},
)


def species_values(scores: Sequence[ClipScore | None], verifier: str) -> dict[str, list]:
    """Column name -> values; a None score (not verified) gives NaN / "" entries."""
    return {
        "species_confidence": [s.species_confidence if s else float("nan") for s in scores],
        "species_top1": [s.species_top1 if s else "" for s in scores],
        "species_top1_confidence": [s.species_top1_confidence if s else float("nan") for s in scores],
        "verifier": [verifier if s else "" for s in scores],
    }


def embedding_array(embeddings: Sequence[np.ndarray]) -> pa.FixedSizeListArray:
    flat = np.asarray(embeddings, dtype=np.float32).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), EMBEDDING_DIM)


def embeddings_table(clip_ids: Sequence[str], embeddings: Sequence[np.ndarray]) -> pa.Table:
    return pa.table({"clip_id": pa.array(clip_ids, pa.string()), "embedding": embedding_array(embeddings)}).cast(
        EMBEDDINGS_SCHEMA
    )


def sidecar_table(clip_ids: Sequence[str], scores: Sequence[ClipScore], verifier: str) -> pa.Table:
    values: Mapping[str, list] = species_values(scores, verifier)
    columns = {"clip_id": pa.array(clip_ids, pa.string())}
    columns.update({f.name: pa.array(values[f.name], f.type) for f in SPECIES_FIELDS})
    columns["embedding"] = embedding_array([s.embedding for s in scores])
    return pa.table(columns).cast(SIDECAR_SCHEMA)
