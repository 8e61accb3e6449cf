"""Export an output in BirdCLEF's training layout, ready to sit beside the real data.

    DEST/train_audio/<label>/<clip_id>.ogg   32 kHz mono OGG Vorbis (or FLAC / WAV)
    DEST/train_metadata.csv                  BirdCLEF 2023/2024 columns (or 2025's train.csv columns)

`filename` is relative to train_audio, as in the competition files, so the CSV concatenates with the
real one (`pd.concat([real, synthetic])`) and the audio folders merge into the real train_audio.
Every synthetic row has `source` = "synthetic" (real rows have none after the concat); the 2025
layout's own `collection` column says "synthetic" too. Extra columns after the layout's record how
each clip was made (clip_id, prompt, seeds, model, gate verdict, CLAP score, bandwidth) and what
BirdNET heard in it (`species_confidence`, `species_top1`; empty when the output was not verified).
An output made with references (plan --references) also gets `reference_filename` (the recording the
clip was made from, relative to the references' train_audio, as in BirdCLEF's own `filename`), its
window, `strength`, `reference_confidence` and the class's `reference_ceiling`: a clip must go to the
fold of its reference (docs/using-results.md).

Which clips: those whose `verdict` is `pass` (the gate: quality, plus species where the run set a
threshold), or any verdict; then, with a species threshold (absolute or `0.5x` of the class's
ceiling), only clips BirdNET heard at it. With backgrounds (export/background.py) each clip is mixed
over a soundscape and its row names the file, offset and SNR.
"""

from __future__ import annotations

import csv
import io
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from birdgen_ray.birdclef import AUDIO_DIR, LAYOUTS, METADATA_FILES
from birdgen_ray.export.background import BackgroundError, Backgrounds, find_backgrounds, parse_snr
from birdgen_ray.fields import listed, option, ranged
from birdgen_ray.index.reader import as_output, open_index, read_clip_bytes, select_labels
from birdgen_ray.io.audio import ENCODINGS, decode_wav, encode_audio, resample
from birdgen_ray.io.layout import has_audio
from birdgen_ray.io.storage import Output, write_file_atomic
from birdgen_ray.plan.schema import UNSAFE_LABEL, UNSAFE_LABEL_PROBLEM
from birdgen_ray.verify.columns import SPECIES_COLUMNS, SPECIES_FIELDS
from birdgen_ray.verify.passing import species_columns
from birdgen_ray.verify.thresholds import SpeciesThreshold, parse_species_threshold

SYNTHETIC = "synthetic"
# the years whose metadata an export writes (2021 and 2022 also want date and time columns)
EXPORT_LAYOUTS = ("2023", "2024", "2025")
EXTRA_COLUMNS = ["source", "clip_id", "prompt", "seed", "final_seed", "model_id", "verdict", "clap_score", "duration_s"]
EXTRA_COLUMNS += ["bandwidth_hz", "species_confidence", "species_top1"]
# only for outputs made with references (each one the index has)
REFERENCE_EXTRA_COLUMNS = [
    "reference_filename",
    "reference_start_s",
    "strength",
    "reference_confidence",
    "reference_ceiling",
    "reference_sha256",
]
BACKGROUND_COLUMNS = ["background_file", "background_offset_s", "background_snr_db"]  # only with --background
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
    "bandwidth_hz",
    "reference_start_s",
    "reference_confidence",
    "reference_ceiling",
    "reference_sha256",
    *SPECIES_COLUMNS,
}


class NothingToExport(ValueError):
    """The selection holds no clip to export (every one failed the gate)."""


class ExportError(ValueError):
    """The output cannot be exported as asked; the message names the column and rows."""


