"""Export an output in BirdCLEF's training layout, ready to sit beside the real data.

    DEST/train_audio/<label>/<clip_id>.ogg   32 kHz mono OGG Vorbis (or FLAC / WAV)
    DEST/train_metadata.csv                  BirdCLEF 2023/2024 columns (or 2025's train.csv columns)

`filename` is relative to train_audio, as in the competition files, so the CSV concatenates with the
real one (`pd.concat([real, synthetic])`) and the audio folders merge into the real train_audio.
Every synthetic row has `source` = "synthetic" (real rows have none after the concat); the 2025
layout's own `collection` column says "synthetic" too. Extra columns after the layout's record how
each clip was made (clip_id, prompt, seeds, model, gate verdict, CLAP score). An output made with
references (plan --references) also gets `reference_filename` (the recording the clip was made from,
relative to the references' train_audio, as in BirdCLEF's own `filename`) and `strength`: a clip must
go to the fold of its reference (docs/using-results.md).
"""

from __future__ import annotations

import csv
import io
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from birdgen_ray.index.reader import as_output, open_index, read_clip_bytes, select_labels
from birdgen_ray.io.audio import ENCODINGS, decode_wav, encode_audio, resample
from birdgen_ray.io.layout import has_audio
from birdgen_ray.io.storage import Output, write_file_atomic
from birdgen_ray.plan.layouts import LAYOUTS
from birdgen_ray.plan.schema import UNSAFE_LABEL, UNSAFE_LABEL_PROBLEM

AUDIO_DIR = "train_audio"
SYNTHETIC = "synthetic"
METADATA_FILES = {"2023": "train_metadata.csv", "2024": "train_metadata.csv", "2025": "train.csv"}
EXTRA_COLUMNS = ["source", "clip_id", "prompt", "seed", "final_seed", "model_id", "verdict", "clap_score", "duration_s"]
REFERENCE_EXTRA_COLUMNS = ["reference_filename", "strength"]  # only for outputs made with references
AUDIO_FORMATS = tuple(ENCODINGS)  # ogg (Vorbis, what BirdCLEF ships), flac, wav
# Index columns the export reads (when present): to locate each clip and fill the metadata CSV.
EXPORT_INDEX_COLUMNS = {
    "clip_id",
    "label",
    "prompt",
    "seed",
    "final_seed",
    "duration_s",
    "shard",
    "offset",
    "size",
    "model_id",
    "verdict",
    "clap_score",
    "call_type",
    "scientific_name",
    "common_name",
    "reference",
    "strength",
}


class NothingToExport(ValueError):
    """The selection holds no clip to export (every one failed the gate)."""


class ExportError(ValueError):
    """The output cannot be exported as asked; the message names the column and rows."""


@dataclass(frozen=True)
class ExportConfig:
    audio_format: str = "ogg"  # ogg (Vorbis), flac or wav
    sample_rate: int = 32_000  # BirdCLEF's rate; clips at another rate are resampled (soxr)
    layout: str = "2024"  # "2024" (also 2023) train_metadata.csv, or "2025" train.csv
    include_failed: bool = False  # also export clips the quality gate rejected after all retries
    labels: tuple[str, ...] = ()  # only these classes (empty: all)
    author: str = "birdgen-ray"
    license: str = ""  # the `license` column; empty: "synthetic (<model_id>), see the model's license"
    rating: float = 0.0  # Xeno-canto scale; 0 means "not rated"
    workers: int = 0  # encoding threads; 0: one per CPU core

    def __post_init__(self) -> None:
        if self.audio_format not in AUDIO_FORMATS:
            raise ExportError(f"audio format must be one of {sorted(AUDIO_FORMATS)}, got {self.audio_format!r}")
        if self.layout not in METADATA_FILES:
            raise ExportError(f"layout must be one of {sorted(METADATA_FILES)}, got {self.layout!r}")
        if self.sample_rate < 8_000:
            raise ExportError(f"sample rate must be >= 8000 Hz, got {self.sample_rate}")


@dataclass
class ExportResult:
    metadata_csv: Path
    audio_dir: Path
    exported: int
    skipped_failed: int


