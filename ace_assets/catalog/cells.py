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
        try:
            return int(s)
        except ValueError:  # more digits than Python converts
            raise CellError(f"'{preview(s)}' has too many digits to be a number") from None
    if _FLOAT_RE.match(s):
        value = float(s)
        if not math.isfinite(value):
            raise CellError(f"'{preview(s)}' is too large to be a number")
        return value
    if s[0] in "([{" or s[-1] in ")]}":
        return _parse_literal(s)
    return s


def preview(text: str, limit: int = 80) -> str:
    """A cell as it may appear in a message: one line, at most ``limit`` characters.

    Messages end up in skip reasons, run pages and manifests; a 60 KB cell or a
    5000-character path must not be copied into each of them.
    """
    head = text if len(text) <= limit else text[: limit - 20]
    flat = "".join(_printable(c) for c in head)
    return flat if head is text else f"{flat}... ({len(text)} characters)"


def _printable(char: str) -> str:
    if char.isprintable():
        return char
    if "\udc80" <= char <= "\udcff":  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{ord(char) - 0xDC00:02x}"
    return char.encode("unicode_escape").decode()


def _parse_literal(s: str) -> tuple[Any, ...] | list[Any]:
    try:
        node = ast.parse(s, mode="eval").body
    except SyntaxError as exc:
        raise CellError(
            f"'{preview(s)}' is not a valid tuple or list (expected e.g. (7, 7) or [0, 5])"
        ) from exc
    except (MemoryError, RecursionError):  # the parser gives up on deeply nested text
        raise CellError(f"'{preview(s)}' is nested too deeply to be a tuple or list") from None
    if not isinstance(node, (ast.Tuple, ast.List)):
        raise CellError(f"'{preview(s)}' is not a tuple or list of numbers")
    try:
        value = ast.literal_eval(node)  # safe: literals only, never code
    except (ValueError, RecursionError) as exc:
        raise CellError(f"'{preview(s)}' must contain only numbers") from exc
    _check_numbers(value, s)
    return value


def _check_numbers(value: Any, original: str) -> None:
    for item in value:
        if isinstance(item, (tuple, list)):
            _check_numbers(item, original)
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            raise CellError(f"'{preview(original)}' must contain only numbers, found {item!r}")
        elif isinstance(item, float) and not math.isfinite(item):
            raise CellError(f"'{preview(original)}' contains a non-finite number")
