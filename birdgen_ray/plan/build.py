"""Class stats + budget + templates -> the plan table, written byte-for-byte reproducibly.

Rows are sorted by (label, take); `take` counts a class's synthetic clips from 0. Row (label, take)
depends only on the plan seed, the class's real data and the templates, so raising --target later
keeps every earlier row (same clip_id, prompt and seed) and only adds new ones.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from birdgen_ray.fields import listed, option
from birdgen_ray.io.storage import write_file_atomic
from birdgen_ray.plan.budget import Allocation, BudgetConfig, allocate
from birdgen_ray.plan.call_types import CallTypeReport, map_call_types
from birdgen_ray.plan.checksum import FIRST_CHECKSUMMED_FORMAT, PLAN_METADATA_KEY, with_checksum
from birdgen_ray.plan.metadata import ClassStats
from birdgen_ray.plan.prompts import PromptTemplates, TemplateError, clip_prompt
from birdgen_ray.plan.references import ReferenceOptions, add_references
from birdgen_ray.plan.schema import FULL_SCHEMA, MAX_DURATION_S, make_clip_id
from birdgen_ray.plan.tables import InputError
from birdgen_ray.plan.validate import validate_plan


@dataclass(frozen=True)
class PlanOptions:
    budget: BudgetConfig
    include: tuple[str, ...] = listed("Plan only this label (repeat, or comma-separate, for more).", metavar="LABEL")
    exclude: tuple[str, ...] = listed(
        "Leave out this label (repeat, or comma-separate, for more).", metavar="LABEL", default_text="none"
    )
    # taxon classes are matched case-insensitively
    include_classes: tuple[str, ...] = listed(
        "Plan only this taxon class, e.g. Aves (repeat, or comma-separate, for more).",
        metavar="CLASS",
        flags=("--include-class",),
    )
    exclude_classes: tuple[str, ...] = listed(
        "Leave out this taxon class, e.g. Insecta (repeat, or comma-separate, for more).",
        metavar="CLASS",
        flags=("--exclude-class",),
        default_text="none",
    )
    seed: int = option(0, "Plan seed: decides every prompt choice and clip seed.", min=0)
    duration_s: float = option(5.0, "Clip length in seconds (0 < d <= 60).", flags=("--duration",))
    prompt_styles: tuple[str, ...] = listed(
        "Mix only these prompt styles (shipped: caption, descriptive, tags; repeat or comma-separate). Each row "
        "records its style in `prompt_style`.",
        metavar="STYLE",
        default_text="every style of the templates",
    )

    def __post_init__(self) -> None:
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise ValueError(f"--duration must be in (0, {MAX_DURATION_S:g}] seconds, got {self.duration_s}")
        if self.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {self.seed}")


@dataclass
class PlanResult:
    table: pa.Table  # validated plan, FULL_SCHEMA, sorted by (label, take)
    classes: list[ClassStats]
    allocations: dict[str, Allocation]  # every input class, excluded ones included
    metadata: dict = field(default_factory=dict)  # recorded in the Parquet footer
    call_types: CallTypeReport = field(default_factory=CallTypeReport)  # what became of the selected `type` values
    class_call_types: dict[str, CallTypeReport] = field(default_factory=dict)  # the same per class


def excluded_labels(classes: list[ClassStats], options: PlanOptions) -> set[str]:
    """Labels left out by the include/exclude options; unknown labels or classes are an error."""
    labels = {c.label for c in classes}
    taxa = {c.taxon_class.lower() for c in classes}
    unknown = [f"label {x!r}" for x in (*options.include, *options.exclude) if x not in labels]
    unknown += [
        f"taxon class {x!r}" for x in (*options.include_classes, *options.exclude_classes) if x.lower() not in taxa
    ]
    if unknown:
        hints = []
        if any(u.startswith("label") for u in unknown):
            shown = sorted(labels)
            more = f" ... ({len(shown)} in all)" if len(shown) > 12 else ""
            hints.append(f"labels in the input: {', '.join(shown[:12])}{more}")
        if any(u.startswith("taxon class") for u in unknown):
            hints.append(f"taxon classes in the input: {', '.join(sorted({c.taxon_class for c in classes}))}")
        raise ValueError(f"not in the input: {', '.join(unknown)} ({'; '.join(hints)})")
    include_classes = {x.lower() for x in options.include_classes}
    exclude_classes = {x.lower() for x in options.exclude_classes}
    out = set()
    for c in classes:
        kept = (
            (not options.include or c.label in options.include)
            and c.label not in options.exclude
            and (not include_classes or c.taxon_class.lower() in include_classes)
            and c.taxon_class.lower() not in exclude_classes
        )
        if not kept:
            out.add(c.label)
    return out


def build_plan(
    classes: list[ClassStats],
    options: PlanOptions,
    templates: PromptTemplates,
    references: ReferenceOptions | None = None,
) -> PlanResult:
    """The plan; with `references`, rows of classes that have recordings also get reference columns
    (plan/references.py). Without them the plan is exactly what it was before references existed."""
    excluded = excluded_labels(classes, options)
    empty = [c for c in classes if c.real_count == 0 and c.label not in excluded]
    if empty:
        raise InputError(
            ", ".join(sorted({c.source for c in empty})),
            [f"{c.source} {c.where}: class {c.label!r} has zero rows; drop it with --exclude" for c in empty],
        )
    allocations = allocate({c.label: c.real_count for c in classes}, excluded, options.budget)
    unknown_styles = sorted(set(options.prompt_styles) - set(templates.prompt_styles))
    if unknown_styles:
        raise TemplateError(
            f"--prompt-styles: unknown style(s) {', '.join(unknown_styles)}; "
            f"{templates.source} has {', '.join(templates.prompt_styles)}"
        )
    class_reports = {c.label: CallTypeReport() for c in classes}
    for c in classes:
        map_call_types(c.call_types, templates.vocabulary, class_reports[c.label])
    report = CallTypeReport.combined(r for label, r in class_reports.items() if label not in excluded)

    columns: dict[str, list] = {name: [] for name in FULL_SCHEMA.names}
    for stats in sorted(classes, key=lambda c: c.label):
        alloc = allocations[stats.label]
        for take in range(alloc.synthetic_count):
            clip = clip_prompt(stats, take, options.seed, templates, options.prompt_styles)
            row = {
                "clip_id": make_clip_id(stats.label, clip.prompt, clip.negative_prompt, clip.seed, options.duration_s),
                "label": stats.label,
                "prompt": clip.prompt,
                "negative_prompt": clip.negative_prompt,
                "seed": clip.seed,
                "duration_s": float(options.duration_s),
                "taxon_class": stats.taxon_class,
                "common_name": stats.common_name,
                "scientific_name": stats.scientific_name,
                "call_type": clip.call_type,
                "prompt_style": clip.prompt_style,
                "take": take,
                "real_count": alloc.real_count,
                "synthetic_count": alloc.synthetic_count,
                "rule": alloc.rule,
            }
            for name, value in row.items():
                columns[name].append(value)
    table = pa.table(columns, schema=FULL_SCHEMA)
    metadata = {
        "format": FIRST_CHECKSUMMED_FORMAT,
        "options": {**asdict(options), "templates_sha256": templates.digest},
        "classes": [asdict(allocations[c.label]) | {"taxon_class": c.taxon_class} for c in classes],
    }
    if references is not None and table.num_rows:
        # never the storage options: they may hold credentials
        table, metadata["references"] = add_references(table, references, options.seed)
    if table.num_rows:
        table = validate_plan(table, source="generated plan")
    return PlanResult(table, classes, allocations, metadata, report, class_reports)


def write_plan(result: PlanResult, path: str | Path) -> None:
    """Write the plan atomically with fixed options: same plan, same bytes (same pyarrow version)."""
    if result.table.num_rows == 0:
        raise ValueError("nothing to generate: every selected class already has enough clips")
    meta = {PLAN_METADATA_KEY: json.dumps(result.metadata, sort_keys=True, ensure_ascii=False).encode("utf-8")}
    table = with_checksum(result.table.replace_schema_metadata(meta))  # verified by read_plan
    buffer = io.BytesIO()
    pq.write_table(
        table,
        buffer,
        compression="zstd",
        compression_level=3,
        use_dictionary=True,
        write_statistics=True,
        write_page_checksum=True,  # submit verifies them: a flipped bit is an error, not a changed prompt
    )
    write_file_atomic(path, buffer.getvalue())
