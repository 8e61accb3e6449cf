"""The report's species section: what BirdNET says about the clips, per class and per taxon.

The species columns and the pass rule are verify's (`verify/passing.py`): the index's columns, or
`verify OUT`'s sidecars for clips made without `--verify`; a clip passes when its target species'
confidence reaches the run's `min_species_confidence`, the rule the gate's `verdict` applied. A run
that set none has no species rule, and the section says so instead of counting passes against a
number the run never used. A clip of a class with no BirdNET label is unverifiable and never counts
as passed. Each class
shows its `reference_ceiling` (plan --references): what its real recordings score once band-limited
to the model's band.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from birdgen_ray.io.storage import Output
from birdgen_ray.verify.birdnet import LICENCE
from birdgen_ray.verify.passing import run_rule, species_columns
from birdgen_ray.verify.species import display_label
from birdgen_ray.verify.thresholds import SpeciesThreshold

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
