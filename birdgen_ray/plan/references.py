"""`plan --references ROOT`: give each synthetic row of a class one of the class's own recordings.

ROOT is BirdCLEF's `train_audio/` (or a folder holding it), laid out `<label>/<file>`, local or on
object storage, or a CSV table with `label,path` columns (paths relative to the table's folder, or
absolute). For every row of a class with recordings:
  1. `reference` is the recording's path relative to ROOT (`reference_root` holds ROOT);
  2. which windows: when the class maps to a BirdNET label (verify/species.py) and the birdnet extra
     is installed, each recording's K best 3 s windows for the class at or above the confidence
     floor (plan/reference_windows.py; scores cached by the file's SHA-256), the row's window
     centred on it, `reference_confidence` its confidence; a recording without such a window (one
     warning line names it), a class BirdNET does not know, or a plan made without the extra takes
     the `duration_s` window with the most energy (`reference_confidence` null);
  3. rows go round-robin over (recording, window) in sorted recording order, each recording's best
     window first: every recording is used before any repeats, every best window before a second;
  4. `strength` is the --strength value, or, for a range lo:hi, lo + (hi - lo) u with u drawn from
     sha256(plan seed, label, take): deterministic, independent of the other rows.
`reference_ceiling` is the class's mean confidence on its chosen windows band-limited to the model's
band (what AudioLDM2's 16 kHz audio could keep at best). Classes without recordings keep text-only
rows (null reference columns). Recordings that cannot be read, are shorter than 0.5 s or are silent are
all named, with their paths, before anything is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import posixpath
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from birdgen_ray.birdclef import AUDIO_DIR
from birdgen_ray.config import parse_range
from birdgen_ray.fields import option, ranged, storage_options_field
from birdgen_ray.io.audio import AUDIO_SUFFIXES, AudioReadError
from birdgen_ray.io.recordings import (
    Recording,
    load_recording,
    loudest_window_start,
    reference_problem,
    reference_uri,
)
from birdgen_ray.plan.reference_windows import MODEL_BAND_HZ, best_windows, clip_start, default_cache_dir, window_scores
from birdgen_ray.plan.schema import make_clip_id
from birdgen_ray.plan.tables import InputError

REFERENCE_SCHEMA = pa.schema(
    [
        ("reference", pa.string()),
        ("reference_root", pa.string()),
        ("reference_start_s", pa.float64()),
        ("strength", pa.float64()),
        # BirdNET's confidence in the class on the row's 3 s window (null: picked by energy)
        ("reference_confidence", pa.float64()),
        # the class's ceiling: mean confidence on its chosen windows band-limited to the model's band
        ("reference_ceiling", pa.float64()),
    ]
)


def parse_strength(text: str, flag: str = "--strength") -> tuple[float, float]:
    """'0.5' or '0.3:0.7' -> (lo, hi) within [0, 1]; ValueError names the option."""
    return parse_range(text, flag, 0.0, 1.0)


@dataclass(frozen=True)
class ReferenceOptions:
    # train_audio folder, a folder holding it, or a label,path CSV (local or fsspec URI)
    root: str = option(
        help="Start each class's clips from its own recordings (SDEdit): BirdCLEF's train_audio/<label>/<file> "
        "(local or s3://), or a CSV of label,path. Classes without recordings stay text-only.",
        flags=("--references",),
        metavar="ROOT",
    )
    strength: tuple[float, float] = ranged(  # lo == hi: one strength for every row
        (0.5, 0.5),
        "With --references: 0 keeps the recording, 1 starts from noise; lo:hi samples per row.",
        parse_strength,
        metavar="S",
    )
    windows_per_recording: int = option(
        3, "With --references: BirdNET's best 3 s windows of the class per recording (birdnet extra).", min=1
    )
    min_confidence: float = option(
        0.3,
        "With --references: a window needs this BirdNET confidence in its class; else: loudest window.",
        flags=("--min-reference-confidence",),
        min=0.0,
        max=1.0,
    )
    storage_options: dict[str, Any] = storage_options_field()
    cache_dir: str | None = None  # window scores by file SHA-256; None: default_cache_dir()

    def __post_init__(self) -> None:
        if self.windows_per_recording < 1:
            raise ValueError(f"--windows-per-recording must be >= 1, got {self.windows_per_recording}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"--min-reference-confidence must be in [0, 1], got {self.min_confidence}")


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
    if fs.isdir(posixpath.join(path, AUDIO_DIR)):
        root, path = join(root, AUDIO_DIR), posixpath.join(path, AUDIO_DIR)
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
    picker = _WindowPicker(root, options, _species_targets(table))
    rows_of = Counter(labels)
    columns: dict[str, list] = {name: [] for name in REFERENCE_SCHEMA.names}
    for label, take, duration in zip(labels, takes, durations):
        paths = recordings.get(label)
        slots = picker.slots(label, paths, duration, rows_of[label]) if paths else []
        if not slots:
            for name in REFERENCE_SCHEMA.names:
                columns[name].append(None)
            continue
        relative, start_s, confidence = slots[take % len(slots)]
        columns["reference"].append(relative)
        columns["reference_root"].append(root)
        columns["reference_start_s"].append(start_s)
        columns["strength"].append(row_strength(options.strength, seed, label, take))
        columns["reference_confidence"].append(confidence)
        columns["reference_ceiling"].append(picker.ceilings.get(label))
    if picker.problems:
        raise InputError(options.root, picker.problems)
    planned = set(labels)
    summary = {
        "root": root,
        "strength": list(options.strength),
        "classes_with_recordings": sorted(planned & set(recordings)),
        "classes_text_only": sorted(planned - set(recordings)),
        "recordings_used": len(picker.loaded),
        **picker.summary(),
    }
    for name in REFERENCE_SCHEMA.names:
        table = table.append_column(
            REFERENCE_SCHEMA.field(name), pa.array(columns[name], REFERENCE_SCHEMA.field(name).type)
        )
    return _with_reference_clip_ids(table), summary


def _species_targets(table: pa.Table) -> dict[str, int] | None:
    """label -> BirdNET label index for the classes BirdNET knows; None without the birdnet extra."""
    from birdgen_ray.verify.birdnet import MissingExtra, birdnet_labels, require_extra
    from birdgen_ray.verify.species import plan_species

    try:
        require_extra()
        return dict(plan_species(table, birdnet_labels()).index)
    except MissingExtra:
        return None


class _WindowPicker:
    """A class's slots, (recording, start, confidence), in the order its takes use them: round-robin
    over its recordings, each recording's best species window first, then its second, ..."""

    def __init__(self, root: str, options: ReferenceOptions, targets: dict[str, int] | None):
        self.root, self.options, self.targets = root, options, targets
        self.loaded: dict[str, Recording | None] = {}
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.chosen: dict[str, list[dict]] = {}  # label -> the species windows its rows use
        self.ceilings: dict[str, float] = {}  # label -> mean band-limited confidence of those windows
        self._slots: dict[tuple[str, float], list[tuple[str, float, float | None]]] = {}

    def slots(self, label: str, paths: list[str], duration: float, rows: int) -> list[tuple[str, float, float | None]]:
        key = (label, duration)
        if key not in self._slots:
            self._slots[key] = self._pick(label, paths[: min(len(paths), rows)], duration)
        return self._slots[key]

    def _pick(self, label: str, paths: list[str], duration: float) -> list[tuple[str, float, float | None]]:
        target = None if self.targets is None else self.targets.get(label)
        per_recording, chosen = [], []
        for relative in paths:
            recording = self._load(relative)
            if recording is None:
                continue
            loudest = [(relative, loudest_window_start(recording.audio, recording.rate, duration), None)]
            if target is None:
                per_recording.append(loudest)
                continue
            scores = window_scores(recording, self.options.storage_options, self._cache_dir())
            windows = best_windows(scores, target, self.options.windows_per_recording, self.options.min_confidence)
            if not windows:
                self.warnings.append(
                    f"warning: {recording.uri}: no 3 s window where BirdNET hears {label} at >= "
                    f"{self.options.min_confidence:g} (best {float(scores.full_band[:, target].max()):.2f}); "
                    "its loudest window is used"
                )
            per_recording.append(
                [(relative, clip_start(w, duration, scores.duration_s), w.confidence) for w in windows] or loudest
            )
            chosen += [{"reference": relative, "start_s": w.start_s, **asdict(w)} for w in windows]
        slots = [r[j] for j in range(max(map(len, per_recording), default=0)) for r in per_recording if j < len(r)]
        if chosen:
            self.chosen[label] = chosen
            self.ceilings[label] = round(sum(c["band_limited"] for c in chosen) / len(chosen), 4)
        return slots

    def _load(self, relative: str) -> Recording | None:
        if relative not in self.loaded:
            self.loaded[relative] = _check(reference_uri(self.root, relative), self.options, self.problems)
        return self.loaded[relative]

    def _cache_dir(self) -> Path:
        return Path(self.options.cache_dir) if self.options.cache_dir else default_cache_dir()

    def summary(self) -> dict:
        return {
            "window_choice": "energy" if self.targets is None else "birdnet",
            "windows_per_recording": self.options.windows_per_recording,
            "min_reference_confidence": self.options.min_confidence,
            "species_windows": self.chosen,
            "reference_ceiling": self.ceilings,
            "model_band_hz": MODEL_BAND_HZ,
            "warnings": self.warnings,
        }


