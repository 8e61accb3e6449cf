"""The `birdgen-ray` command line: plan -> submit -> status / extract / report / export."""

from __future__ import annotations

import typer

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

# --- command registration (one line per command module) ---
from birdgen_ray.plan.command import plan_cmd  # noqa: E402

app.command("plan")(plan_cmd)
from birdgen_ray.schedule.command import submit_cmd  # noqa: E402

app.command("submit")(submit_cmd)
from birdgen_ray.index.command import extract_cmd, status_cmd  # noqa: E402

app.command("status")(status_cmd)
app.command("extract")(extract_cmd)
from birdgen_ray.report.command import report_cmd  # noqa: E402

app.command("report")(report_cmd)
from birdgen_ray.export.command import export_cmd  # noqa: E402

app.command("export")(export_cmd)
# --- end command registration ---
