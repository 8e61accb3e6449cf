"""`birdgen-ray export OUT --format birdclef DEST`: the clips in the layout training code reads."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from birdgen_ray.cli_options import local_path, split_values, storage_options_option
from birdgen_ray.export.birdclef import AUDIO_FORMATS, ExportConfig, ExportError, export_birdclef

console = Console()
FORMATS = ("birdclef",)


def export_cmd(
    out: str = typer.Argument(..., help="Output folder or s3:// URI of a submit."),
    dest: Path = typer.Argument(..., callback=local_path, help="Local folder to write train_audio/ and the metadata CSV into."),
    format: str = typer.Option("birdclef", "--format", "-f", help=f"Target layout: {', '.join(FORMATS)}."),
    audio_format: str = typer.Option("ogg", help=f"Audio files: {', '.join(AUDIO_FORMATS)} (ogg = Vorbis, as BirdCLEF)."),
    sample_rate: int = typer.Option(32_000, help="Rate of the written files; other rates are resampled."),
    layout: str = typer.Option(
        "2024", help="Metadata columns: 2024 (= 2023, train_metadata.csv) or 2025 (train.csv, with 'collection')."
    ),
    include_failed: bool = typer.Option(False, help="Also export clips that failed the quality gate."),
    label: Optional[List[str]] = typer.Option(None, help="Only this class (repeat, or comma-separate, for more)."),
    license: str = typer.Option("", help="Text for the 'license' column (the license of the model's outputs)."),
    workers: int = typer.Option(0, min=0, help="Encoding threads \\[default: one per CPU core]."),
    storage_options: Optional[str] = storage_options_option(),
) -> None:
    """Write clips as DEST/train_audio/<label>/<clip_id>.ogg (32 kHz) plus DEST/train_metadata.csv.

    The CSV has BirdCLEF's columns (filename relative to train_audio) and marks every row
    source=synthetic, so it concatenates with the real train_metadata.csv.

    Example: birdgen-ray export out/ --format birdclef synthetic/
    """
    err = Console(stderr=True)
    if format not in FORMATS:
        err.print(f"[red]error:[/red] --format must be one of {', '.join(FORMATS)}, got {format!r}", highlight=False)
        raise typer.Exit(2)
    try:
        config = ExportConfig(
            audio_format=audio_format,
            sample_rate=sample_rate,
            layout=layout,
            include_failed=include_failed,
            labels=split_values(label),
            license=license,
            workers=workers,
        )
        result = export_birdclef(out, dest, config, storage_options)
    except (ExportError, FileNotFoundError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    skipped = f", skipped {result.skipped_failed} that failed the quality gate" if result.skipped_failed else ""
    console.print(
        f"exported {result.exported} clips to {result.audio_dir}{skipped}; metadata: {result.metadata_csv}",
        highlight=False,
    )
