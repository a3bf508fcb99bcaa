"""Reading a lab CSV row by row, keeping physical row numbers for messages.

pandas silently turns a row with one field too many into an index shift and
merges blank rows into NaN; scientists then get numbers from the wrong
column. Reading with the csv module keeps each row's own number and lets one
malformed row be reported while the rest proceed.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ace_assets.catalog.cells import preview
from ace_assets.errors import AceInputError

#: Longest cell accepted (characters). The longest real cells are comments and
#: channel lists, well under 1 KiB; a longer one is a paste accident or junk.
MAX_CELL_CHARS = 64 * 1024
_FIELD_LIMIT_LOCK = threading.Lock()
_UNDECODED = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)


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
    """Rows of a CSV as dicts keyed by the header text; problems reported per row.

    Only a file that cannot be read at all, or whose header is unusable, raises.
    Everything else - a shifted row, an oversized cell, a NUL byte, bytes that
    are not text - costs that row alone, named by row and column.
    """
    path = Path(path)
    if not path.is_file():
        raise AceInputError(
            "file not found (expected a CSV with one row per line number)", file=path
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AceInputError(f"cannot be read ({exc.strerror or exc})", file=path) from None
    text = decode_csv_bytes(data, path)
    records = iter(_records(text))
    try:
        _, header = next(records)
    except StopIteration:
        raise AceInputError("file is empty (expected a header row)", file=path) from None
    if isinstance(header, csv.Error):
        raise AceInputError(f"header row is not CSV ({header})", file=path, row=1)
    table = RawTable(file=str(path), header=[])
    header = [_header_cell(h, index, table) for index, h in enumerate(header)]
    table.header = header
    keys = [normalize_header(h) for h in header]
    if normalize_header(key_column) not in keys:
        raise AceInputError(
            f"no '{key_column}' column in the header "
            f"(found: {', '.join(preview(h, 40) for h in header if h)})",
            file=path,
            row=1,
            column=key_column,
        )
    key_index = keys.index(normalize_header(key_column))
    seen_dupes = {k for k in keys if keys.count(k) > 1 and k}
    if seen_dupes:
        raise AceInputError(f"duplicate header columns: {sorted(seen_dupes)}", file=path, row=1)

    def report(
        number: int, fields: list[str], column: str | None, message: str, severity: str = "error"
    ) -> None:
        line = _maybe_int(fields[key_index]) if len(fields) > key_index else None
        table.problems.append(RowProblem(str(path), number, line, column, message, severity))

    for number, fields in records:
        if isinstance(fields, csv.Error):
            report(number, [], None, f"row is not valid CSV ({fields}); the row is skipped")
            continue
        if not any(f.strip() for f in fields):
            continue  # blank spreadsheet row
        if len(fields) != len(header):
            extra = fields[len(header) :]
            if len(fields) > len(header) and not any(f.strip() for f in extra):
                fields = fields[: len(header)]  # trailing empty cells from a spreadsheet
            else:
                report(
                    number,
                    fields,
                    None,
                    f"row has {len(fields)} fields but the header has {len(header)}; "
                    "cells would land in the wrong columns, so the row is skipped",
                )
                continue
        rejected = False
        for index, cell in enumerate(fields):
            fields[index], message, severity = check_cell(cell)
            if message is not None:
                report(number, fields, header[index], message, severity)
                rejected = rejected or severity == "error"
        if not rejected:
            table.rows.append(RawRow(row=number, cells=dict(zip(header, fields, strict=True))))
    return table


def decode_csv_bytes(data: bytes, path: Path) -> str:
    """UTF-8 text; bytes that are not UTF-8 stay as surrogate escapes for :func:`check_cell`.

    Decoding per cell rather than per file means one pasted Windows-1252 cell
    does not turn every other cell of the file into mojibake, and a cell of
    binary junk costs its row, not the file.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise AceInputError(
            "file is UTF-16 text (Excel's 'Unicode Text'); save it as 'CSV UTF-8 (Comma delimited)'",
            file=path,
        )
    data = data.removeprefix(codecs.BOM_UTF8)
    return data.decode("utf-8", "surrogateescape")


def check_cell(cell: str) -> tuple[str, str | None, str]:
    """(cell, problem, severity): the cell as it will be used, and why it is doubtful.

    Bytes that are not UTF-8 but are Windows-1252 text (what Excel's plain "CSV"
    export writes on a European Windows PC: ``µ``, ``ü``, ``°``) are read as
    Windows-1252 with a warning and the row is kept; a lab would not expect an
    accented comment to stop a recording from being processed. Bytes that are
    neither, a NUL byte, or a cell over :data:`MAX_CELL_CHARS` reject the row.
    """
    if len(cell) > MAX_CELL_CHARS:
        return (
            "",
            f"cell holds {len(cell)} characters, more than the {MAX_CELL_CHARS} a catalog "
            "cell may hold (a paste accident?); shorten it, the row is skipped",
            "error",
        )
    if "\x00" in cell:
        return (
            cell,
            f"cell holds a NUL byte (character {cell.index(chr(0)) + 1}: "
            f"'{preview(cell)}'); retype the cell, the row is skipped",
            "error",
        )
    where = _UNDECODED.search(cell)
    if where is None:
        return cell, None, "ok"
    try:
        fixed = _UNDECODED.sub(lambda m: bytes([ord(m[0]) - 0xDC00]).decode("cp1252"), cell)
    except UnicodeDecodeError:
        return (
            cell,
            f"invalid UTF-8 bytes (0x{ord(where[0]) - 0xDC00:02X} at character "
            f"{where.start() + 1}: '{preview(cell)}'); save the CSV as UTF-8 "
            "(Excel: 'CSV UTF-8 (Comma delimited)'), the row is skipped",
            "error",
        )
    return (
        fixed,
        f"bytes that are not UTF-8 were read as Windows-1252: '{preview(fixed)}'; save the "
        "CSV as UTF-8 (Excel: 'CSV UTF-8 (Comma delimited)') so nothing is guessed",
        "warning",
    )


def _header_cell(cell: str, index: int, table: RawTable) -> str:
    cell, message, severity = check_cell(cell.replace("\ufeff", ""))
    if message is not None:
        column = f"column {index + 1}"
        table.problems.append(RowProblem(table.file, 1, None, column, message, "warning"))
        if severity == "error":
            cell = _UNDECODED.sub("\ufffd", cell.replace("\x00", ""))[:200]
    return cell.strip()


def _records(text: str) -> Iterator[tuple[int, list[str] | csv.Error]]:
    """(row number, cells or the parse error) per CSV record; a quoted newline stays in its cell.

    The csv module's field limit (128 KiB) is process-wide; it is raised only
    while this file is parsed, under a lock so concurrent readers never restore
    it under each other, and oversized cells are then reported by
    :func:`check_cell` against their row and column.
    """
    out: list[tuple[int, list[str] | csv.Error]] = []
    with _FIELD_LIMIT_LOCK:
        previous = csv.field_size_limit()
        csv.field_size_limit(max(previous, len(text) + 1))
        try:
            reader = csv.reader(io.StringIO(text, newline=""))
            number = 0
            while True:
                number += 1
                try:
                    out.append((number, next(reader)))
                except StopIteration:
                    break
                except csv.Error as exc:
                    out.append((number, exc))
        finally:
            csv.field_size_limit(previous)
    return iter(out)


def _maybe_int(text: str) -> int | None:
    try:
        value = float(text.strip())
        return int(value) if value.is_integer() and value >= 0 else None
    except (ValueError, OverflowError):
        return None
