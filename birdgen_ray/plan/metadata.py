"""Read a real training set into one `ClassStats` per class.

Three input layouts, told apart by their columns:

  recordings  one row per recording, the class in `primary_label`: BirdCLEF 2021-2024
              `train_metadata.csv`, or BirdCLEF 2025+ `train.csv` (which needs `--taxonomy
              taxonomy.csv` for `class_name`). A class's real count is its number of rows;
              `type` (a Python-list string such as "['call', 'flight call']") gives its call types.
  counts      a CSV or Parquet with `label` + `count` (+ optional `common_name`,
              `scientific_name`, `taxon_class`), one row per class.

Files are read by tables.py. Every problem names the file, the column and the lines (CSV, 1-based,
header is line 1) or rows (Parquet, 0-based), and all problems of a file are reported at once.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from birdgen_ray.birdclef import COLLECTION_COLUMN, LABEL_COLUMN
from birdgen_ray.plan.schema import UNSAFE_LABEL, UNSAFE_LABEL_PROBLEM
from birdgen_ray.plan.tables import InputError, RawTable, read_table

DEFAULT_TAXON_CLASS = "Aves"  # BirdCLEF 2021-2024 and label+count files without a class column
_SPACES = re.compile(r"\s+")
_LABEL_ALIASES = ("label", LABEL_COLUMN)
_COUNT_ALIASES = ("count", "real_count", "n_recordings")
_CLASS_ALIASES = ("taxon_class", "class_name")


@dataclass
class ClassStats:
    """What the real data says about one class."""

    label: str
    real_count: int
    common_name: str = ""
    scientific_name: str = ""
    taxon_class: str = DEFAULT_TAXON_CLASS
    order: str = ""  # eBird ORDER1 ("Procellariiformes"), from an eBird taxonomy or an `order` column
    family: str = ""  # eBird FAMILY ("Procellariidae (Shearwaters and Petrels)")
    region: str = ""  # where the class lives ("Hawaii"), from a `region` column when the input has one
    call_types: Counter = field(default_factory=Counter)  # normalised `type` value -> recordings
    source: str = ""  # the file the class was first seen in, and where in it ("column 'x' line N"),
    where: str = ""  # for error messages


def parse_list(text: str) -> list[str]:
    """ "['call', 'flight call']" -> ['call', 'flight call']; also 'call, song', 'call', '' and '[]'."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            value = ast.literal_eval(text)
            if isinstance(value, (list, tuple)):
                return [str(v) for v in value if str(v).strip()]
        except (ValueError, SyntaxError):
            text = text.strip("[]")
    return [part.strip(" '\"") for part in text.split(",") if part.strip(" '\"")]


def normalise_call_type(value: str) -> str:
    return _SPACES.sub(" ", value.strip().lower())


def read_classes(path: str | Path, taxonomy: str | Path | None = None) -> list[ClassStats]:
    """Per-class stats from any supported layout, sorted by label; `taxonomy` adds names and classes."""
    table = read_table(path)
    if table.column(*_COUNT_ALIASES) is not None:
        classes = _classes_from_counts(table)
        label_column = table.columns[table.column(*_LABEL_ALIASES) or 0]
    elif table.column(LABEL_COLUMN) is not None:
        if COLLECTION_COLUMN in table.columns and taxonomy is None:
            raise InputError(
                path,
                [
                    f"this is a BirdCLEF 2025+ train.csv (it has a {COLLECTION_COLUMN!r} column) and needs its "
                    "taxonomy for each class's class_name: pass --taxonomy taxonomy.csv"
                ],
            )
        classes = _classes_from_recordings(table)
        label_column = LABEL_COLUMN
    else:
        raise InputError(
            path,
            [
                f"missing required column {LABEL_COLUMN!r} (one row per recording) or columns 'label' + "
                f"'count' (one row per class); found columns {table.names}"
            ],
        )
    if taxonomy is not None:
        classes = _apply_taxonomy(classes, table, label_column, read_table(taxonomy))
    return sorted(classes, key=lambda c: c.label)


