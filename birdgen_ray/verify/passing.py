"""The species-pass rule: what "passed its species" means for a clip, from BirdNET's columns.

A clip's species columns come from the index (a `submit --verify` run) or, for clips made without
it, from `verify OUT`'s sidecars (`shards/<id>.species.parquet`); the index's own value wins where
the run verified. A clip passes when its target species' confidence reaches the run's
`min_species_confidence` (absolute, or relative to its class's `reference_ceiling`), the rule the
gate's `verdict` applied. A clip of a class with no BirdNET label is unverifiable and never passes.
The report counts passes by this rule, the evaluation's "species-verified" variant keeps the clips it
passes (0.5 for a run that set none), and the export reads its species columns from here.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from birdgen_ray.io.layout import SHARDS_DIR, committed_shard_ids, species_path
from birdgen_ray.io.storage import Output, read_parquet
from birdgen_ray.verify.columns import SPECIES_COLUMNS
from birdgen_ray.verify.thresholds import SpeciesThreshold

DEFAULT_PASS = 0.5  # species_passed's threshold for a run that set none


def species_columns(output: Output, index: pa.Table) -> pa.Table | None:
    """clip_id, label, taxon_class + species columns, sidecar values filling in what the index lacks."""
    wanted = ("clip_id", "label", "taxon_class", "reference_ceiling", *SPECIES_COLUMNS)
    have = [c for c in wanted if c in index.column_names]
    table = index.select(have)
    sidecars = _sidecars(output)
    if sidecars is not None:
        table = table.join(sidecars, "clip_id", join_type="left outer", right_suffix="__sidecar")
        for name in SPECIES_COLUMNS:
            side = table[f"{name}__sidecar"]
            if name in table.column_names:  # the index's own value wins where the run verified
                own = table[name]
                verified = pc.and_(pc.is_valid(table["verifier"]), pc.not_equal(table["verifier"], ""))
                side = pc.if_else(pc.fill_null(verified, False), own, side)
                table = table.drop_columns([name])
            table = table.drop_columns([f"{name}__sidecar"]).append_column(name, side)
    if "verifier" not in table.column_names:
        return None
    verified = pc.fill_null(pc.not_equal(table["verifier"], ""), False)
    table = table.filter(verified)
    return table if table.num_rows else None


def _sidecars(output: Output) -> pa.Table | None:
    names = set(output.list(SHARDS_DIR))
    wanted = [species_path(s) for s in committed_shard_ids(output) if species_path(s).split("/", 1)[1] in names]
    blobs = output.read_many(wanted)
    tables = [read_parquet(data).select(["clip_id", *SPECIES_COLUMNS]) for data in blobs.values()]
    return pa.concat_tables(tables) if tables else None


def species_passed(output: Output, index: pa.Table) -> list[bool] | None:
    """Per index row: BirdNET heard the clip's own species at the pass threshold (None: nothing verified).

    An unverifiable clip (its class has no BirdNET label) never passes.
    """
    table = species_columns(output, index)
    if table is None:
        return None
    settings = json.loads(index["settings"][0].as_py() or "{}") if "settings" in index.column_names else {}
    rule = run_rule(settings) or SpeciesThreshold(DEFAULT_PASS)  # evaluate's "species-verified": 0.5 if none
    ceilings = table["reference_ceiling"].to_pylist() if "reference_ceiling" in table.column_names else None
    scored = zip(table["species_confidence"].to_pylist(), ceilings or [None] * table.num_rows)
    judged = dict(zip(table["clip_id"].to_pylist(), (rule.passes(c, ceiling) for c, ceiling in scored)))
    return [judged.get(clip_id, False) for clip_id in index["clip_id"].to_pylist()]


def run_rule(settings: dict) -> SpeciesThreshold | None:
    """The run's species rule, as its gate applied it (None: the run set no species threshold)."""
    quality = settings.get("quality") or {}
    if quality.get("min_species_confidence") is None:
        return None
    return SpeciesThreshold(float(quality["min_species_confidence"]), bool(quality.get("species_confidence_relative")))
