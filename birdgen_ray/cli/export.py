"""`birdgen-ray export OUT --format birdclef DEST`: the clips in the layout training code reads."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from birdgen_ray.cli.config_command import config_command, extra_option
from birdgen_ray.cli.options import (
    choices,
    fail,
    line_console,
    local_path,
    output_argument,
    storage_options_option,
    writing_to,
)
from birdgen_ray.export.birdclef import ExportConfig, ExportError, NothingToExport, export_birdclef
from birdgen_ray.io.errors import CorruptFile

console = line_console()
FORMATS = ("birdclef",)
Format = choices("Format", FORMATS)


def export(config: ExportConfig, out: str, dest: Path, format: str, storage_options: Optional[dict]) -> None:
    """Write clips as DEST/train_audio/<label>/<clip_id>.ogg (32 kHz) plus DEST/train_metadata.csv
    (train.csv with --layout 2025).

    The CSV has BirdCLEF's columns (filename relative to train_audio) and marks every row
    source=synthetic, so it concatenates with the real train_metadata.csv.

    Example: birdgen-ray export out/ --format birdclef synthetic/
    """
    try:
        with writing_to(dest):
            result = export_birdclef(out, dest, config, storage_options)
    except NothingToExport as exc:
        raise fail(str(exc), code=1) from None
    except (ExportError, FileNotFoundError, ValueError, CorruptFile) as exc:
        raise fail(str(exc)) from None
    skipped = "".join(f", left out {n} that {why}" for why, n in result.left_out.items())
    console.print(
        f"exported {result.exported} clips to {result.audio_dir}{skipped}; metadata: {result.metadata_csv}",
        highlight=False,
    )


export_cmd = config_command(
    ExportConfig,
    export,
    extras=[
        extra_option("out", str, output_argument()),
        extra_option(
            "dest",
            Path,
            typer.Argument(
                ...,
                callback=local_path,
                metavar="DEST",
                help="Local folder to write train_audio/ and the metadata CSV into.",
            ),
        ),
        extra_option("format", Format, typer.Option("birdclef", "--format", "-f", help="Target layout.")),
        extra_option("storage_options", Optional[str], storage_options_option()),
    ],
)
