"""The `birdgen-ray` command line: plan -> submit -> status / extract / report / export."""

from __future__ import annotations

import typer

from birdgen_ray.cli import check, evaluate, export, outputs, plan, report, submit, verify
from birdgen_ray.cli.metavars import WordMetavarGroup
from birdgen_ray.cli.options import one_line_errors

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
    # Plain help: at 80 columns rich's boxed tables cut option names ("--gpus-per-act…") and break
    # sentences; click's formatter keeps names whole and rewraps paragraphs. Flags show no value.
    rich_markup_mode=None,
    cls=WordMetavarGroup,  # metavars in words: FILE..., SPECIES, N
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"birdgen-ray {version('birdgen-ray')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            print("birdgen-ray (not installed)")
        raise typer.Exit()


@app.callback()
def main(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Synthetic bird and wildlife calls for class-imbalanced training sets."""


# One line per command; each command's module holds its options and its help text.
# short_help: the command list must not cut a sentence at 80 columns.
app.command("plan", short_help="Make a balanced prompt plan from a training set.")(one_line_errors(plan.plan_cmd))
app.command("submit", short_help="Generate a plan's clips on Ray.")(one_line_errors(submit.submit_cmd))
app.command("status", short_help="Count planned, done, failed clips.")(one_line_errors(outputs.status_cmd))
app.command("check", short_help="Verify every clip's bytes against its sha256.")(one_line_errors(check.check_cmd))
app.command("extract", short_help="Copy clips out as WAV files.")(one_line_errors(outputs.extract_cmd))
app.command("report", short_help="Write an HTML page to judge an output.")(one_line_errors(report.report_cmd))
app.command("export", short_help="Write clips in BirdCLEF's layout.")(one_line_errors(export.export_cmd))
app.command("verify", short_help="Check clips with a species classifier.")(one_line_errors(verify.verify_cmd))
app.command("evaluate", short_help="Measure what the synthetic clips are worth.")(
    one_line_errors(evaluate.evaluate_cmd)
)
