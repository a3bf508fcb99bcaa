"""Directory cells: normalised to data_path-relative POSIX paths, never followed outside it.

Catalogs are edited on Windows and on other machines; a cell may hold
``raw\\rat1\\day1``, ``C:\\data\\rat1`` or ``/mnt/server/rat1``. The first is fine
after normalising separators; the others point somewhere this server cannot
vouch for and are rejected rather than silently read.

A cell is also checked against what the operating system can open: a NUL
byte (``ValueError: embedded null byte``), a name over NAME_MAX or a path over
PATH_MAX (``OSError: File name too long``) would otherwise surface as a crash
wherever the path is first used — in the sensor, for every line at once.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path, PurePosixPath

from ace_assets.catalog.cells import preview

_DRIVE = re.compile(r"^[A-Za-z]:")
#: Linux limits (bytes of the file-system encoding): one name, one whole path.
NAME_MAX = 255
PATH_MAX = 4096


class UnsafePathError(ValueError):
    """A catalog path that is absolute, climbs out of data_path, or no file system can hold."""


def check_name(text: str, what: str = "file name") -> None:
    """One path component: no NUL or control character, at most NAME_MAX bytes."""
    for index, char in enumerate(text):
        if char == "\x00":
            raise UnsafePathError(
                f"'{preview(text)}' contains a NUL byte (character {index + 1}); "
                f"retype the {what} without it"
            )
        kind = {"Cc": "the control character", "Cs": "the undecodable byte"}.get(
            unicodedata.category(char)
        )
        if kind:
            raise UnsafePathError(
                f"'{preview(text)}' contains {kind} {char.encode('unicode_escape').decode()} "
                f"(character {index + 1}); retype the {what} without it"
            )
    size = _size(text)
    if size > NAME_MAX:
        raise UnsafePathError(
            f"{what} '{preview(text)}' is {size} bytes long; file systems allow at most "
            f"{NAME_MAX} (NAME_MAX)"
        )


def normalize_relative_dir(text: str) -> PurePosixPath:
    """``raw\\a\\b`` -> ``raw/a/b``; absolute, drive-letter, UNC or ``..`` escapes raise."""
    s = text.strip().strip('"').strip()
    s = s.replace("\\", "/")
    shown = preview(text)
    if s.startswith("//"):
        raise UnsafePathError(
            f"'{shown}' is a network (UNC) path; give a path relative to data_path"
        )
    if _DRIVE.match(s):
        raise UnsafePathError(
            f"'{shown}' is an absolute Windows path; give a path relative to data_path"
        )
    if s.startswith("/") or s.startswith("~"):
        raise UnsafePathError(f"'{shown}' is an absolute path; give a path relative to data_path")
    size = _size(s)
    if size > PATH_MAX:
        raise UnsafePathError(
            f"'{shown}' is {size} bytes long; paths may be at most {PATH_MAX} (PATH_MAX)"
        )
    parts: list[str] = []
    for part in s.split("/"):
        if part in ("", "."):
            continue
        check_name(part, "folder name")
        if part == "..":
            if not parts:
                raise UnsafePathError(f"'{shown}' escapes data_path with '..'")
            parts.pop()
        else:
            parts.append(part)
    if not parts:
        raise UnsafePathError(f"'{shown}' is empty after normalisation")
    return PurePosixPath(*parts)


def resolve_under(data_path: str | Path, relative: PurePosixPath) -> Path:
    """Join and re-check after resolving symlinks, so a link cannot lead outside data_path."""
    for part in relative.parts:
        check_name(part, "folder name")
    root = Path(data_path).resolve()
    joined = root / Path(*relative.parts)
    size = _size(str(joined))
    if size > PATH_MAX:
        raise UnsafePathError(
            f"'{preview(str(relative))}' under data_path is {size} bytes long; paths may be at "
            f"most {PATH_MAX} (PATH_MAX)"
        )
    full = joined.resolve()
    if full != root and root not in full.parents:
        raise UnsafePathError(
            f"'{preview(str(relative))}' resolves to {preview(str(full), 200)}, "
            f"outside data_path {root}"
        )
    return full


def _size(text: str) -> int:
    """Bytes the name takes on disk; lone surrogates count as the bytes they stand for."""
    try:
        return len(os.fsencode(text))
    except UnicodeEncodeError:
        return len(text.encode("utf-8", "surrogatepass"))