@dataclass(frozen=True)
class ExportConfig:
    """How `birdgen-ray export` writes; its fields are the command's options (fields.py)."""

    audio_format: str = option("ogg", "Audio files (ogg = Vorbis, as BirdCLEF).", choices=AUDIO_FORMATS)
    # BirdCLEF's rate; clips at another rate are resampled (soxr)
    sample_rate: int = option(32_000, "Rate of the written files; other rates are resampled.", min=8_000)
    layout: str = option(
        "2024",
        "Metadata columns: 2024 (= 2023, train_metadata.csv) or 2025 (train.csv, with 'collection').",
        choices=EXPORT_LAYOUTS,
    )
    include_failed: bool = option(False, "Also export clips that failed the quality gate (= --verdict any).")
    verdict: str = option(
        "pass", "Keep clips with this verdict: pass (the gate), any, fail, or one reason such as fail:species."
    )
    species_threshold: SpeciesThreshold | None = option(
        None,
        "Keep only clips BirdNET heard as their class at X (0-1), or at a share of the class's band ceiling (0.5x).",
        flags=("--min-species-confidence",),
        cli_type=str,
        parse=parse_species_threshold,
        metavar="X",
        default_text="off",
    )
    background: str | None = option(
        None,
        "Mix each clip over a random window of these soundscapes: a folder, or a CSV/Parquet with a 'path' column.",
        metavar="FOLDER|FILE",
        default_text="off",
    )
    snr_db: tuple[float, float] = ranged(
        (3.0, 15.0), "With --background: SNR in dB, drawn per clip from lo:hi.", parse_snr
    )
    seed: int = option(0, "With --background: decides each clip's soundscape, offset and SNR.", min=0)
    labels: tuple[str, ...] = listed(
        "Only this class (repeat, or comma-separate, for more).", metavar="LABEL", flags=("--label",)
    )
    author: str = "birdgen-ray"
    license: str = option("", "Text for the 'license' column (the license of the model's outputs).")
    rating: float = option(
        0.0,
        "Value of the 'rating' column (Xeno-canto 0-5, 0 = not rated); pipelines that keep rating >= N drop 0.",
        min=0.0,
        max=5.0,
    )
    workers: int = option(0, "Encoding threads.", min=0, default_text="one per CPU core")

    def __post_init__(self) -> None:
        if self.audio_format not in AUDIO_FORMATS:
            raise ExportError(f"audio format must be one of {sorted(AUDIO_FORMATS)}, got {self.audio_format!r}")
        if self.layout not in EXPORT_LAYOUTS:
            raise ExportError(f"layout must be one of {sorted(EXPORT_LAYOUTS)}, got {self.layout!r}")
        if self.sample_rate < 8_000:
            raise ExportError(f"sample rate must be >= 8000 Hz, got {self.sample_rate}")
        if self.include_failed:  # the older spelling of verdict "any"
            if self.verdict not in ("pass", "any"):
                raise ExportError(
                    f"--include-failed means --verdict any; give one of them, not also --verdict {self.verdict}"
                )
            object.__setattr__(self, "verdict", "any")


@dataclass
class ExportResult:
    metadata_csv: Path
    audio_dir: Path
    exported: int
    skipped_failed: int  # clips whose verdict was not the one asked for
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> clips the filters left out


def export_birdclef(
    out: str | Output,
    dest: str | Path,
    config: ExportConfig = ExportConfig(),
    storage_options: dict[str, Any] | None = None,
) -> ExportResult:
    """Write every selected clip as DEST/train_audio/<label>/<clip_id>.<ext> plus the metadata CSV."""
    # 1. the backgrounds first: an unreadable one is named before any work
    backgrounds = _backgrounds(config)
    # 2. the index, its species columns filled in from `verify OUT`'s sidecars
    output = as_output(out, storage_options)
    index = open_index(output)
    # Only the columns the export uses: the per-row settings JSON alone would be most of the memory.
    index = index.select([c for c in index.column_names if c in EXPORT_INDEX_COLUMNS])
    if config.labels:
        try:
            index = select_labels(index, config.labels, output.uri)
        except ValueError as exc:
            raise ExportError(str(exc)) from None
    rows = sorted(_with_species(output, index).to_pylist(), key=lambda r: (r["label"], r["clip_id"]))
    _check_labels(rows, output.uri)
    if config.species_threshold is not None and all(r["species_confidence"] is None for r in rows):
        raise ExportError(
            f"--min-species-confidence: no clip of {output.uri} has a species score (it was made without "
            f"--verify); run `birdgen-ray verify {output.uri}` first"
        )
    # 3. the filters, each counting what it left out
    kept, left_out = select_rows(rows, config)
    if not kept:  # a training job fed from a header-only CSV would quietly get no synthetic data
        reason = _nothing_left(rows, left_out, config)
        raise NothingToExport(f"nothing to export from {output.uri}{reason}; nothing was written")
    dest = Path(dest)
    audio_dir = dest / AUDIO_DIR
    for label in sorted({r["label"] for r in kept}):
        (audio_dir / label).mkdir(parents=True, exist_ok=True)

    # 4. decode, mix, resample, encode: one clip per task
    def export_one(row: dict) -> dict:
        filename = f"{row['label']}/{row['clip_id']}.{config.audio_format}"
        audio, rate = decode_wav(read_clip_bytes(output, row))
        audio = resample(audio, rate, config.sample_rate)
        record = metadata_row(row, filename, config)
        if backgrounds is not None:
            mix = backgrounds.mix(audio, row["clip_id"])
            audio = mix.audio
            record.update({name: getattr(mix, name) for name in BACKGROUND_COLUMNS})
        write_file_atomic(audio_dir / filename, encode_audio(audio, config.sample_rate, config.audio_format))
        return record

    # libsndfile's encoders and the reads release the GIL, so threads encode in parallel.
    with ThreadPoolExecutor(max_workers=config.workers or os.cpu_count() or 1) as pool:
        records = list(pool.map(export_one, kept))
    # 5. the metadata CSV, last
    metadata_csv = dest / METADATA_FILES[config.layout]
    present = {"reference_filename" if c == "reference" else c for c in index.column_names}
    extra = EXTRA_COLUMNS + [c for c in REFERENCE_EXTRA_COLUMNS if c in present]
    extra += BACKGROUND_COLUMNS if backgrounds is not None else []
    write_file_atomic(metadata_csv, _csv_bytes(records, LAYOUTS[config.layout] + extra))
    skipped = left_out.get(_verdict_reason(config), 0)
    return ExportResult(metadata_csv, audio_dir, len(records), skipped, left_out)


