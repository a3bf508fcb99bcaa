"""CSV tables the lab opens in a spreadsheet, written so no cell runs as a formula.

Text in our tables comes from places we do not control: catalog cells (the experiments
copy), ``.nev`` event strings typed at the rig, channel and component labels. A
spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage
return as a formula (OWASP "CSV injection"), so such a text cell is written with a
leading single quote, which spreadsheets show as text and Python readers keep verbatim.

The rule, and why it is exact:

* only text cells change (in a text column, a cell is judged by the text it is written
  as, so a catalog folder cell ``=cmd|...`` is caught too): a column of numbers (int, float, bool, datetime) is written
  as numbers, negative ones included, and reads back with its dtype;
* a text cell that is a plain decimal number (``-3.5``, ``+2``, ``-1e-3``) is left as it
  is: a spreadsheet reads it as that number, never as a formula (OWASP prefixes these too;
  we keep them so that numeric text round-trips);
* everything else starting with one of the six characters gets the quote, including
  ``-2+3`` and ``+SUM(1)``; header labels follow the same rule.

The file is written all-or-nothing (:func:`ace_assets.io.atomic.atomic_write_text`), so a
reader never sees half a table, whether or not the caller stages its output.
"""

from __future__ import annotations

import re
from numbers import Number
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ace_assets.io.atomic import atomic_write_text

#: First characters a spreadsheet treats as the start of a formula (OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def neutralize_cell(value: Any) -> Any:
    """A cell whose text a spreadsheet would run as a formula, quoted; anything else as is.

    Numbers are never touched. Other objects in a text column (a catalog folder is a
    ``PurePosixPath``) are judged by the text they are written as.
    """
    if value is None or isinstance(value, (Number, np.bool_)):
        return value
    text = value if isinstance(value, str) else str(value)
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return value


def neutralized(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column labels cannot start a formula."""
    out = frame.copy()
    for position, dtype in enumerate(out.dtypes):
        if _holds_text(dtype):
            column = out.iloc[:, position]
            out.isetitem(position, column.astype(object).map(neutralize_cell))
    out.columns = [neutralize_cell(label) for label in out.columns]
    return out


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """``frame`` as CSV (no index) at ``path``: formula cells neutralized, written atomically."""
    text = neutralized(frame).to_csv(index=False)
    return atomic_write_text(path, text)


def _holds_text(dtype: Any) -> bool:
    return isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype)
