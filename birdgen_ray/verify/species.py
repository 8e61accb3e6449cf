"""Which BirdNET label a class is: its scientific name matched exactly, or a mapping file's entry.

A BirdNET label reads "Scientific name_Common name". A class maps when its scientific name equals a
label's scientific part exactly; a mapping file (CSV `label,birdnet_label`) overrides that match or
fills it in, and its `birdnet_label` may be the whole label or only the scientific name. A class
left without a label is unverifiable: it never counts as passed, and plan and submit name it.
BirdNET knows some frogs, insects and mammals too: a non-bird class that maps is verified the same way.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

UNVERIFIABLE = "unverifiable"  # the verdict of a clip whose class has no BirdNET label


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the file and row."""


def scientific_part(birdnet_label: str) -> str:
    return birdnet_label.split("_", 1)[0]


@dataclass(frozen=True)
class SpeciesMap:
    """label -> index into BirdNET's labels, and the classes that have none."""

    index: dict[str, int] = field(default_factory=dict)
    unverifiable: tuple[str, ...] = ()

    def target(self, label: str) -> int | None:
        return self.index.get(label)


def read_mapping(path: str | Path) -> dict[str, str]:
    """A `label,birdnet_label` CSV (header required) -> {label: birdnet_label}."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {"label", "birdnet_label"} <= set(reader.fieldnames):
                raise MappingError(f"{path}: needs the columns label,birdnet_label, got {reader.fieldnames}")
            mapping: dict[str, str] = {}
            for line, row in enumerate(reader, start=2):
                label, target = (row.get("label") or "").strip(), (row.get("birdnet_label") or "").strip()
                if not label or not target:
                    raise MappingError(f"{path} row {line}: label and birdnet_label must both be set")
                if label in mapping:
                    raise MappingError(f"{path} row {line}: label {label!r} is mapped twice")
                mapping[label] = target
    except FileNotFoundError:
        raise MappingError(f"{path}: file not found") from None
    return mapping


def resolve_species(
    scientific_names: Mapping[str, str | None],
    birdnet_labels: Sequence[str],
    mapping: Mapping[str, str] | None = None,
    mapping_name: str = "the mapping",
) -> SpeciesMap:
    """{class label: scientific name or None} -> SpeciesMap.

    A mapping entry that matches no BirdNET label is an error naming it (a typo must not silently
    leave its class unverifiable); entries for classes that are not in the plan are ignored.
    """
    full = {name: i for i, name in enumerate(birdnet_labels)}
    by_scientific: dict[str, int] = {}
    for i, name in enumerate(birdnet_labels):
        by_scientific.setdefault(scientific_part(name), i)
    index: dict[str, int] = {}
    for label, scientific in scientific_names.items():
        if scientific and scientific.strip() in by_scientific:
            index[label] = by_scientific[scientific.strip()]
    for label, target in (mapping or {}).items():
        found = full.get(target, by_scientific.get(target))
        if found is None:
            raise MappingError(f"{mapping_name}: {label!r} -> {target!r} is not a BirdNET v2.4 label")
        if label in scientific_names:
            index[label] = found
    unverifiable = tuple(sorted(label for label in scientific_names if label not in index))
    return SpeciesMap(index=index, unverifiable=unverifiable)


def display_label(label: str | None) -> str | None:
    """A BirdNET label as people read it: "Poecile atricapillus_Black-capped Chickadee" ->
    "Black-capped Chickadee (Poecile atricapillus)"; "Engine_Engine" (no species) -> "Engine"."""
    if not label or "_" not in label:
        return label
    scientific, common = label.split("_", 1)
    return common if common == scientific else f"{common} ({scientific})"


def describe_unverifiable(species: SpeciesMap, limit: int = 10) -> str | None:
    """One line naming the classes BirdNET cannot check, or None when every class maps."""
    if not species.unverifiable:
        return None
    names = ", ".join(species.unverifiable[:limit])
    more = f" and {len(species.unverifiable) - limit} more" if len(species.unverifiable) > limit else ""
    count = len(species.unverifiable)
    verb = "class has no BirdNET label and is" if count == 1 else "classes have no BirdNET label and are"
    return (
        f"{count} {verb} unverifiable: {names}{more} "
        "(map them in a label,birdnet_label CSV given to submit --verify birdnet or to verify as --species-map)"
    )


def plan_species(plan, birdnet_labels: Sequence[str], mapping_path: str | None = None) -> SpeciesMap:
    """The SpeciesMap of a plan table (its `label` and, when present, `scientific_name` columns)."""
    labels = plan["label"].to_pylist()
    names = plan["scientific_name"].to_pylist() if "scientific_name" in plan.column_names else [None] * len(labels)
    classes = dict(zip(labels, names))
    mapping = read_mapping(mapping_path) if mapping_path else {}
    return resolve_species(classes, birdnet_labels, mapping, str(mapping_path))
