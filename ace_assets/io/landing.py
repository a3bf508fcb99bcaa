"""Has a recording finished landing on the server? Decided from files alone.

Copies from acquisition PCs take minutes to hours, and copiers hide their work: rsync
writes ``.name.XXXXXX`` and renames it with the source's old mtime, others copy the
small files first. A line is ready only when

- it is complete: no hidden or temporary file is left below its folders, and its
  Miniscope movie and Neuralynx files are whole by their own headers and sizes
  (:mod:`ace_assets.io.landing_checks`);
- nothing changed between two looks: the fingerprint covers the size and mtime of every
  file, hidden ones too, so a growing temporary file changes it;
- the newest mtime is ``settle_seconds`` old.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from stat import S_ISREG
from typing import Any

from ace_assets.catalog.experiments import row_folders
from ace_assets.catalog.paths import resolve_under
from ace_assets.io.landing_checks import (
    IGNORED_NAMES,
    miniscope_awaited,
    neuralynx_awaited,
    temp_reason,
)

#: At most this many awaited files are named in a reason; the rest are counted.
MAX_NAMED = 12

_COLUMNS = {"calcium_dir": "calcium imaging directory", "ephys_dir": "ephys directory"}


@dataclass(frozen=True)
class LandingState:
    line_number: int
    fingerprint: str  # hash of (path, size, mtime) of every file of the line
    newest_mtime: float  # of any file or folder: a rename inside a folder updates its mtime
    complete: bool
    reason: str
    awaited: tuple[str, ...] = ()
    """One entry per file (or folder) the line waits for: its path and what is awaited."""

    def ready(self, previous_fingerprint: str | None, settle_seconds: float, now: float) -> bool:
        """Complete, unchanged since the last look, and quiet for ``settle_seconds``."""
        return (
            self.complete
            and previous_fingerprint == self.fingerprint
            and now - self.newest_mtime >= settle_seconds
        )


def landing_state(data_path: str | Path, experiment: dict[str, Any]) -> LandingState:
    """Fingerprint the raw files of one stored experiments row and say what they await."""
    line = int(experiment["line_number"])
    root = Path(data_path).resolve()

    def show(path: Path) -> str:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            return str(path)

    entries: list[tuple[str, int, float]] = []
    awaited: list[str] = []
    newest = 0.0
    listed = [(c, f) for c in ("calcium_dir", "ephys_dir") for f in row_folders(experiment, c)]
    for column, relative in listed:
        try:
            folder = resolve_under(data_path, PurePosixPath(relative))
            if not folder.is_dir():
                awaited.append(f"{relative}/ (folder not there yet)")
                continue
            found, temporary, newest_folder = _scan(folder, root, show)
            newest = max(newest, newest_folder)
            entries.extend(found)
            awaited.extend(temporary)
            if column == "calcium_dir":
                awaited.extend(miniscope_awaited(folder, show))
            else:
                awaited.extend(neuralynx_awaited(folder, experiment, show))
        except (OSError, ValueError) as exc:  # unsafe, over-long or NUL-bearing paths
            reason = f"{_COLUMNS[column]} {str(relative)[:200]!r}: {exc}"
            return LandingState(line, "", 0.0, False, reason, (reason,))
    digest = hashlib.sha256(repr(sorted(entries)).encode()).hexdigest()[:16]
    newest = max([newest, *(e[2] for e in entries)])
    if awaited:
        named = awaited[:MAX_NAMED]
        if len(awaited) > MAX_NAMED:
            named.append(f"{len(awaited) - MAX_NAMED} more")
        return LandingState(
            line, digest, newest, False, "waiting for " + "; ".join(named), tuple(awaited)
        )
    if not entries:
        return LandingState(line, digest, newest, False, "no raw files for this line")
    return LandingState(line, digest, newest, True, "all files present")


def _scan(
    folder: Path, root: Path, show: Callable[[Path], str]
) -> tuple[list[tuple[str, int, float]], list[str], float]:
    """(path, size, mtime) of every file below ``folder`` (hidden ones too), the hidden or
    temporary ones and links leading out of ``root`` as awaited entries, and the newest
    folder mtime.

    Folders count for the settle time only: rsync and ``cp -p`` give each file its source's
    old mtime, but every file they create or rename bumps its folder's mtime until they
    restore it at the very end. Links to folders are not followed.
    """
    entries: list[tuple[str, int, float]] = []
    temporary: list[str] = []
    newest_folder = 0.0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        base = Path(dirpath)
        try:
            newest_folder = max(newest_folder, base.stat().st_mtime)
        except OSError:  # removed since the listing: the next look sees it
            pass
        for name in dirnames + filenames:
            if os.path.islink(base / name):
                target = (base / name).resolve()
                if target != root and root not in target.parents:
                    temporary.append(
                        f"{show(base / name)} (a link to {target}, outside data_path: "
                        "copy the data itself)"
                    )
        for name in sorted(filenames):
            if name in IGNORED_NAMES:
                continue
            path = base / name
            try:
                stat = path.stat()
            except OSError:  # renamed or removed since the listing: the next look sees it
                continue
            if not S_ISREG(stat.st_mode):
                continue
            entries.append((str(path), stat.st_size, stat.st_mtime))
            if why := temp_reason(path.relative_to(folder).parts):
                temporary.append(f"{show(path)} ({why})")
    return entries, temporary, newest_folder


def now() -> float:
    return time.time()
