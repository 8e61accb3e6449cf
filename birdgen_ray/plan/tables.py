"""Read a CSV or Parquet file into a table of strings that knows where each row came from.

CSV is strict UTF-8 (a BOM is allowed); ragged rows and non-UTF-8 cells are errors. Every problem
names the file, the column and the lines (CSV, 1-based, header is line 1) or rows (Parquet,
0-based), and all problems of a file are reported at once.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

_SURROGATE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape


class InputError(ValueError):
    """Bad input data. `problems` lists one readable line per problem."""

    def __init__(self, path: str | Path, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        # one problem, one line; several, one line each under the file's name
        joined = problems[0] if len(problems) == 1 else "\n  " + "\n  ".join(problems)
        super().__init__(f"bad input {self.path}: {joined}".replace(": \n", ":\n"))


@dataclass
class RawTable:
    """A CSV or Parquet file as strings; `positions[i]` is row i's line (CSV) or row number (Parquet)."""

    path: str
    columns: list[str]  # lower-cased, stripped header names
    rows: list[list[str]]
    positions: list[int]
    unit: str  # "line" or "row"
    header: list[str] | None = None  # the column names as the file spells them (stripped)

    def column(self, *names: str) -> int | None:
        for name in names:
            if name in self.columns:
                return self.columns.index(name)
        return None

    def spelled(self, column: str) -> str:
        """A column's name as the file spells it ('SPECIES_CODE' for 'species_code')."""
        if self.header and column in self.columns:
            return self.header[self.columns.index(column)]
        return column

    @property
    def names(self) -> list[str]:
        return list(self.header or self.columns)

    def where(self, column: str, positions: list[int]) -> str:
        return f"column '{self.spelled(column)}' {_positions(self.unit, positions)}"


def _positions(unit: str, positions: list[int], limit: int = 10) -> str:
    shown = ", ".join(map(str, positions[:limit]))
    more = f" and {len(positions) - limit} more" if len(positions) > limit else ""
    return f"{unit}{'s' if len(positions) > 1 else ''} {shown}{more}"


def read_table(path: str | Path) -> RawTable:
    """Read a CSV (strict UTF-8, BOM allowed) or Parquet file into strings; empty cells are ''."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, ["file not found"])
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(path)
    return _read_csv(path)


def _read_parquet(path: Path) -> RawTable:
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(path, [f"not a readable Parquet file: {exc}"]) from None
    header = [name.strip() for name in table.column_names]
    columns = [name.lower() for name in header]
    data = [table.column(i).to_pylist() for i in range(table.num_columns)]
    rows = [["" if v is None else str(v) for v in values] for values in zip(*data)]
    return RawTable(str(path), columns, rows, list(range(len(rows))), "row", header)


def _read_csv(path: Path) -> RawTable:
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise InputError(path, ["the file is empty (no header line)"])
    columns = [name.strip().lower() for name in header]
    spelled = [name.strip() for name in header]
    rows: list[list[str]] = []
    positions: list[int] = []
    ragged: list[int] = []
    try:
        for record in reader:
            if not record or record == [""]:
                continue  # blank line
            if len(record) != len(columns):
                ragged.append(reader.line_num)
                record = (record + [""] * len(columns))[: len(columns)]
            rows.append([cell.strip() for cell in record])
            positions.append(reader.line_num)
    except csv.Error as exc:
        raise InputError(path, [f"line {reader.line_num}: not valid CSV: {exc}"]) from None
    table = RawTable(str(path), columns, rows, positions, "line", spelled)
    problems = []
    if ragged:
        problems.append(f"{_positions('line', ragged)}: field count differs from the header's {len(columns)} columns")
    if _SURROGATE.search(text):
        problems += _non_utf8_cells(table, header)
    if problems:
        raise InputError(path, problems)
    return table


def _non_utf8_cells(table: RawTable, header: list[str]) -> list[str]:
    problems = [f"header: column name {name!r} is not UTF-8" for name in header if _SURROGATE.search(name)]
    bad: dict[str, list[int]] = {}
    for row, pos in zip(table.rows, table.positions):
        for name, cell in zip(table.columns, row):
            if _SURROGATE.search(cell):
                bad.setdefault(name, []).append(pos)
    problems += [f"{table.where(name, lines)}: not UTF-8 text (save the file as UTF-8)" for name, lines in bad.items()]
    return problems
