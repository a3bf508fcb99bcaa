"""The one way this package writes and reads JSON files.

Every JSON file (store ``meta.json``, manifests, summaries, the demo's Miniscope
``metaData.json``) goes through here so they share one encoding (UTF-8), one layout
(indented, trailing newline) and one answer to values JSON has no type for: NumPy
scalars become numbers, arrays lists, paths strings. Writes are atomic. A file that is
not JSON raises :class:`~ace_assets.errors.AceInputError` naming the file, line
and column. NaN stays NaN (as Python's ``json`` writes it): metrics such as a median trace
correlation are legitimately undefined.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ace_assets.errors import AceInputError
from ace_assets.io.atomic import atomic_write_text

INDENT = 2


def to_jsonable(value: Any) -> Any:
    """``json`` ``default`` hook for values it cannot encode itself."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def dumps_json(data: Any, *, indent: int | None = INDENT) -> str:
    """``data`` as JSON text; ``indent=None`` for a compact one-liner (e.g. inside an npz)."""
    return json.dumps(data, indent=indent, default=to_jsonable)


def write_json(path: str | Path, data: Any, *, indent: int = INDENT) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + rename), UTF-8, newline-ended."""
    return atomic_write_text(path, dumps_json(data, indent=indent) + "\n")


def loads_json(text: str, *, source: str | Path | None = None) -> Any:
    """Parse JSON text; malformed text raises AceInputError naming ``source``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AceInputError(
            f"malformed JSON: {exc.msg} at column {exc.colno}", file=source, line=exc.lineno
        ) from exc


def read_json(path: str | Path) -> Any:
    """Read a JSON file (UTF-8, a byte-order mark tolerated as Windows tools write one)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AceInputError(f"not UTF-8 text ({exc.reason})", file=path) from exc
    return loads_json(text, source=path)