def _classes_from_recordings(table: RawTable) -> list[ClassStats]:
    label_col = table.column(LABEL_COLUMN)
    type_col = table.column("type")
    common_col = table.column("common_name")
    sci_col = table.column("scientific_name")
    region_col = table.column("region")
    classes: dict[str, ClassStats] = {}
    empty: list[int] = []
    unsafe: list[int] = []
    for row, pos in zip(table.rows, table.positions):
        label = row[label_col]
        if not label or UNSAFE_LABEL.search(label):
            (unsafe if label else empty).append(pos)
            continue
        stats = classes.get(label)
        if stats is None:
            stats = classes[label] = ClassStats(label, 0, source=table.path, where=table.where(LABEL_COLUMN, [pos]))
        stats.real_count += 1
        if common_col is not None and not stats.common_name:
            stats.common_name = row[common_col]
        if sci_col is not None and not stats.scientific_name:
            stats.scientific_name = row[sci_col]
        if region_col is not None and not stats.region:
            stats.region = row[region_col]
        if type_col is not None:
            for value in parse_list(row[type_col]):
                stats.call_types[normalise_call_type(value)] += 1
    problems = _label_problems(table, LABEL_COLUMN, empty, unsafe)
    if problems:
        raise InputError(table.path, problems)
    if not classes:
        raise InputError(table.path, ["no data rows"])
    return list(classes.values())


def _classes_from_counts(table: RawTable) -> list[ClassStats]:
    label_col = table.column(*_LABEL_ALIASES)
    count_col = table.column(*_COUNT_ALIASES)
    count_name = table.columns[count_col]
    if label_col is None:
        raise InputError(table.path, [f"missing required column 'label' (found columns {table.names})"])
    label_name = table.columns[label_col]
    common_col, sci_col = table.column("common_name"), table.column("scientific_name")
    class_col = table.column(*_CLASS_ALIASES)
    order_col, family_col = table.column("order", "order1"), table.column("family")
    region_col = table.column("region")
    empty, unsafe, bad_count, seen, dup = [], [], [], {}, []
    classes = []
    for row, pos in zip(table.rows, table.positions):
        label = row[label_col]
        count = _parse_count(row[count_col])
        usable = bool(label) and not UNSAFE_LABEL.search(label)
        if not label:
            empty.append(pos)
        elif not usable:
            unsafe.append(pos)
        if count is None:
            bad_count.append(pos)
        if label in seen:
            dup.append((pos, seen[label]))
        if not usable or count is None or label in seen:
            continue
        seen[label] = pos
        classes.append(
            ClassStats(
                label,
                count,
                common_name=row[common_col] if common_col is not None else "",
                scientific_name=row[sci_col] if sci_col is not None else "",
                taxon_class=(row[class_col] if class_col is not None else "") or DEFAULT_TAXON_CLASS,
                order=row[order_col] if order_col is not None else "",
                family=row[family_col] if family_col is not None else "",
                region=row[region_col] if region_col is not None else "",
                source=table.path,
                where=table.where(count_name, [pos]),
            )
        )
    problems = _label_problems(table, label_name, empty, unsafe)
    if bad_count:
        problems.append(f"{table.where(count_name, bad_count)}: count is not a whole number >= 0")
    if dup:
        problems.append(
            f"{table.where(label_name, [p for p, _ in dup])}: label listed twice ({_first_at(table.unit, dup)})"
        )
    if not classes and not problems:
        problems.append("no data rows")
    if problems:
        raise InputError(table.path, problems)
    return classes


