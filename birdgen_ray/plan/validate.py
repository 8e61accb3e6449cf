"""Checking a plan table (plan/schema.py) before any work starts: every problem at once, naming the
column and the (0-based) rows; and reading a plan file, its checksum verified when it has one."""

from __future__ import annotations

import logging

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from birdgen_ray.io.errors import storage_error
from birdgen_ray.io.storage import read_parquet
from birdgen_ray.plan.checksum import CHECKSUM_KEY, checksum_problem
from birdgen_ray.plan.schema import (
    CLIP_ID,
    EXTRA_SCHEMA,
    MAX_DURATION_S,
    OPTIONAL_COLUMNS,
    PLAN_SCHEMA,
    REQUIRED_COLUMNS,
    UNSAFE_LABEL_PROBLEM,
    UNSAFE_LABEL_RE2,
    PlanError,
    make_clip_id,
)
from birdgen_ray.rows import DEFAULT_NEGATIVE_PROMPT

log = logging.getLogger(__name__)


def _optional(table: pa.Table, name: str) -> list:
    """A column's values, or None for every row where the plan has no such column."""
    return table[name].to_pylist() if name in table.column_names else [None] * table.num_rows


def _rows(mask: pa.Array | pa.ChunkedArray) -> list[int]:
    """Positions where a boolean (null-free) mask is true."""
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False)).tolist()


def format_rows(rows: list[int], limit: int = 10) -> str:
    shown = ", ".join(map(str, rows[:limit]))
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def _duplicate_ids(clip_ids: pa.Array | pa.ChunkedArray, limit: int = 10) -> list[str]:
    """One problem per id that occurs more than once (its rows), for the first `limit` such ids."""
    counts = pc.value_counts(clip_ids)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
    if len(repeated) == 0:
        return []
    rows_of: dict[str, list[int]] = {}
    for row in _rows(pc.is_in(clip_ids, value_set=repeated)):
        rows_of.setdefault(clip_ids[row].as_py(), []).append(row)
    problems = [
        f"column 'clip_id': duplicate id {cid!r} in {format_rows(rows)}" for cid, rows in list(rows_of.items())[:limit]
    ]
    if len(rows_of) > limit:
        problems.append(f"column 'clip_id': {len(rows_of) - limit} more duplicated ids")
    return problems


def _type_ok(kind: str, typ: pa.DataType) -> bool:
    if kind == "string":
        return pa.types.is_string(typ) or pa.types.is_large_string(typ)
    if kind == "integer":
        return pa.types.is_integer(typ)
    return pa.types.is_integer(typ) or pa.types.is_floating(typ)


def _reference_problems(table: pa.Table) -> list[str]:
    """Null is fine (a text-only row); a value must be in range."""
    problems = []
    ranges = (("strength", 0.0, 1.0), ("reference_start_s", 0.0, float("inf")))
    ranges += (("reference_confidence", 0.0, 1.0), ("reference_ceiling", 0.0, 1.0))
    for col, low, high in ranges:
        if col in table.column_names:
            values = pc.cast(table[col], pa.float64())
            outside = pc.or_kleene(pc.invert(pc.is_finite(values)), pc.less(values, low))
            outside = pc.or_kleene(outside, pc.greater(values, high))
            bad = _rows(pc.fill_null(outside, False))
            if bad:
                problems.append(f"column '{col}': NaN, infinite or outside [{low:g}, {high:g}] in {format_rows(bad)}")
    return problems


def _whole_float_seeds(table: pa.Table, source: str, problems: list[str]) -> pa.Table:
    """A float `seed` column (pandas makes one as soon as a NaN was in it): cast it to int64 when
    every value is a whole number >= 0, saying so; else name the rows that are not."""
    if "seed" not in table.column_names or not pa.types.is_floating(table.schema.field("seed").type):
        return table
    seeds = pc.cast(table["seed"], pa.float64())
    finite = pc.fill_null(pc.is_finite(seeds), False)
    whole = pc.and_(finite, pc.equal(pc.fill_null(pc.floor(seeds), -1.0), pc.fill_null(seeds, -2.0)))
    in_range = pc.and_(whole, pc.fill_null(pc.greater_equal(seeds, 0.0), False))
    bad = _rows(pc.invert(in_range))
    if bad:
        problems.append(
            f"column 'seed': {table.schema.field('seed').type} column with values that are not whole numbers >= 0 "
            f"(null, NaN, infinite, fractional or negative) in {format_rows(bad)}"
        )
        return table
    log.warning(
        "%s: column 'seed' is %s; its values are all whole numbers, cast to int64",
        source,
        table.schema.field("seed").type,
    )
    index = table.column_names.index("seed")
    return table.set_column(index, pa.field("seed", pa.int64()), pc.cast(seeds, pa.int64()))


