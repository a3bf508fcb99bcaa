"""Reading a lab CSV row by row, keeping physical row numbers for messages.

pandas silently turns a row with one field too many into an index shift and
merges blank rows into NaN; scientists then get numbers from the wrong
column. Reading with the csv module keeps each row's own number and lets one
malformed row be reported while the rest proceed.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from ace_assets.errors import AceInputError


@dataclass(frozen=True)
class RowProblem:
    """A problem with one row (or one cell), reported, never fatal for other rows."""

    file: str
    row: int  # physical row in the file, header = 1
    line_number: int | None
    column: str | None
    message: str
    severity: str = "error"  # "error": row rejected; "warning": row kept

    def __str__(self) -> str:
        where = [self.file, f"row {self.row}"]
        if self.line_number is not None:
            where.append(f"line number {self.line_number}")
        if self.column:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "row": self.row,
            "line_number": self.line_number,
            "column": self.column,
            "severity": self.severity,
            "message": self.message,
        }


@dataclass
class RawRow:
    row: int
    cells: dict[str, str]


@dataclass
class RawTable:
    file: str
    header: list[str]
    rows: list[RawRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)


def normalize_header(name: str) -> str:
    """Case- and space-insensitive key so 'Box calcium folder ID' matches 'Box Calcium Folder ID'."""
    return re.sub(r"\s+", " ", name.replace("\ufeff", "")).strip().lower()


def read_table(path: str | Path, key_column: str = "line number") -> RawTable:
    """Rows of a CSV as dicts keyed by the header text; structural problems reported per row."""
    path = Path(path)
    if not path.is_file():
        raise AceInputError(
            "file not found (expected a CSV with one row per line number)", file=path
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    reader = csv.reader(text.splitlines())
    try:
        header = next(reader)
    except StopIteration:
        raise AceInputError("file is empty (expected a header row)", file=path) from None
    header = [h.replace("\ufeff", "").strip() for h in header]
    keys = [normalize_header(h) for h in header]
    if normalize_header(key_column) not in keys:
        raise AceInputError(
            f"no '{key_column}' column in the header (found: {', '.join(h for h in header if h)})",
            file=path,
            row=1,
            column=key_column,
        )
    table = RawTable(file=str(path), header=header)
    seen_dupes = {k for k in keys if keys.count(k) > 1 and k}
    if seen_dupes:
        raise AceInputError(f"duplicate header columns: {sorted(seen_dupes)}", file=path, row=1)
    for number, fields in enumerate(reader, start=2):
        if not any(f.strip() for f in fields):
            continue  # blank spreadsheet row
        if len(fields) != len(header):
            extra = fields[len(header) :]
            if len(fields) > len(header) and not any(f.strip() for f in extra):
                fields = fields[: len(header)]  # trailing empty cells from a spreadsheet
            else:
                table.problems.append(
                    RowProblem(
                        file=str(path),
                        row=number,
                        line_number=_maybe_int(fields[0]) if fields else None,
                        column=None,
                        message=(
                            f"row has {len(fields)} fields but the header has {len(header)}; "
                            "cells would land in the wrong columns, so the row is skipped"
                        ),
                    )
                )
                continue
        table.rows.append(RawRow(row=number, cells=dict(zip(header, fields, strict=True))))
    return table


def _maybe_int(text: str) -> int | None:
    try:
        return int(float(text.strip()))
    except ValueError:
        return None