def _with_reference_clip_ids(table: pa.Table) -> pa.Table:
    """Give reference rows their own ids (make_clip_id keys on the reference); text-only rows keep theirs."""
    names = ("label", "prompt", "negative_prompt", "seed", "duration_s", "reference", "reference_start_s", "strength")
    ids = [
        make_clip_id(*row) if row[5] is not None else clip_id
        for clip_id, *row in zip(table["clip_id"].to_pylist(), *(table[n].to_pylist() for n in names))
    ]
    position = table.schema.get_field_index("clip_id")
    return table.set_column(position, table.schema.field("clip_id"), pa.array(ids, pa.string()))


def _check(uri: str, options: ReferenceOptions, problems: list[str]) -> Recording | None:
    """The recording, or None with its problem appended."""
    try:
        recording = load_recording(uri, options.storage_options)
    except AudioReadError as exc:
        problems.append(f"reference {exc}")
        return None
    problem = reference_problem(recording)
    if problem:
        problems.append(f"reference {problem}")
        return None
    return recording


def summary_lines(summary: dict) -> list[str]:
    """For the plan's summary: which classes use references, how their windows were picked, and
    per class the species windows chosen with their confidences."""
    text_only = summary["classes_text_only"]
    shown = ", ".join(text_only[:10]) + (f" and {len(text_only) - 10} more" if len(text_only) > 10 else "")
    lo, hi = summary["strength"]
    line = (
        f"references: {len(summary['classes_with_recordings'])} classes from {summary['recordings_used']} "
        f"recordings under {summary['root']} (strength {lo:g}{'' if lo == hi else f':{hi:g}'})"
    )
    if text_only:
        line += f"; {len(text_only)} without recordings fall back to text-only: {shown}"
    lines = [line]
    if summary.get("window_choice") == "energy":
        lines.append(
            "reference windows: picked by loudness, not by species (the birdnet extra is not installed: "
            "pip install 'birdgen-ray[birdnet]')"
        )
    lines += summary.get("warnings", [])
    ceilings = summary.get("reference_ceiling", {})
    if summary.get("species_windows"):
        lines.append(
            f"reference windows where BirdNET hears the class (best {summary['windows_per_recording']} per "
            f"recording at >= {summary['min_reference_confidence']:g}; ceiling: their mean confidence "
            "band-limited to the model's band):"
        )
    for label, windows in sorted(summary.get("species_windows", {}).items()):
        shown_windows = ", ".join(
            f"{w['reference'].rsplit('/', 1)[-1]} {w['start_s']:g}-{w['start_s'] + 3:g} s {w['confidence']:.2f}"
            for w in windows[:6]
        )
        more = f" and {len(windows) - 6} more" if len(windows) > 6 else ""
        lines.append(
            f"  {label}: {shown_windows}{more}; ceiling {ceilings[label]:.2f} at {summary['model_band_hz'] // 1000} kHz"
        )
    return lines
