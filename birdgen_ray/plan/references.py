"""`plan --references ROOT`: give each synthetic row of a class one of the class's own recordings.

ROOT is BirdCLEF's `train_audio/` (or a folder holding it), laid out `<label>/<file>`, local or on
object storage, or a CSV table with `label,path` columns (paths relative to the table's folder, or
absolute). For every row of a class with recordings:
  1. `reference` is the recording's path relative to ROOT (`reference_root` holds ROOT);
  2. round-robin over the class's recordings in sorted order: take k uses recording k mod n, so each
     is used before any repeats;
  3. `reference_start_s` is where the `duration_s` window with the most energy starts;
  4. `strength` is the --strength value, or, for a range lo:hi, lo + (hi - lo) u with u drawn from
     sha256(plan seed, label, take): deterministic, independent of the other rows.
Classes without recordings keep text-only rows (null reference columns). Recordings that cannot be
read, are shorter than 0.5 s or are silent are all named, with their paths, before anything is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import posixpath
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from birdgen_ray.io.audio import AUDIO_SUFFIXES, AudioReadError
from birdgen_ray.io.recordings import load_recording, loudest_window_start, reference_problem, reference_uri
from birdgen_ray.plan.schema import make_clip_id
from birdgen_ray.plan.tables import InputError

REFERENCE_SCHEMA = pa.schema(
    [
        ("reference", pa.string()),
        ("reference_root", pa.string()),
        ("reference_start_s", pa.float64()),
        ("strength", pa.float64()),
    ]
)


@dataclass(frozen=True)
class ReferenceOptions:
    root: str  # train_audio folder, a folder holding it, or a label,path CSV (local or fsspec URI)
    strength: tuple[float, float] = (0.5, 0.5)  # lo == hi: one strength for every row
    storage_options: dict[str, Any] = field(default_factory=dict)


def parse_strength(text: str) -> tuple[float, float]:
    """'0.5' or '0.3:0.7' -> (lo, hi) within [0, 1]; ValueError names the option."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not all(0.0 <= p <= 1.0 for p in parts) or parts[0] > parts[1]:
        raise ValueError(
            f"--strength must be a number in [0, 1] or a range lo:hi with 0 <= lo <= hi <= 1, got {text!r}"
        )
    return parts[0], parts[1]


def row_strength(strength: tuple[float, float], seed: int, label: str, take: int) -> float:
    lo, hi = strength
    if lo == hi:
        return lo
    digest = hashlib.sha256(f"birdgen-ray:strength:{int(seed)}:{label}:{int(take)}".encode()).digest()
    return round(lo + (hi - lo) * int.from_bytes(digest[:8], "big") / 2**64, 6)


