"""Line numbers: the key that ties both CSVs, the raw data and every partition together."""

from __future__ import annotations

from collections import defaultdict

from ace_assets.catalog.cells import preview
from ace_assets.catalog.csv_table import RawRow, RawTable, RowProblem, normalize_header

KEY = "line number"


def key_header(table: RawTable) -> str:
    return next(h for h in table.header if normalize_header(h) == KEY)


def parse_line_number(text: str) -> int:
    """'3', '3.0' and ' 3 ' are line 3; 'example', '3.5', '-1' are not line numbers."""
    s = text.strip()
    value = float(s)  # ValueError for words
    if not value.is_integer() or value < 0:
        raise ValueError(s)
    return int(value)


def keyed_rows(table: RawTable) -> dict[int, RawRow]:
    """Rows by line number; rows with a bad or duplicated key are reported, not guessed at."""
    header = key_header(table)
    by_line: dict[int, list[RawRow]] = defaultdict(list)
    for raw in table.rows:
        cell = raw.cells.get(header, "")
        try:
            line = parse_line_number(cell)
        except ValueError:
            table.problems.append(
                RowProblem(
                    file=table.file,
                    row=raw.row,
                    line_number=None,
                    column=header,
                    message=f"'{preview(cell.strip())}' is not a line number (expected a non-negative integer)",
                )
            )
            continue
        by_line[line].append(raw)
    out: dict[int, RawRow] = {}
    for line, rows in sorted(by_line.items()):
        if len(rows) > 1:
            where = ", ".join(str(r.row) for r in rows)
            for raw in rows:
                table.problems.append(
                    RowProblem(
                        file=table.file,
                        row=raw.row,
                        line_number=line,
                        column=header,
                        message=f"line number {line} appears on rows {where}; none of them is used",
                    )
                )
            continue
        out[line] = rows[0]
    return out
