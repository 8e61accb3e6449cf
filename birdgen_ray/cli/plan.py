"""`birdgen-ray plan`: a class-imbalanced training set in, a balanced prompt plan out. Its options
are PlanRequest's declared fields (plan/request.py), built into a command by cli/config_command.py."""

from __future__ import annotations

from pathlib import Path

from birdgen_ray.cli.config_command import config_command
from birdgen_ray.cli.options import fail, line_console, writing_to
from birdgen_ray.plan.balance import print_summary, write_report
from birdgen_ray.plan.build import PlanResult, build_plan, write_plan
from birdgen_ray.plan.estimate import estimate_gpu_time
from birdgen_ray.plan.metadata import read_classes
from birdgen_ray.plan.prompts import PromptTemplates, TemplateError, load_templates
from birdgen_ray.plan.references import summary_lines
from birdgen_ray.plan.request import PlanRequest
from birdgen_ray.plan.tables import InputError


def plan(request: PlanRequest) -> None:
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
    # 1. read the inputs and build the plan in memory
    result, templates = _build(request)
    # 2. say what it is
    _print_summary(result, templates, console)
    if result.table.num_rows == 0:
        # Write nothing: a new report beside an older plan file would contradict it.
        kept = f"; the existing {request.out} was left untouched" if request.out.exists() else ""
        raise fail(
            f"nothing to generate: every selected class already meets the budget; wrote no plan and no report{kept}",
            code=1,
        )
    # 3. write the plan and its balance report
    report_files = _write(request, result)
    console.print(f"wrote {request.out} ({result.table.num_rows} clips); report: {report_files}")
    console.print(estimate_gpu_time(result.table["duration_s"].to_pylist()).line(), highlight=False)
    _name_unverifiable(result.table, console)


plan_cmd = config_command(PlanRequest, plan)


def _build(request: PlanRequest) -> tuple[PlanResult, PromptTemplates]:
    for path in (request.input_path, request.taxonomy):
        if path is not None and path.is_dir():  # else read_classes says "file not found"
            raise fail(str(InputError(path, ["is a directory, not a CSV or Parquet file"])))
    try:
        templates = load_templates(request.templates)
        classes = read_classes(request.input_path, request.taxonomy)
        return build_plan(classes, request.options, templates, request.references), templates
    except (InputError, TemplateError, ValueError) as exc:
        raise fail(str(exc)) from None


def _print_summary(result: PlanResult, templates: PromptTemplates, console) -> None:
    print_summary(result.classes, result.allocations, console, result.call_types)
    if "references" in result.metadata:
        for line in summary_lines(result.metadata["references"]):
            console.print(line, highlight=False)
    birds = [
        c for c in result.classes if c.taxon_class.lower() == "aves" and result.allocations[c.label].synthetic_count
    ]
    if birds and not any(c.order or c.family for c in birds) and templates.sections["orders"]:
        console.print(
            "note: no eBird order or family for the birds: every bird gets the land-bird settings; "
            "pass --taxonomy eBird_Taxonomy_v2021.csv for habitats by order and family",
            highlight=False,
        )


def _write(request: PlanRequest, result: PlanResult) -> Path:
    """The plan and its balance report; the report's folder is made first, so a bad --report-dir
    leaves no plan behind. Returns the report files' pattern."""
    out = request.out
    report_dir = request.report_dir or out.parent
    report_files = report_dir / f"{out.stem}.balance_*"
    with writing_to(out, within=out.parent):
        out.parent.mkdir(parents=True, exist_ok=True)
    with writing_to(report_files, within=report_dir):
        report_dir.mkdir(parents=True, exist_ok=True)
    with writing_to(out, within=out.parent):
        write_plan(result, out)
    with writing_to(report_files, within=report_dir):
        target = request.options.budget.target
        write_report(result.classes, result.allocations, report_dir, out.stem, target, result.class_call_types)
    return report_files


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