def find_recordings(options: ReferenceOptions) -> tuple[str, dict[str, list[str]]]:
    """(root the paths are relative to, label -> sorted recording paths)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(options.root, **options.storage_options)
    join = posixpath.join if "://" in options.root else _local_join
    if not fs.exists(path):
        raise InputError(options.root, ["--references: not found"])
    if fs.isfile(path):
        return _read_table(fs, path, options.root)
    root = options.root.rstrip("/")
    if fs.isdir(posixpath.join(path, "train_audio")):
        root, path = join(root, "train_audio"), posixpath.join(path, "train_audio")
    found: dict[str, list[str]] = {}
    for item in fs.find(path):
        relative = posixpath.relpath(item, path)
        parts = relative.split("/")
        if len(parts) == 2 and parts[1].lower().endswith(AUDIO_SUFFIXES):
            found.setdefault(parts[0], []).append(relative)
    if not found:
        raise InputError(options.root, ["--references: no <label>/<recording> files (.ogg, .wav, .flac, .mp3)"])
    return root, {label: sorted(paths) for label, paths in found.items()}


def _local_join(a: str, b: str) -> str:
    import os

    return os.path.join(a, b)


def _read_table(fs, path: str, source: str) -> tuple[str, dict[str, list[str]]]:
    with fs.open(path, "rb") as fh:
        reader = csv.DictReader(io.StringIO(fh.read().decode("utf-8")))
        rows = list(reader)
    if not {"label", "path"} <= set(reader.fieldnames or ()):
        raise InputError(source, ["--references table needs columns 'label' and 'path'"])
    empty = [str(i + 2) for i, r in enumerate(rows) if not (r["label"] or "").strip() or not (r["path"] or "").strip()]
    if empty:
        raise InputError(source, [f"empty label or path on line{'s' if len(empty) > 1 else ''} {', '.join(empty)}"])
    found: dict[str, list[str]] = {}
    for r in rows:
        found.setdefault(r["label"].strip(), []).append(r["path"].strip())
    root = source.rsplit("/", 1)[0] if "/" in source else "."
    return root, {label: sorted(dict.fromkeys(paths)) for label, paths in found.items()}


def add_references(table: pa.Table, options: ReferenceOptions, seed: int) -> tuple[pa.Table, dict]:
    """The plan with the reference columns appended, and a summary for the plan's metadata."""
    root, recordings = find_recordings(options)
    labels, takes = table["label"].to_pylist(), table["take"].to_pylist()
    durations = table["duration_s"].to_pylist()
    loaded, problems = {}, []
    columns: dict[str, list] = {name: [] for name in REFERENCE_SCHEMA.names}
    for label, take, duration in zip(labels, takes, durations):
        paths = recordings.get(label)
        if not paths:
            for name in REFERENCE_SCHEMA.names:
                columns[name].append(None)
            continue
        relative = paths[take % len(paths)]
        if relative not in loaded:
            loaded[relative] = _check(reference_uri(root, relative), options, duration, problems)
        columns["reference"].append(relative)
        columns["reference_root"].append(root)
        columns["reference_start_s"].append(loaded[relative])
        columns["strength"].append(row_strength(options.strength, seed, label, take))
    if problems:
        raise InputError(options.root, problems)
    planned = set(labels)
    summary = {
        "root": root,
        "strength": list(options.strength),
        "classes_with_recordings": sorted(planned & set(recordings)),
        "classes_text_only": sorted(planned - set(recordings)),
        "recordings_used": len(loaded),
    }
    for name in REFERENCE_SCHEMA.names:
        table = table.append_column(
            REFERENCE_SCHEMA.field(name), pa.array(columns[name], REFERENCE_SCHEMA.field(name).type)
        )
    return _with_reference_clip_ids(table), summary


def _with_reference_clip_ids(table: pa.Table) -> pa.Table:
    """Give reference rows their own ids (make_clip_id keys on the reference); text-only rows keep theirs."""
    names = ("label", "prompt", "negative_prompt", "seed", "duration_s", "reference", "reference_start_s", "strength")
    ids = [
        make_clip_id(*row) if row[5] is not None else clip_id
        for clip_id, *row in zip(table["clip_id"].to_pylist(), *(table[n].to_pylist() for n in names))
    ]
    position = table.schema.get_field_index("clip_id")
    return table.set_column(position, table.schema.field("clip_id"), pa.array(ids, pa.string()))


def _check(uri: str, options: ReferenceOptions, duration: float, problems: list[str]) -> float | None:
    """The loudest window's start, or None with the recording's problem appended."""
    try:
        recording = load_recording(uri, options.storage_options)
    except AudioReadError as exc:
        problems.append(f"reference {exc}")
        return None
    problem = reference_problem(recording)
    if problem:
        problems.append(f"reference {problem}")
        return None
    return loudest_window_start(recording.audio, recording.rate, duration)


def summary_line(summary: dict) -> str:
    """For the balance summary: which classes use references and which fall back to text-only."""
    text_only = summary["classes_text_only"]
    shown = ", ".join(text_only[:10]) + (f" and {len(text_only) - 10} more" if len(text_only) > 10 else "")
    lo, hi = summary["strength"]
    line = (
        f"references: {len(summary['classes_with_recordings'])} classes from {summary['recordings_used']} "
        f"recordings under {summary['root']} (strength {lo:g}{'' if lo == hi else f':{hi:g}'})"
    )
    if text_only:
        line += f"; {len(text_only)} without recordings fall back to text-only: {shown}"
    return line
