"""One `birdgen-ray plan`: what to read, what to write, and how to plan, as one typed config.

Its fields (and those of the configs nested in it) are the command's options, declared once
(fields.py); `birdgen-ray plan` is built from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from birdgen_ray.fields import local_path, option
from birdgen_ray.plan.build import PlanOptions
from birdgen_ray.plan.references import ReferenceOptions


@dataclass(frozen=True)
class PlanRequest:
    input_path: Path = option(
        help="BirdCLEF train_metadata.csv (2021-2024), train.csv (2025+, with --taxonomy), or a CSV/Parquet of "
        "label + count.",
        argument=True,
        metavar="INPUT",
    )
    out: Path = option(
        help="Plan file to write (Parquet, local).",
        flags=("--out", "-o"),
        parse=local_path,
        cli_type=str,
        metavar="FILE",
    )
    options: PlanOptions  # the budget, the classes, seed, duration and prompt styles
    taxonomy: Path | None = option(
        None,
        "taxonomy.csv (primary_label, class_name, names; required for BirdCLEF 2025+ train.csv), or "
        "eBird_Taxonomy_v2021.csv (SPECIES_CODE, ORDER1, FAMILY: habitats by order and family).",
    )
    templates: Path | None = option(
        None,
        "Prompt template file (.toml or .yaml).",
        default_text="the shipped birdgen_ray/data/prompt_templates.toml",
    )
    report_dir: Path | None = option(
        None,
        "Where the balance report goes (CSV + PNG).",
        parse=local_path,
        metavar="FOLDER",
        cli_type=str,  # a URI stays whole in the refusal
        default_text="next to --out",
    )
    references: ReferenceOptions | None = None  # None: every row text-only
