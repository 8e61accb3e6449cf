"""`birdgen-ray report OUT`: the HTML QA page of an output."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from birdgen_ray.cli.config_command import config_command, extra_option
from birdgen_ray.cli.options import fail, line_console, local_path, output_argument, storage_options_option, writing_to
from birdgen_ray.index.reader import as_output
from birdgen_ray.report.build import ReportConfig, build_report, default_dest

console = line_console()


def report(config: ReportConfig, out: str, dest: Optional[Path], storage_options: Optional[dict]) -> None:
    """Write a self-contained HTML page to judge an output before training on it.

    Per class: spectrograms with audio players, prompts and quality scores for a sample of clips;
    plus class balance before/after, quality-score and gate-verdict distributions, and run throughput.

    Example: birdgen-ray report out/ --per-class 6   (then open out/report/index.html)
    """
    try:
        with writing_to(dest if dest is not None else default_dest(as_output(out, storage_options))):
            page = build_report(out, dest, config, storage_options)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    console.print(f"wrote {page}", highlight=False)


report_cmd = config_command(
    ReportConfig,
    report,
    extras=[
        extra_option("out", str, output_argument()),
        extra_option(
            "dest",
            Optional[Path],
            typer.Option(
                None,
                "--dest",
                "-d",
                callback=local_path,
                help="Local folder for the report [default: OUT/report; required for s3://].",
            ),
        ),
        extra_option("storage_options", Optional[str], storage_options_option()),
    ],
)