def _invalid_utf8(table: pa.Table, problems: list[str]) -> set[str]:
    """String columns holding bytes that are not UTF-8, each named with its rows; returns their names."""
    bad_columns = set()
    for field in table.schema:
        if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            continue
        try:
            for chunk in table[field.name].chunks:
                chunk.validate(full=True)
        except pa.ArrowInvalid:
            binary = table[field.name].cast(pa.large_binary()).to_pylist()
            bad = [row for row, value in enumerate(binary) if value is not None and not _is_utf8(value)]
            problems.append(f"column '{field.name}': invalid UTF-8 in {format_rows(bad)}")
            bad_columns.add(field.name)
    return bad_columns


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def validate_plan(table: pa.Table, source: str = "plan") -> pa.Table:
    """Check every rule, then return the plan normalised to PLAN_SCHEMA (+ extra columns).

    Raises PlanError listing all problems; nothing is generated from an invalid plan.
    """
    problems: list[str] = []
    names = set(table.column_names)
    # 1. columns: missing, of the wrong type or not UTF-8 (their value checks are skipped, not the rest)
    table = _whole_float_seeds(table, source, problems)  # pandas makes int columns float after a NaN
    unusable = _column_problems(table, problems, explained={"seed"} if problems else set())
    if table.num_rows == 0:
        raise PlanError(source, problems + ["the plan has no rows"])
    # 2. values, every usable column at once, so one report names them all
    problems += _value_problems(table, unusable)
    if problems:
        raise PlanError(source, problems)
    # 3. clip ids, given or derived from each row's content
    negative = (
        pc.fill_null(table["negative_prompt"], DEFAULT_NEGATIVE_PROMPT)
        if "negative_prompt" in names
        else pa.array([DEFAULT_NEGATIVE_PROMPT] * table.num_rows, pa.string())
    )
    duration = pc.cast(table["duration_s"], pa.float64())
    if "clip_id" in names:
        clip_ids = pc.cast(table["clip_id"], pa.string())
    else:
        clip_ids = _derived_clip_ids(table, negative, duration)
        problems += _duplicate_ids(clip_ids)  # the same row twice
    if problems:
        raise PlanError(source, problems)
    # 4. the plan normalised to PLAN_SCHEMA, its other columns after
    core = pa.table(
        {
            "clip_id": clip_ids,
            "label": pc.cast(table["label"], pa.string()),
            "prompt": pc.cast(table["prompt"], pa.string()),
            "negative_prompt": pc.cast(negative, pa.string()),
            "seed": pc.cast(table["seed"], pa.int64()),
            "duration_s": duration,
        },
        schema=PLAN_SCHEMA,
    )
    for name in table.column_names:
        if name not in core.column_names:
            core = core.append_column(table.schema.field(name), table[name])
    return core


def _column_problems(table: pa.Table, problems: list[str], explained: set[str]) -> set[str]:
    """Append what is wrong with the columns themselves; return the columns whose values cannot be checked."""
    names = set(table.column_names)
    unusable = _invalid_utf8(table, problems)
    for col, kind in REQUIRED_COLUMNS.items():
        if col not in names:
            problems.append(f"column '{col}': missing (required, {kind})")
            unusable.add(col)
        elif not _type_ok(kind, table.schema.field(col).type):
            if col not in explained:  # a float seed column that could not be cast: said already
                problems.append(f"column '{col}': expected {kind}, got {table.schema.field(col).type}")
            unusable.add(col)
    for col, kind in OPTIONAL_COLUMNS.items():
        if col in names and not _type_ok(kind, table.schema.field(col).type):
            problems.append(f"column '{col}': expected {kind}, got {table.schema.field(col).type}")
            unusable.add(col)
    return unusable


def _value_problems(table: pa.Table, unusable: set[str]) -> list[str]:
    """What is wrong with the values of every column that can be checked, by row."""
    problems = []
    for col in ("label", "prompt"):
        if col in unusable:
            continue
        values = table[col]
        empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0)
        bad = _rows(pc.fill_null(pc.or_kleene(pc.is_null(values), empty), True))
        if bad:
            problems.append(f"column '{col}': null or empty in {format_rows(bad)}")
    if "label" not in unusable:
        unsafe = _rows(pc.fill_null(pc.match_substring_regex(table["label"], UNSAFE_LABEL_RE2), False))
        if unsafe:
            problems.append(f"column 'label': {UNSAFE_LABEL_PROBLEM} in {format_rows(unsafe)}")
    if "seed" not in unusable:
        bad = _rows(pc.fill_null(pc.less(table["seed"], 0), True))
        if bad:
            problems.append(f"column 'seed': null or negative in {format_rows(bad)}")
    if "duration_s" not in unusable:
        dur = pc.cast(table["duration_s"], pa.float64())
        out_of_range = pc.or_kleene(pc.less_equal(dur, 0.0), pc.greater(dur, MAX_DURATION_S))
        bad_dur = _rows(pc.fill_null(pc.or_kleene(pc.invert(pc.is_finite(dur)), out_of_range), True))
        if bad_dur:
            problems.append(
                f"column 'duration_s': null, NaN, infinite, <= 0 or > {MAX_DURATION_S:g} s in {format_rows(bad_dur)}"
            )
    names = set(table.column_names)
    problems += _reference_problems(table.drop_columns([c for c in unusable if c in names]))
    if "clip_id" in names and "clip_id" not in unusable:  # given ids: checked with everything else, in one report
        given = pc.cast(table["clip_id"], pa.string())
        bad = _rows(pc.invert(pc.fill_null(pc.match_substring_regex(given, CLIP_ID.pattern), False)))
        if bad:
            problems.append(
                "column 'clip_id': null or not file-name safe ([A-Za-z0-9_-], at most 95 characters) "
                f"in {format_rows(bad)}"
            )
        problems += _duplicate_ids(given)
    return problems