def _parse_count(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if value != value or value < 0 or value != int(value):
        return None
    return int(value)


def _apply_taxonomy(classes: list[ClassStats], source: RawTable, src_col: str, taxonomy: RawTable) -> list[ClassStats]:
    """Take names, class_name, order and family from the taxonomy.

    A BirdCLEF 2025+ taxonomy.csv lists exactly the competition's classes: its labels with no rows
    become zero-count classes. The eBird taxonomy (SPECIES_CODE, PRIMARY_COM_NAME, SCI_NAME, ORDER1,
    FAMILY; all birds, so class_name is Aves) lists every species: only the input's labels are used.
    """
    ebird = taxonomy.column("species_code") is not None
    label_col = taxonomy.column("primary_label", "label", "species_code")
    class_col = taxonomy.column(*_CLASS_ALIASES)
    required = [("primary_label", label_col)] + ([] if ebird else [("class_name", class_col)])
    missing = [name for name, col in required if col is None]
    if missing:
        raise InputError(
            taxonomy.path,
            [
                f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
                f"(or eBird's SPECIES_CODE; found columns {taxonomy.names})"
            ],
        )
    common_col = taxonomy.column("common_name", "primary_com_name")
    sci_col = taxonomy.column("scientific_name", "sci_name")
    order_col, family_col = taxonomy.column("order", "order1"), taxonomy.column("family")
    entries: dict[str, tuple[list[str], int]] = {}
    empty, dup = [], []
    for row, pos in zip(taxonomy.rows, taxonomy.positions):
        label = row[label_col]
        if not label:
            empty.append(pos)
        elif label in entries:
            dup.append((pos, entries[label][1]))
        else:
            entries[label] = (row, pos)
    label_name = taxonomy.columns[label_col]
    problems = _label_problems(taxonomy, label_name, empty)
    if dup:
        problems.append(
            f"{taxonomy.where(label_name, [p for p, _ in dup])}: label listed twice ({_first_at(taxonomy.unit, dup)})"
        )
    if problems:
        raise InputError(taxonomy.path, problems)

    absent = [c for c in classes if c.label not in entries]
    if absent:
        lines = sorted({p for c in absent for p in _positions_of(source, src_col, c.label)})
        labels = ", ".join(repr(c.label) for c in absent[:10]) + (" ..." if len(absent) > 10 else "")
        raise InputError(
            source.path,
            [
                f"{source.where(src_col, lines)}: label{'s' if len(absent) > 1 else ''} {labels} "
                f"not in the taxonomy {taxonomy.path}"
            ],
        )
    by_label = {c.label: c for c in classes}
    for label, (row, pos) in entries.items():
        stats = by_label.get(label)
        if stats is None and ebird:
            continue
        if stats is None:  # in the taxonomy, no recordings: planning refuses it unless excluded
            stats = by_label[label] = ClassStats(
                label, 0, source=taxonomy.path, where=taxonomy.where(label_name, [pos])
            )
        stats.taxon_class = (row[class_col] if class_col is not None else "") or (
            DEFAULT_TAXON_CLASS if ebird else stats.taxon_class
        )
        if order_col is not None and row[order_col]:
            stats.order = row[order_col]
        if family_col is not None and row[family_col]:
            stats.family = row[family_col]
        if common_col is not None and row[common_col]:
            stats.common_name = row[common_col]
        if sci_col is not None and row[sci_col]:
            stats.scientific_name = row[sci_col]
    return list(by_label.values())


def _positions_of(table: RawTable, column: str, label: str) -> list[int]:
    col = table.columns.index(column)
    return [pos for row, pos in zip(table.rows, table.positions) if row[col] == label]


def _first_at(unit: str, duplicates: list[tuple[int, int]], limit: int = 5) -> str:
    """'first at line 2' or 'line 6 repeats line 2, line 9 repeats line 3' for (position, first position) pairs."""
    if len({first for _, first in duplicates}) == 1:
        return f"first at {unit} {duplicates[0][1]}"
    shown = ", ".join(f"{unit} {pos} repeats {unit} {first}" for pos, first in duplicates[:limit])
    return shown + (" ..." if len(duplicates) > limit else "")


def _label_problems(table: RawTable, column: str, empty: list[int], unsafe: Sequence[int] = ()) -> list[str]:
    """The problem lines for empty labels and labels unusable as folder names or list values."""
    problems = []
    if empty:
        problems.append(f"{table.where(column, empty)}: empty label")
    if unsafe:
        problems.append(f"{table.where(column, unsafe)}: {UNSAFE_LABEL_PROBLEM}")
    return problems
