"""`birdgen-ray plan`: a class-imbalanced training set in, a balanced prompt plan out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from birdgen_ray.cli.options import fail, line_console, local_path, split_values, storage_options_option, writing_to
from birdgen_ray.plan.balance import print_summary, write_report
from birdgen_ray.plan.budget import BudgetConfig
from birdgen_ray.plan.build import PlanOptions, build_plan, write_plan
from birdgen_ray.plan.estimate import estimate_gpu_time
from birdgen_ray.plan.metadata import read_classes
from birdgen_ray.plan.prompts import TemplateError, load_templates
from birdgen_ray.plan.references import ReferenceOptions, parse_strength, summary_lines
from birdgen_ray.plan.tables import InputError


def plan_cmd(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="BirdCLEF train_metadata.csv (2021-2024), train.csv (2025+, with --taxonomy), "
            "or a CSV/Parquet of label + count.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Plan file to write (Parquet, local).", show_default=False, callback=local_path
        ),
    ],
    taxonomy: Annotated[
        Optional[Path],
        typer.Option(
            help="taxonomy.csv (primary_label, class_name, names; required for BirdCLEF 2025+ train.csv), or "
            "eBird_Taxonomy_v2021.csv (SPECIES_CODE, ORDER1, FAMILY: habitats by order and family)."
        ),
    ] = None,
    target: Annotated[
        Optional[int], typer.Option(help="Fill every class up to N clips: synthetic = max(0, N - real).", min=0)
    ] = None,
    max_ratio: Annotated[
        Optional[float], typer.Option(help="At most floor(R x real) synthetic clips per class.", min=0)
    ] = None,
    total_budget: Annotated[
        Optional[int],
        typer.Option(
            help="At most B synthetic clips in all, split by deficit (largest remainder). "
            "Without --target the deficit is the gap to the largest class.",
            min=0,
        ),
    ] = None,
    include: Annotated[
        Optional[list[str]],
        typer.Option(
            metavar="LABEL", help="Plan only this label (repeat, or comma-separate, for more).", show_default=False
        ),
    ] = None,
    exclude: Annotated[
        Optional[list[str]],
        typer.Option(
            metavar="LABEL", help="Leave out this label (repeat, or comma-separate, for more).", show_default=False
        ),
    ] = None,
    include_class: Annotated[
        Optional[list[str]],
        typer.Option(
            metavar="CLASS",
            help="Plan only this taxon class, e.g. Aves (repeat, or comma-separate, for more).",
            show_default=False,
        ),
    ] = None,
    exclude_class: Annotated[
        Optional[list[str]],
        typer.Option(
            metavar="CLASS",
            help="Leave out this taxon class, e.g. Insecta (repeat, or comma-separate, for more).",
            show_default=False,
        ),
    ] = None,
    templates: Annotated[
        Optional[Path],
        typer.Option(
            help="Prompt template file (.toml or .yaml); default: the shipped birdgen_ray/data/prompt_templates.toml."
        ),
    ] = None,
    prompt_styles: Annotated[
        Optional[list[str]],
        typer.Option(
            metavar="STYLE",
            help="Mix only these prompt styles (shipped: caption, descriptive, tags; repeat or comma-separate); "
            "default: every style of the templates. Each row records its style in `prompt_style`.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Plan seed: decides every prompt choice and clip seed.", min=0)] = 0,
    duration: Annotated[float, typer.Option(help="Clip length in seconds (0 < d <= 60).")] = 5.0,
    report_dir: Annotated[
        Optional[Path],
        typer.Option(help="Where the balance report goes (CSV + PNG); default: next to --out.", callback=local_path),
    ] = None,
    references: Annotated[
        Optional[str],
        typer.Option(
            metavar="ROOT",
            help="Start each class's clips from its own recordings (SDEdit): BirdCLEF's train_audio/<label>/<file> "
            "(local or s3://), or a CSV of label,path. Classes without recordings stay text-only.",
        ),
    ] = None,
    strength: Annotated[
        str,
        typer.Option(help="With --references: 0 keeps the recording, 1 starts from noise; lo:hi samples per row."),
    ] = "0.5",
    windows_per_recording: Annotated[
        int,
        typer.Option(
            help="With --references: BirdNET's best 3 s windows of the class per recording (birdnet extra).", min=1
        ),
    ] = 3,
    min_reference_confidence: Annotated[
        float,
        typer.Option(
            help="With --references: a window needs this BirdNET confidence in its class; else: loudest window.",
            min=0.0,
            max=1.0,
        ),
    ] = 0.3,
    storage_options: Optional[str] = storage_options_option(),
) -> None:
    """Turn a class-imbalanced training set into a balanced, varied prompt plan.

    Writes OUT with one row per synthetic clip (clip_id, label, prompt, negative_prompt, seed, duration_s, taxon_class, common_name, scientific_name, call_type, prompt_style, take, real_count, synthetic_count, rule), a balance report (<stem>.balance_classes.csv, <stem>.balance_taxa.csv, <stem>.balance.png) and a short summary.

    Same inputs and --seed give a byte-identical plan; raising --target later keeps every earlier row and only adds new ones. Budget rules: docs/planning.md.

    Examples:

    \b
      birdgen-ray plan train_metadata.csv --target 100 --max-ratio 4 \\
          -o plan.parquet
      birdgen-ray plan train_metadata.csv --taxonomy eBird_Taxonomy_v2021.csv \\
          --target 100 --prompt-styles caption,tags -o plan.parquet
      birdgen-ray plan train.csv --taxonomy taxonomy.csv --total-budget 20000 \\
          --exclude-class Insecta -o plan.parquet
      birdgen-ray plan counts.csv --target 50 --include ashdro1,bkwsti \\
          --templates my.toml -o plan.parquet
    """  # noqa: E501
    console = line_console()
    for path in (input_path, taxonomy):
        if path is not None and path.is_dir():  # else read_classes says "file not found"
            raise fail(str(InputError(path, ["is a directory, not a CSV or Parquet file"])))
    try:
        options = PlanOptions(
            BudgetConfig(target=target, max_ratio=max_ratio, total_budget=total_budget),
            include=split_values(include),
            exclude=split_values(exclude),
            include_classes=split_values(include_class),
            exclude_classes=split_values(exclude_class),
            seed=seed,
            duration_s=duration,
            prompt_styles=split_values(prompt_styles),
        )
        prompt_templates = load_templates(templates)
        reference_options = (
            ReferenceOptions(
                references,
                parse_strength(strength),
                storage_options or {},
                windows_per_recording=windows_per_recording,
                min_confidence=min_reference_confidence,
            )
            if references
            else None
        )
        classes = read_classes(input_path, taxonomy)
        result = build_plan(classes, options, prompt_templates, reference_options)
    except (InputError, TemplateError, ValueError) as exc:
        raise fail(str(exc)) from None

    print_summary(classes, result.allocations, console, result.call_types)
    if "references" in result.metadata:
        for line in summary_lines(result.metadata["references"]):
            console.print(line, highlight=False)
    birds = [c for c in classes if c.taxon_class.lower() == "aves" and result.allocations[c.label].synthetic_count]
    if birds and not any(c.order or c.family for c in birds) and prompt_templates.sections["orders"]:
        console.print(
            "note: no eBird order or family for the birds: every bird gets the land-bird settings; "
            "pass --taxonomy eBird_Taxonomy_v2021.csv for habitats by order and family",
            highlight=False,
        )
    if result.table.num_rows == 0:
        # Write nothing: a new report beside an older plan file would contradict it.
        kept = f"; the existing {out} was left untouched" if out.exists() else ""
        raise fail(
            f"nothing to generate: every selected class already meets the budget; wrote no plan and no report{kept}",
            code=1,
        )
    report_dir = report_dir or out.parent
    report_files = report_dir / f"{out.stem}.balance_*"
    with writing_to(out, within=out.parent):
        out.parent.mkdir(parents=True, exist_ok=True)
    with writing_to(report_files, within=report_dir):  # before the plan: a bad --report-dir leaves no plan behind
        report_dir.mkdir(parents=True, exist_ok=True)
    with writing_to(out, within=out.parent):
        write_plan(result, out)
    with writing_to(report_files, within=report_dir):
        write_report(classes, result.allocations, report_dir, out.stem, target, result.class_call_types)
    console.print(f"wrote {out} ({result.table.num_rows} clips); report: {report_files}")
    console.print(estimate_gpu_time(result.table["duration_s"].to_pylist()).line(), highlight=False)
    _name_unverifiable(result.table, console)


def _name_unverifiable(plan, console) -> None:
    """Classes the species verifier (submit --verify birdnet) cannot check; silent without the extra."""
    from birdgen_ray.verify.birdnet import MissingExtra, birdnet_labels
    from birdgen_ray.verify.species import describe_unverifiable, plan_species

    try:
        line = describe_unverifiable(plan_species(plan, birdnet_labels()))
    except MissingExtra:
        return
    if line:
        console.print(f"species verification: {line}", highlight=False)
