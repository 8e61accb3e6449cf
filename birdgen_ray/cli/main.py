"""The `birdgen-ray` command line: plan -> submit -> status / extract / report / export."""

from __future__ import annotations

import typer

from birdgen_ray.cli import evaluate, export, outputs, plan, report, submit, verify

app = typer.Typer(
    name="birdgen-ray",
    help=(
        "Synthetic bird and wildlife calls for class-imbalanced training sets.\n\n"
        "Typical flow:\n\n"
        "  birdgen-ray plan train_metadata.csv --target 50 -o plan.parquet\n\n"
        "  birdgen-ray submit plan.parquet --out out/ --model cvssp/audioldm2\n\n"
        "  birdgen-ray status out/"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# One line per command; each command's module holds its options and its help text.
app.command("plan")(plan.plan_cmd)
app.command("submit")(submit.submit_cmd)
app.command("status")(outputs.status_cmd)
app.command("extract")(outputs.extract_cmd)
app.command("report")(report.report_cmd)
app.command("export")(export.export_cmd)
app.command("verify")(verify.verify_cmd)
app.command("evaluate")(evaluate.evaluate_cmd)
