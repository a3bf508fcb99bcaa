"""Directory cells: normalised to data_path-relative POSIX paths, never followed outside it.

Catalogs are edited on Windows and on other machines; a cell may hold
``raw\\rat1\\day1``, ``C:\\data\\rat1`` or ``/mnt/server/rat1``. The first is fine
after normalising separators; the others point somewhere this server cannot
vouch for and are rejected rather than silently read.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePathError(ValueError):
    """A catalog path that is absolute or climbs out of data_path."""


def normalize_relative_dir(text: str) -> PurePosixPath:
    """``raw\\a\\b`` -> ``raw/a/b``; absolute, drive-letter, UNC or ``..`` escapes raise."""
    s = text.strip().strip('"').strip()
    s = s.replace("\\", "/")
    if s.startswith("//"):
        raise UnsafePathError(
            f"'{text}' is a network (UNC) path; give a path relative to data_path"
        )
    if _DRIVE.match(s):
        raise UnsafePathError(
            f"'{text}' is an absolute Windows path; give a path relative to data_path"
        )
    if s.startswith("/") or s.startswith("~"):
        raise UnsafePathError(f"'{text}' is an absolute path; give a path relative to data_path")
    parts: list[str] = []
    for part in s.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafePathError(f"'{text}' escapes data_path with '..'")
            parts.pop()
        else:
            parts.append(part)
    if not parts:
        raise UnsafePathError(f"'{text}' is empty after normalisation")
    return PurePosixPath(*parts)


def resolve_under(data_path: str | Path, relative: PurePosixPath) -> Path:
    """Join and re-check after resolving symlinks, so a link cannot lead outside data_path."""
    root = Path(data_path).resolve()
    full = (root / Path(*relative.parts)).resolve()
    if full != root and root not in full.parents:
        raise UnsafePathError(f"'{relative}' resolves to {full}, outside data_path {root}")
    return full
