"""Write BirdCLEF-shaped example inputs (tests, demos, benchmarks): real column layouts, unicode
names, empty fields, Python-list `type` strings, counts from 1 to 500 per class.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from birdgen_ray.birdclef import LAYOUTS

TAXONOMY_COLUMNS = ["primary_label", "inat_taxon_id", "scientific_name", "common_name", "class_name"]
_TYPES = {
    "Aves": [["song"], ["call"], ["call", "flight call"], ["alarm call"], ["adult", "male", "song"], []],
    "Amphibia": [["call"], ["advertisement call"], []],
    "Insecta": [["song"], []],
    "Mammalia": [["call"], []],
    "Reptilia": [[]],
}
_NAMES = [
    "Rüppell's Warbler",
    "Pájaro Carpintero",
    "Grünspecht",
    "Œil-de-bœuf",
    "ヤマガラ",
    "Kōkako",
    "Common Myna",
    "Ñandú",
    "Çetti's Warbler",
    "Weißstorch",
]


@dataclass(frozen=True)
class ExampleClass:
    label: str
    count: int
    taxon_class: str = "Aves"
    common_name: str = ""
    scientific_name: str = ""


def example_classes(
    n_classes: int, seed: int = 0, low: int = 1, high: int = 500, taxa: tuple[str, ...] = ("Aves",)
) -> list[ExampleClass]:
    """Classes with long-tailed counts in [low, high] (the rarest has `low`, the largest `high`)."""
    rng = random.Random(seed)
    classes = []
    for i in range(n_classes):
        share = (i / max(1, n_classes - 1)) ** 3  # most classes rare, a few common
        count = low if i == 0 else high if i == n_classes - 1 else low + int(share * (high - low))
        taxon = taxa[i % len(taxa)]
        label = f"{_code(rng)}{i}" if taxon == "Aves" else str(100000 + i)  # iNat ids for non-birds
        common = f"{_NAMES[i % len(_NAMES)]} {i}" if i % 7 else ""  # some empty common names
        classes.append(ExampleClass(label, count, taxon, common, f"Genus{i} species{i}"))
    return classes


def _code(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))


def write_recordings(path: str | Path, classes: list[ExampleClass], layout: str = "2023", seed: int = 0) -> Path:
    """One row per recording in a BirdCLEF layout ('2021'..'2025'); rows are shuffled."""
    rng = random.Random(seed)
    columns = LAYOUTS[layout]
    rows = []
    for c in classes:
        for j in range(c.count):
            types = rng.choice(_TYPES.get(c.taxon_class, [[]]))
            values = {
                "primary_label": c.label,
                "secondary_labels": str(rng.sample([x.label for x in classes[:5]], k=rng.randint(0, 2))),
                "type": str(types) if types or j % 2 else "",
                "latitude": "" if j % 11 == 0 else f"{rng.uniform(-60, 60):.4f}",
                "longitude": "" if j % 11 == 0 else f"{rng.uniform(-180, 180):.4f}",
                "scientific_name": c.scientific_name,
                "common_name": c.common_name,
                "date": "2019-05-0{}".format(1 + j % 9),
                "time": "" if j % 3 else "06:30",
                "author": "Ana Müller",
                "license": "Creative Commons Attribution-NonCommercial-ShareAlike 4.0",
                "rating": str(rng.choice([0.0, 2.5, 4.0, 5.0])),
                "url": f"https://xeno-canto.org/{rng.randint(1000, 999999)}",
                "filename": f"{c.label}/XC{j}.ogg",
                "collection": rng.choice(["XC", "iNat", "CSA"]),
            }
            rows.append([values[col] for col in columns])
    rng.shuffle(rows)
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def write_taxonomy(path: str | Path, classes: list[ExampleClass]) -> Path:
    """BirdCLEF 2025 taxonomy.csv: primary_label, inat_taxon_id, scientific_name, common_name, class_name."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(TAXONOMY_COLUMNS)
        for i, c in enumerate(classes):
            inat = c.label if c.label.isdigit() else str(500000 + i)
            writer.writerow([c.label, inat, c.scientific_name, c.common_name or f"Name {i}", c.taxon_class])
    return path


def write_counts(path: str | Path, classes: list[ExampleClass]) -> Path:
    """label, count, common_name, scientific_name, taxon_class as CSV, or Parquet for a .parquet path."""
    path = Path(path)
    columns = {
        "label": [c.label for c in classes],
        "count": [c.count for c in classes],
        "common_name": [c.common_name for c in classes],
        "scientific_name": [c.scientific_name for c in classes],
        "taxon_class": [c.taxon_class for c in classes],
    }
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(columns), path)
        return path
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(list(columns))
        writer.writerows(zip(*columns.values()))
    return path


EBIRD_COLUMNS = [
    "TAXON_ORDER",
    "CATEGORY",
    "SPECIES_CODE",
    "PRIMARY_COM_NAME",
    "SCI_NAME",
    "ORDER1",
    "FAMILY",
    "SPECIES_GROUP",
    "REPORT_AS",
]
# Real rows of eBird_Taxonomy_v2021.csv (BirdCLEF 2021-2024's companion file), plus a spuh, as it spells them.
EBIRD_ROWS = [
    [
        "1",
        "species",
        "ostric2",
        "Common Ostrich",
        "Struthio camelus",
        "Struthioniformes",
        "Struthionidae (Ostriches)",
        "Ostriches",
        "",
    ],
    [
        "301",
        "species",
        "lessca",
        "Lesser Scaup",
        "Aythya affinis",
        "Anseriformes",
        "Anatidae (Ducks, Geese, and Waterfowl)",
        "Waterfowl",
        "",
    ],
    [
        "4532",
        "species",
        "hawpet1",
        "Hawaiian Petrel",
        "Pterodroma sandwichensis",
        "Procellariiformes",
        "Procellariidae (Shearwaters and Petrels)",
        "Shearwaters and Petrels",
        "",
    ],
    [
        "4301",
        "species",
        "laysan",
        "Laysan Albatross",
        "Phoebastria immutabilis",
        "Procellariiformes",
        "Diomedeidae (Albatrosses)",
        "Albatrosses",
        "",
    ],
    ["7710", "species", "sheowl", "Short-eared Owl", "Asio flammeus", "Strigiformes", "Strigidae (Owls)", "Owls", ""],
    [
        "20970",
        "species",
        "eurwre",
        "Eurasian Wren",
        "Troglodytes troglodytes",
        "Passeriformes",
        "Troglodytidae (Wrens)",
        "Wrens",
        "",
    ],
    [
        "315",
        "spuh",
        "aythya",
        "Aythya sp.",
        "Aythya sp.",
        "Anseriformes",
        "Anatidae (Ducks, Geese, and Waterfowl)",
        "Waterfowl",
        "",
    ],
]


def write_ebird_taxonomy(path: str | Path, rows: list[list[str]] = EBIRD_ROWS) -> Path:
    """An eBird_Taxonomy_v2021.csv-shaped file: upper-case columns, one row per taxon."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(EBIRD_COLUMNS)
        writer.writerows(rows)
    return path