def _backgrounds(config: ExportConfig):
    if config.background is None:
        return None
    try:
        return Backgrounds(find_backgrounds(config.background), config.snr_db, config.seed, config.sample_rate)
    except BackgroundError as exc:
        raise ExportError(str(exc)) from None


def _with_species(output: Output, index):
    """The index with species_confidence and species_top1 from its own columns or the sidecars."""
    verified = species_columns(output, index)
    values = (
        {}
        if verified is None
        else dict(zip(verified["clip_id"].to_pylist(), zip(*(verified[c].to_pylist() for c in SPECIES_COLUMNS))))
    )
    clip_ids = index["clip_id"].to_pylist()
    for position, field_ in enumerate(SPECIES_FIELDS):
        column = [values[c][position] if c in values else None for c in clip_ids]
        if field_.name in index.column_names:
            index = index.drop_columns([field_.name])
        index = index.append_column(field_, pa.array(column, field_.type))
    return index


def _nothing_left(rows: list[dict], left_out: dict[str, int], config: ExportConfig) -> str:
    """Why no clip is left: which filters took them away."""
    if not rows:
        return ""
    if len(left_out) == 1:
        (why,) = left_out
        hint = " (see --include-failed)" if why == _verdict_reason(config) and config.verdict == "pass" else ""
        return f": all {len(rows)} selected clips {why}{hint}"
    return f": of {len(rows)} selected clips, " + ", ".join(f"{n} {why}" for why, n in left_out.items())


def verdict_matches(verdict: str, wanted: str) -> bool:
    """'pass' matches 'pass'; 'fail' matches every 'fail:<reasons>'; 'fail:species' any verdict naming it."""
    if verdict == wanted or wanted == "any":
        return True
    if ":" not in wanted:
        return verdict.startswith(wanted + ":")
    kind, reasons = wanted.split(":", 1)
    return verdict.startswith(kind + ":") and set(reasons.split(",")) <= set(verdict.split(":", 1)[1].split(","))


def _verdict_reason(config: ExportConfig) -> str:
    return "failed the quality gate" if config.verdict == "pass" else f"had another verdict than {config.verdict!r}"


def select_rows(rows: list[dict], config: ExportConfig) -> tuple[list[dict], dict[str, int]]:
    """The rows the export keeps, and per reason how many each filter left out (in filter order)."""
    filters = []
    if config.verdict != "any":
        filters.append((_verdict_reason(config), lambda r: verdict_matches(r["verdict"], config.verdict)))
    threshold = config.species_threshold
    if threshold is not None:
        of_ceiling = " of the class ceiling" if threshold.relative else ""
        filters.append(
            (
                f"were heard below species confidence {threshold}{of_ceiling}",
                lambda r: threshold.passes(r.get("species_confidence"), r.get("reference_ceiling")),
            )
        )
    # fail:species clips of a run with --drop-species-failures have no audio to export
    filters.append(("have no audio (--drop-species-failures)", has_audio))
    left_out: dict[str, int] = {}
    for reason, wanted_row in filters:
        kept = [r for r in rows if wanted_row(r)]
        if len(kept) < len(rows):
            left_out[reason] = len(rows) - len(kept)
        rows = kept
    return rows, left_out


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
        "bandwidth_hz": row.get("bandwidth_hz"),
        "species_confidence": row.get("species_confidence"),
        "species_top1": row.get("species_top1") or "",
        "reference_filename": row.get("reference"),
        **{name: row.get(name) for name in REFERENCE_EXTRA_COLUMNS[1:]},
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
