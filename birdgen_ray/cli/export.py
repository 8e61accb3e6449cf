"""`birdgen-ray export OUT --format birdclef DEST`: the clips in the layout training code reads."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from birdgen_ray.cli.options import (
    choices,
    fail,
    line_console,
    local_path,
    storage_options_option,
    writing_to,
)
from birdgen_ray.export.background import parse_snr
from birdgen_ray.export.birdclef import (
    AUDIO_FORMATS,
    EXPORT_LAYOUTS,
    ExportConfig,
    ExportError,
    NothingToExport,
    export_birdclef,
)
from birdgen_ray.fields import split_values
from birdgen_ray.io.errors import CorruptFile
from birdgen_ray.verify.thresholds import parse_species_threshold

console = line_console()
FORMATS = ("birdclef",)
Format = choices("Format", FORMATS)
AudioFormat = choices("AudioFormat", AUDIO_FORMATS)
Layout = choices("Layout", EXPORT_LAYOUTS)


def export_cmd(
    out: str = typer.Argument(..., help="Output folder or s3:// URI of a submit."),
    dest: Path = typer.Argument(
        ..., callback=local_path, help="Local folder to write train_audio/ and the metadata CSV into."
    ),
    format: Format = typer.Option("birdclef", "--format", "-f", help="Target layout."),
    audio_format: AudioFormat = typer.Option("ogg", help="Audio files (ogg = Vorbis, as BirdCLEF)."),
    sample_rate: int = typer.Option(32_000, min=8_000, help="Rate of the written files; other rates are resampled."),
    layout: Layout = typer.Option(
        "2024", help="Metadata columns: 2024 (= 2023, train_metadata.csv) or 2025 (train.csv, with 'collection')."
    ),
    include_failed: bool = typer.Option(
        False, "--include-failed", help="Also export clips that failed the quality gate (= --verdict any)."
    ),
    verdict: str = typer.Option(
        "pass",
        help="Keep clips with this verdict: pass (the gate), any, fail, or one reason such as fail:species.",
    ),
    min_species_confidence: Optional[str] = typer.Option(
        None,
        show_default=False,
        help="Keep only clips BirdNET heard as their class at X (0-1), or at a share of the class's "
        "band ceiling (0.5x) [default: off].",
    ),
    background: Optional[Path] = typer.Option(
        None,
        show_default=False,
        help="Mix each clip over a random window of these soundscapes: a folder, or a CSV/Parquet with a "
        "'path' column [default: off].",
    ),
    snr_db: str = typer.Option("3:15", help="With --background: SNR in dB, drawn per clip from lo:hi."),
    seed: int = typer.Option(0, min=0, help="With --background: decides each clip's soundscape, offset and SNR."),
    label: Optional[List[str]] = typer.Option(None, help="Only this class (repeat, or comma-separate, for more)."),
    license: str = typer.Option("", help="Text for the 'license' column (the license of the model's outputs)."),
    rating: float = typer.Option(
        0.0,
        min=0.0,
        max=5.0,
        help="Value of the 'rating' column (Xeno-canto 0-5, 0 = not rated); pipelines that keep rating >= N drop 0.",
    ),
    workers: int = typer.Option(0, min=0, show_default=False, help="Encoding threads [default: one per CPU core]."),
    storage_options: Optional[str] = storage_options_option(),
) -> None:
    """Write clips as DEST/train_audio/<label>/<clip_id>.ogg (32 kHz) plus DEST/train_metadata.csv
    (train.csv with --layout 2025).

    The CSV has BirdCLEF's columns (filename relative to train_audio) and marks every row
    source=synthetic, so it concatenates with the real train_metadata.csv.

    Example: birdgen-ray export out/ --format birdclef synthetic/
    """
    try:
        config = ExportConfig(
            audio_format=audio_format.value,
            sample_rate=sample_rate,
            layout=layout.value,
            include_failed=include_failed,
            verdict=verdict,
            species_threshold=parse_species_threshold(min_species_confidence) if min_species_confidence else None,
            background=str(background) if background else None,
            snr_db=parse_snr(snr_db),
            seed=seed,
            labels=split_values(label),
            license=license,
            rating=rating,
            workers=workers,
        )
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
