"""What an evaluation reads: the real recordings (a BirdCLEF folder or a label,path table) and our
synthetic outputs' indexes. Every problem names the file, column and lines; all are reported at once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from birdgen_ray.birdclef import AUDIO_DIR, LABEL_COLUMN, METADATA_FILES
from birdgen_ray.index.reader import as_output, open_index
from birdgen_ray.plan.tables import InputError, RawTable, read_table
from birdgen_ray.verify.passing import species_passed

BIRDCLEF_METADATA = tuple(dict.fromkeys(METADATA_FILES.values()))  # train_metadata.csv (2021-2024), train.csv
LABEL_COLUMNS = ("label", LABEL_COLUMN)
PATH_COLUMNS = ("path", "filename")
GROUP_COLUMN = "group"  # optional: recordings that must stay on one side of every fold (same site, copies)
REFERENCE_COLUMN = "reference"  # the real recording a reference-conditioned clip was made from (its path)
REFERENCE_SHA256_COLUMN = "reference_sha256"  # ...and the SHA-256 of its bytes: the key leakage is matched by


@dataclass(frozen=True)
class RealRecording:
    label: str
    path: str  # where the audio is read from
    name: str  # as the table wrote it (BirdCLEF: the filename relative to train_audio/)
    group: str
    where: str  # "train_metadata.csv line 7", for messages


def read_real(real: str | os.PathLike) -> list[RealRecording]:
    """A BirdCLEF folder (metadata + train_audio/) or a CSV/Parquet table with label and path columns."""
    real = Path(real)
    if real.is_dir():
        metadata = next((real / name for name in BIRDCLEF_METADATA if (real / name).is_file()), None)
        if metadata is None:
            raise InputError(real, [f"no {' or '.join(BIRDCLEF_METADATA)} in this folder"])
        return _recordings(read_table(metadata), real / AUDIO_DIR)
    table = read_table(real)  # raises "file not found" for a missing path
    return _recordings(table, real.parent)


def _recordings(table: RawTable, audio_root: Path) -> list[RealRecording]:
    label_at, path_at = table.column(*LABEL_COLUMNS), table.column(*PATH_COLUMNS)
    group_at = table.column(GROUP_COLUMN)
    missing = [f"no '{names[0]}' column (or '{names[1]}')" for names, at in
               ((LABEL_COLUMNS, label_at), (PATH_COLUMNS, path_at)) if at is None]  # fmt: skip
    if missing:
        raise InputError(table.path, missing + [f"columns are: {', '.join(table.columns)}"])
    problems: dict[str, list[int]] = {}
    recordings = []
    file = Path(table.path).name
    for row, position in zip(table.rows, table.positions):
        label, name = row[label_at].strip(), row[path_at].strip()
        if not label:
            problems.setdefault(f"column '{table.columns[label_at]}': empty label at", []).append(position)
            continue
        path = Path(name) if Path(name).is_absolute() else audio_root / name
        if not name or not path.is_file():
            missing_file = f"column '{table.columns[path_at]}': no such audio file under {audio_root} at"
            problems.setdefault(missing_file, []).append(position)
            continue
        group = row[group_at].strip() if group_at is not None and row[group_at].strip() else name
        recordings.append(RealRecording(label, str(path), name, group, f"{file} {table.unit} {position}"))
    if problems:
        raise InputError(table.path, [f"{what} {table.unit}s {_first(at)}" for what, at in problems.items()])
    if not recordings:
        raise InputError(table.path, ["no recordings"])
    return recordings


def _first(positions: list[int], limit: int = 10) -> str:
    more = f" and {len(positions) - limit} more" if len(positions) > limit else ""
    return ", ".join(map(str, positions[:limit])) + more


@dataclass(frozen=True)
class SyntheticOutput:
    name: str  # for tables: the output folder's name (made unique)
    uri: str
    index: pa.Table  # one row per clip of a class the real set has
    storage_options: dict | None = None


def read_synthetic(
    uris: list[str], real_labels: set[str], storage_options: dict | None = None
) -> list[SyntheticOutput]:
    """Each output's index, restricted to classes the real set can test (others cannot be scored)."""
    outputs, names = [], set()
    for uri in uris:
        output = as_output(uri, storage_options)
        index = open_index(output)  # FileNotFoundError names the output when nothing is committed
        index = index.filter(pc.is_in(index["label"], value_set=pa.array(sorted(real_labels), pa.string())))
        if index.num_rows == 0:
            raise ValueError(f"{uri}: none of its classes is in the real set, so nothing of it can be evaluated")
        name = base = Path(uri.rstrip("/")).name or uri
        n = 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.add(name)
        outputs.append(SyntheticOutput(name=name, uri=output.uri, index=index, storage_options=storage_options))
    return outputs


def passed_mask(index: pa.Table) -> list[bool]:
    """Clips that passed the quality gate."""
    return [v == "pass" for v in index["verdict"].to_pylist()]


def verified_mask(output: SyntheticOutput) -> list[bool] | None:
    """Clips BirdNET confirmed as their own species (by `submit --verify` or `verify OUT`), by verify's
    pass rule (verify/passing.py); None when the output was never species-verified."""
    return species_passed(as_output(output.uri, output.storage_options), output.index)


def references(index: pa.Table) -> list[str | None]:
    """Per clip, the real recording it was made from (None for text-only clips)."""
    if REFERENCE_COLUMN not in index.column_names:
        return [None] * index.num_rows
    return [v or None for v in index[REFERENCE_COLUMN].to_pylist()]


def reference_hashes(index: pa.Table) -> list[str | None]:
    """Per clip, the SHA-256 of the real recording's bytes it was made from (None for text-only clips,
    and for outputs written before the index carried `reference_sha256`)."""
    if REFERENCE_SHA256_COLUMN not in index.column_names:
        return [None] * index.num_rows
    return [v or None for v in index[REFERENCE_SHA256_COLUMN].to_pylist()]
