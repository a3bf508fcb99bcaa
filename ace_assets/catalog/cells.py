"""The cell grammar of the lab's CSVs, parsed without ``eval``.

Labs type these cells by hand in spreadsheets: ``TRUE``/``FALSE``, ``None``,
numbers, quoted tuples ``"(7, 7)"``, lists ``[0.5, 4]`` and bare strings. An
empty cell means "use the default", which is why it parses to ``MISSING``
rather than ``None`` (``None`` is a real value for e.g. ``K``).
"""

from __future__ import annotations

import ast
import math
import re
from typing import Any, Final


class _Missing:
    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()
NA_TOKENS: Final = frozenset({"na", "n/a", "nan", "#n/a"})
_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class CellError(ValueError):
    """A cell that does not follow the grammar; the caller adds file/row/column."""


def parse_cell(text: str | None) -> Any:
    """One cell to a Python value: MISSING, None, bool, int, float, tuple, list or str."""
    if text is None:
        return MISSING
    s = text.strip()
    if s == "":
        return MISSING
    low = s.lower()
    if low == "none" or low in NA_TOKENS:
        return None
    if low == "true":
        return True
    if low == "false":
        return False
    if _INT_RE.match(s):
        return int(s)
    if _FLOAT_RE.match(s):
        return float(s)
    if s[0] in "([{" or s[-1] in ")]}":
        return _parse_literal(s)
    return s


def _parse_literal(s: str) -> tuple[Any, ...] | list[Any]:
    try:
        node = ast.parse(s, mode="eval").body
    except SyntaxError as exc:
        raise CellError(
            f"'{s}' is not a valid tuple or list (expected e.g. (7, 7) or [0, 5])"
        ) from exc
    if not isinstance(node, (ast.Tuple, ast.List)):
        raise CellError(f"'{s}' is not a tuple or list of numbers")
    try:
        value = ast.literal_eval(node)  # safe: literals only, never code
    except ValueError as exc:
        raise CellError(f"'{s}' must contain only numbers") from exc
    _check_numbers(value, s)
    return value


def _check_numbers(value: Any, original: str) -> None:
    for item in value:
        if isinstance(item, (tuple, list)):
            _check_numbers(item, original)
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            raise CellError(f"'{original}' must contain only numbers, found {item!r}")
        elif isinstance(item, float) and not math.isfinite(item):
            raise CellError(f"'{original}' contains a non-finite number")
