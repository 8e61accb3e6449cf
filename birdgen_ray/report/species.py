"""The report's species section: what BirdNET says about the clips, per class and per taxon.

Species columns come from the index (a `submit --verify` run) or, for clips made without it, from
`verify OUT`'s sidecars. A clip passes the species rule when its target species' confidence reaches
the run's `min_species_confidence`, the rule the gate's `verdict` applied; a run that set none has no
species rule, and the section says so instead of counting passes against a number the run never
used. A clip of a class with no BirdNET label is unverifiable and never counts as passed. Each class
shows its `reference_ceiling` (plan --references): what its real recordings score once band-limited
to the model's band.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from birdgen_ray.io.layout import SHARDS_DIR, committed_shard_ids, species_path
from birdgen_ray.io.storage import Output, read_parquet
from birdgen_ray.verify.birdnet import LICENCE
from birdgen_ray.verify.columns import SPECIES_COLUMNS
from birdgen_ray.verify.species import display_label
from birdgen_ray.verify.thresholds import SpeciesThreshold

DEFAULT_PASS = 0.5
CONFUSIONS_SHOWN = 20


@dataclass
class SpeciesGroup:
    name: str
    clips: int = 0
    verified: int = 0  # clips with a confidence (their class has a BirdNET label)
    passed: int = 0
    ceiling: float | None = None  # the class's reference_ceiling (plan --references), if any
    confidences: list[float] = field(default_factory=list)

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.clips if self.clips else None

    @property
    def median_confidence(self) -> float | None:
        ordered = sorted(self.confidences)
        return ordered[len(ordered) // 2] if ordered else None


@dataclass
class SpeciesReport:
    threshold: float | None  # the run's absolute --min-species-confidence; None: none, or relative
    threshold_source: str  # the run's rule in words, or "no species threshold was set"
    verifiers: list[str]
    clips: int
    passed: int
    unverifiable: int
    per_class: list[SpeciesGroup] = field(default_factory=list)
    per_taxon: list[SpeciesGroup] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)  # every verified clip's species confidence
    confusions: list[tuple[str, str, int]] = field(default_factory=list)  # (label, heard top-1, clips)
    licence: str = LICENCE


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


def _rule_text(rule: SpeciesThreshold | None) -> str:
    if rule is None:
        return "no species threshold was set"
    return (
        f"the run's --min-species-confidence {rule} of each class's ceiling"
        if rule.relative
        else ("the run's --min-species-confidence")
    )


def collect_species(output: Output, index: pa.Table, settings: dict) -> SpeciesReport | None:
    """None when no clip of the output was verified."""
    table = species_columns(output, index)
    if table is None:
        return None
    rule = run_rule(settings)
    rows = table.to_pydict()
    taxa = rows.get("taxon_class") or [""] * table.num_rows
    ceilings = rows.get("reference_ceiling") or [None] * table.num_rows
    per_class: dict[str, SpeciesGroup] = {}
    per_taxon: dict[str, SpeciesGroup] = {}
    confusions: Counter = Counter()
    confidences = []
    columns = zip(rows["label"], taxa, ceilings, rows["species_confidence"], rows["species_top1"])
    for label, taxon, ceiling, confidence, top1 in columns:
        ok = confidence is not None and not math.isnan(confidence)
        passed = rule is not None and rule.passes(confidence, ceiling)  # the gate's rule
        class_group = per_class.setdefault(label, SpeciesGroup(label, ceiling=ceiling))
        taxon_group = per_taxon.setdefault(taxon or "?", SpeciesGroup(taxon or "?"))
        for group in (class_group, taxon_group):
            group.clips += 1
            group.verified += int(ok)
            group.passed += int(passed)
            group.confidences += [float(confidence)] if ok else []
        if ok:
            confidences.append(float(confidence))
            if rule is not None and not passed:
                confusions[(label, top1)] += 1
    return SpeciesReport(
        threshold=None if rule is None or rule.relative else rule.value,
        threshold_source=_rule_text(rule),
        verifiers=sorted(set(rows["verifier"])),
        clips=table.num_rows,
        passed=sum(g.passed for g in per_class.values()),
        unverifiable=sum(g.clips - g.verified for g in per_class.values()),
        per_class=sorted(per_class.values(), key=lambda g: g.name),
        per_taxon=sorted(per_taxon.values(), key=lambda g: g.name),
        confidences=confidences,
        confusions=[(label, display_label(heard), n) for (label, heard), n in confusions.most_common(CONFUSIONS_SHOWN)],
    )
