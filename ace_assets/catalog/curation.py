"""Headless curation: ``curation.csv`` in project_path lists the components a scientist rejected.

The reference opens a GUI; here curation is data with a history in version
control. Columns: ``line number`` and ``rejected component ids`` (a list such
as ``[3, 7]``). Ids are those of ``miniscope_sources``, which stay stable.
"""

from __future__ import annotations

from pathlib import Path

from ace_assets.catalog.cells import MISSING, CellError, parse_cell
from ace_assets.catalog.csv_table import normalize_header, read_table
from ace_assets.catalog.line_numbers import keyed_rows
from ace_assets.errors import AceInputError

COLUMN = "rejected component ids"


def read_curation(path: str | Path, line_number: int) -> list[int]:
    """Rejected ids of one line; a missing file or row means nothing was rejected."""
    path = Path(path)
    if not path.is_file():
        return []
    table = read_table(path)
    header = next((h for h in table.header if normalize_header(h) == COLUMN), None)
    if header is None:
        raise AceInputError(f"no '{COLUMN}' column", file=path, row=1, column=COLUMN)
    rows = keyed_rows(table)
    bad = [p for p in table.problems if p.line_number == line_number and p.severity == "error"]
    if bad:
        raise AceInputError(bad[0].message, file=path, row=bad[0].row, line=line_number)
    if line_number not in rows:
        return []
    raw = rows[line_number]
    text = raw.cells.get(header, "")
    try:
        value = parse_cell(text)
    except CellError as exc:
        raise AceInputError(
            str(exc), file=path, row=raw.row, line=line_number, column=header
        ) from None
    if value is MISSING or value is None:
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise AceInputError(
            f"'{text}' is not a list of component ids such as [3, 7]",
            file=path,
            row=raw.row,
            line=line_number,
            column=header,
        )
    return sorted(set(value))
