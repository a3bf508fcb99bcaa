"""Hostile catalog rows for tests: copies of a good row with one cell made unreadable."""

from __future__ import annotations

import csv
import io
from pathlib import Path

#: A placeholder swapped for raw bytes after the row is written, for cells that are not text.
_BYTES = "@@BYTES@@"

#: line -> (column, cell, what the report must say); every cell breaks only its own row.
HOSTILE_EXPERIMENTS: dict[int, tuple[str, str | bytes, str]] = {
    11: ("comments", "x" * 200_000, "200000 characters"),
    12: ("calcium imaging directory", "a/" * 2500, "5000 bytes long"),
    13: ("calcium imaging directory", "miniscope/Demo\x00Rat", "NUL byte"),
    14: ("id", b"Rat\x81\x8d", "invalid UTF-8 bytes (0x81"),
    15: ("calcium imaging directory", "miniscope/" + "d" * 300, "255 (NAME_MAX)"),
    16: ("ephys directory", "ephys/day\x1b1", "control character"),
    17: ("events filename", "E" * 300 + ".nev", "255 (NAME_MAX)"),
}


def records(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def append_rows(
    path: Path, base_line: int, rows: dict[int, tuple[str, str | bytes]]
) -> dict[int, int]:
    """Copies of ``base_line``'s row under new line numbers, one cell replaced in each.

    Returns line -> physical row (header = 1) of each appended row.
    """
    existing = records(path)
    header = existing[0]
    base = next(r for r in existing if r and r[0] == str(base_line))
    data = path.read_bytes().rstrip(b"\r\n") + b"\r\n"
    where = {}
    for offset, (line, (column, value)) in enumerate(rows.items()):
        cells = list(base)
        cells[0] = str(line)
        cells[header.index(column)] = _BYTES if isinstance(value, bytes) else value
        out = io.StringIO()
        csv.writer(out).writerow(cells)
        encoded = out.getvalue().encode("utf-8")
        if isinstance(value, bytes):
            encoded = encoded.replace(_BYTES.encode(), value)
        data += encoded
        where[line] = len(existing) + 1 + offset
    path.write_bytes(data)
    return where


def add_hostile_experiments(project: Path, base_line: int = 2) -> dict[int, int]:
    """Every row of :data:`HOSTILE_EXPERIMENTS` appended to the project's experiments.csv."""
    rows = {n: (column, cell) for n, (column, cell, _) in HOSTILE_EXPERIMENTS.items()}
    return append_rows(project / "experiments.csv", base_line, rows)