def export_birdclef(
    out: str | Output,
    dest: str | Path,
    config: ExportConfig = ExportConfig(),
    storage_options: dict[str, Any] | None = None,
) -> ExportResult:
    """Write every selected clip as DEST/train_audio/<label>/<clip_id>.<ext> plus the metadata CSV."""
    output = as_output(out, storage_options)
    index = open_index(output)
    # Only the columns the export uses: the per-row settings JSON alone would be most of the memory.
    index = index.select([c for c in index.column_names if c in EXPORT_INDEX_COLUMNS])
    if config.labels:
        try:
            index = select_labels(index, config.labels, output.uri)
        except ValueError as exc:
            raise ExportError(str(exc)) from None
    rows = sorted(index.to_pylist(), key=lambda r: (r["label"], r["clip_id"]))
    _check_labels(rows, output.uri)
    kept = rows if config.include_failed else [r for r in rows if r["verdict"] == "pass"]
    kept = [r for r in kept if has_audio(r)]  # fail:species clips left out by --drop-species-failures
    if not kept:  # a training job fed from a header-only CSV would quietly get no synthetic data
        reason = f": all {len(rows)} selected clips failed the quality gate (see --include-failed)" if rows else ""
        raise NothingToExport(f"nothing to export from {output.uri}{reason}; nothing was written")
    dest = Path(dest)
    audio_dir = dest / AUDIO_DIR
    for label in sorted({r["label"] for r in kept}):
        (audio_dir / label).mkdir(parents=True, exist_ok=True)

    def export_one(row: dict) -> dict:
        filename = f"{row['label']}/{row['clip_id']}.{config.audio_format}"
        audio, rate = decode_wav(read_clip_bytes(output, row))
        audio = resample(audio, rate, config.sample_rate)
        write_file_atomic(audio_dir / filename, encode_audio(audio, config.sample_rate, config.audio_format))
        return metadata_row(row, filename, config)

    # libsndfile's encoders and the reads release the GIL, so threads encode in parallel.
    with ThreadPoolExecutor(max_workers=config.workers or os.cpu_count() or 1) as pool:
        records = list(pool.map(export_one, kept))
    metadata_csv = dest / METADATA_FILES[config.layout]
    extra = EXTRA_COLUMNS + (REFERENCE_EXTRA_COLUMNS if "reference" in index.column_names else [])
    write_file_atomic(metadata_csv, _csv_bytes(records, LAYOUTS[config.layout] + extra))
    return ExportResult(metadata_csv, audio_dir, len(records), len(rows) - len(kept))


def metadata_row(row: dict, filename: str, config: ExportConfig) -> dict:
    """One metadata row in BirdCLEF's vocabulary for one index row."""
    call_type = row.get("call_type")
    return {
        "primary_label": row["label"],
        "secondary_labels": "[]",
        "type": repr([call_type]) if call_type else "[]",  # BirdCLEF writes Python list literals
        "latitude": None,
        "longitude": None,
        "scientific_name": row.get("scientific_name") or "",
        "common_name": row.get("common_name") or "",
        "author": config.author,
        "license": config.license or f"synthetic ({row['model_id']}), see the model's license",
        "rating": float(config.rating),
        # Text columns stay non-empty: a column empty in every row reads back as float NaN and would
        # turn the real file's string column into `object` after a concat.
        "url": f"urn:birdgen-ray:{row['clip_id']}",
        "filename": filename,
        "collection": SYNTHETIC,
        "source": SYNTHETIC,
        "clip_id": row["clip_id"],
        "prompt": row["prompt"],
        "seed": row["seed"],
        "final_seed": row["final_seed"],
        "model_id": row["model_id"],
        "verdict": row["verdict"],
        "clap_score": row["clap_score"],
        "duration_s": row["duration_s"],
        "reference_filename": row.get("reference"),
        "strength": row.get("strength"),
    }


def _check_labels(rows: list[dict], uri: str) -> None:
    """Labels become folder names: refuse any that would escape DEST or cannot be a folder."""
    bad: dict[str, list[str]] = {}
    for row in rows:
        if not row["label"] or UNSAFE_LABEL.search(row["label"]):
            bad.setdefault(row["label"], []).append(row["clip_id"])
    if bad:
        lines = [
            f"{label!r} (clips {', '.join(ids[:3])}{' ...' if len(ids) > 3 else ''})" for label, ids in bad.items()
        ]
        raise ExportError(f"{uri}/index.parquet column 'label': {UNSAFE_LABEL_PROBLEM}: " + "; ".join(lines))


def _csv_bytes(records: list[dict], columns: list[str]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([_cell(record[c]) for c in columns])
    return text.getvalue().encode("utf-8")


def _cell(value) -> str:
    """Empty for missing values, as in the real files (pandas reads them as NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)