def _derived_clip_ids(table: pa.Table, negative: pa.Array, duration: pa.Array) -> pa.Array:
    """Each row's id from its content: Python per row (a hash), the one step that must be."""
    rows = zip(
        table["label"].to_pylist(),
        table["prompt"].to_pylist(),
        negative.to_pylist(),
        table["seed"].to_pylist(),
        duration.to_pylist(),
        *(_optional(table, name) for name in ("reference", "reference_start_s", "strength")),
    )
    return pa.array([make_clip_id(*row) for row in rows], pa.string())


def _undecodable_names(table: pa.Table) -> str | None:
    try:
        table.schema.names  # noqa: B018 - decoding them is the check
    except UnicodeDecodeError:
        return "a column name is not valid UTF-8"
    return None


def _looks_like_csv(path: str, data: bytes) -> bool:
    """A `.csv` name, or a first line of UTF-8 text with commas."""
    if data[:4] == b"PAR1":
        return False
    if path.lower().endswith((".csv", ".tsv")):
        return True
    first = data[:4096].split(b"\n", 1)[0].rstrip(b"\r").removeprefix(b"\xef\xbb\xbf")
    try:
        return b"," in first and first.decode("utf-8").isprintable()
    except UnicodeDecodeError:
        return False


def read_plan(path: str, storage_options: dict | None = None, allow_extra_columns: bool = False) -> pa.Table:
    """Read and validate a plan file, local or on object storage (fsspec); errors name the file.

    A plan `plan` wrote is verified against its content checksum; any other plan against the
    strict schema (strict_schema_problems)."""
    fs, fs_path = fsspec.core.url_to_fs(path, **(storage_options or {}))
    try:
        with fs.open(fs_path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise PlanError(path, ["file not found"]) from None
    except Exception as exc:  # an unreachable store, a missing bucket, denied: named as the plan's, not the output's
        message = storage_error(exc, path)
        if message is None:
            raise
        raise PlanError(path, [message]) from None
    try:
        table = read_parquet(data)  # not pq.read_table(fh): see read_parquet
    except (pa.ArrowException, OSError) as exc:  # a checksum mismatch, bad compressed data, not Parquet at all
        if _looks_like_csv(path, data):
            raise PlanError(
                path,
                [
                    "this looks like a CSV, not a plan (plans are Parquet): `birdgen-ray plan "
                    f"{path} --target 50 -o plan.parquet` makes a plan from a training set's metadata"
                ],
            ) from None
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PlanError(
            path, [f"corrupt or not a Parquet file ({reason}); write it again with `birdgen-ray plan`"]
        ) from None
    try:
        problem = checksum_problem(table) or _undecodable_names(table)
    except (pa.ArrowException, UnicodeDecodeError) as exc:  # a footer that parses into nonsense
        problem = f"unreadable schema ({type(exc).__name__})"
    if problem:
        raise PlanError(path, [f"corrupt: {problem}; write it again with `birdgen-ray plan`"])
    if CHECKSUM_KEY not in (table.schema.metadata or {}):
        problems = strict_schema_problems(table, allow_extra_columns)
        if problems:
            raise PlanError(path, problems)
    return validate_plan(table, source=path)


def strict_schema_problems(table: pa.Table, allow_extra_columns: bool = False) -> list[str]:
    """A plan from another writer (no checksum): no column beyond those a plan has (a flipped or
    misspelt name is not quietly carried along, its value replaced by a default) unless allowed, and
    the columns `plan` writes beyond the core ones with their exact types."""
    known = {**REQUIRED_COLUMNS, **OPTIONAL_COLUMNS}
    problems = []
    for field in table.schema:
        if field.name in EXTRA_SCHEMA.names:
            expected = EXTRA_SCHEMA.field(field.name).type
            if field.type != expected and not (pa.types.is_large_string(field.type) and expected == pa.string()):
                problems.append(f"column '{field.name}': expected {expected}, got {field.type}")
        elif field.name not in known and not allow_extra_columns:
            problems.append(
                f"column '{field.name}': not a plan column (a misspelt or damaged name?); "
                "pass --allow-extra-columns to carry it into the index"
            )
    return problems
