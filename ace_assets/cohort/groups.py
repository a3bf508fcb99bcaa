"""Which group each line belongs to: ``groups.csv`` in the project, else a catalog column.

``groups.csv`` has one row per line: ``group,line number`` (a line in two groups would be
counted twice in a between-group test, so it is refused). Without the file, lines are
grouped by ``systemic drug`` (an empty cell is the group ``none``: no drug given).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ace_assets.catalog.csv_table import read_table
from ace_assets.errors import AceInputError

GROUPS_CSV = "groups.csv"
GROUP_COLUMN, LINE_COLUMN = "group", "line number"
#: the catalog column used when the project has no groups.csv
DEFAULT_COLUMN = "systemic_drug"
NO_DRUG = "none"


def read_groups(path: str | Path) -> dict[int, str]:
    """line number -> group name, from ``groups.csv``; errors name the row and column."""
    table = read_table(path)
    headers = {h.strip().lower(): h for h in table.header}
    for needed in (GROUP_COLUMN, LINE_COLUMN):
        if needed not in headers:
            raise AceInputError(
                f"no '{needed}' column (the header has {table.header}); groups.csv has one "
                "row per line: group,line number",
                file=table.file,
                row=1,
                column=needed,
            )
    if table.problems:
        first = table.problems[0]
        raise AceInputError(first.message, file=table.file, row=first.row, column=first.column)
    groups: dict[int, str] = {}
    for raw in table.rows:
        group = raw.cells.get(headers[GROUP_COLUMN], "").strip()
        text = raw.cells.get(headers[LINE_COLUMN], "").strip()
        if not group and not text:
            continue
        if not group:
            raise AceInputError(
                "empty group name", file=table.file, row=raw.row, column=GROUP_COLUMN
            )
        try:
            line = int(text)
        except ValueError:
            raise AceInputError(
                f"{text!r} is not a line number: expected an integer from experiments.csv",
                file=table.file,
                row=raw.row,
                column=LINE_COLUMN,
            ) from None
        if line in groups and groups[line] != group:
            raise AceInputError(
                f"line {line} is in group '{groups[line]}' and in '{group}': a line belongs to "
                "one group",
                file=table.file,
                row=raw.row,
                column=LINE_COLUMN,
            )
        groups[line] = group
    return groups


def groups_from_column(table: pd.DataFrame, column: str = DEFAULT_COLUMN) -> dict[int, str]:
    """line number -> the line's value in a catalog column (empty: ``none``)."""
    out = {}
    for line, value in zip(table["line_number"], table[column], strict=True):
        text = "" if value is None or pd.isna(value) else str(value).strip()
        out[int(line)] = text or NO_DRUG
    return out
