"""What a recording still awaits before it can be processed, file by file, in words.

Copiers defeat a plain "nothing changed for two minutes" rule: rsync writes into a
hidden ``.name.XXXXXX`` and renames it with the source's old mtime; others copy the
small files first, then the movies. So a recording is also checked against what its
formats promise, cheaply (headers and sizes, never decoding a frame):

- no hidden or temporary names below the session folder;
- Miniscope: the device folder the reader will open (not any ``metaData.json`` anywhere),
  its AVIs numbered without gaps, each AVI as long as its RIFF header announces and indexed
  as its header promises, and one timestamp row per AVI frame;
- Neuralynx: every listed channel, the EMG channel and the events file present, each a
  16384-byte header plus whole records.

What is read from a file is cached under its size, mtime, ctime and inode, so a sensor
looking at hundreds of finished lines every minute only stats them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ace_assets.errors import AceInputError
from ace_assets.io.avi_probe import AviProbe, probe_avi
from ace_assets.io.jsonio import read_json
from ace_assets.io.miniscope import (
    V3_AVI,
    V3_TIMESTAMPS,
    V4_AVI,
    V4_METADATA,
    V4_TIMESTAMPS,
    _find_movie_dir,
    _is_miniscope_dir,
    _read_v3_timestamps,
    _read_v4_timestamps,
    numbered_avis,
)
from ace_assets.io.neuralynx import read_ncs_header, validate_nev

#: Names copiers and editors give files they have not finished.
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart")
#: Hidden names that are not copies in progress (Finder writes one wherever a folder is
#: browsed); they neither block a recording nor count in its fingerprint.
IGNORED_NAMES = frozenset({".DS_Store"})
#: At most this many missing AVI numbers are named one by one.
MAX_LISTED_GAPS = 5

Show = Callable[[Path], str]
StatKey = tuple[int, int, int, int]


def temp_reason(parts: tuple[str, ...]) -> str | None:
    """Why a path (its parts below the session folder) is a copy in progress, or None."""
    for i, name in enumerate(parts):
        what = "folder" if i < len(parts) - 1 else "file"
        if name.startswith("."):
            return f"hidden {what}: a copier such as rsync is still writing it"
        if name.startswith("~"):
            return f"temporary {what} (~): still being written, or left by a crashed copy"
        lower = name.lower()
        for suffix in TEMP_SUFFIXES:
            if lower.endswith(suffix):
                return f"temporary {what} ({suffix}): a copy in progress"
    return None


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _key(path: Path) -> StatKey:
    return stat_key(path.stat())


def _problem(exc: AceInputError) -> str:
    return exc.reason + (f" (line {exc.line})" if exc.line else "")


# ---------------------------------------------------------------------------------------
# Reads, cached per file state


@lru_cache(maxsize=8192)
def _avi(path: str, key: StatKey) -> AviProbe:
    return probe_avi(path)


@lru_cache(maxsize=2048)
def _json_problem(path: str, key: StatKey) -> str | None:
    try:
        data = read_json(path)
    except AceInputError as exc:
        return _problem(exc)
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot be read ({exc})"
    return None if isinstance(data, dict) else "not a JSON object"


@lru_cache(maxsize=2048)
def _v4_rows(path: str, key: StatKey) -> tuple[int, str | None]:
    try:
        numbers, _ = _read_v4_timestamps(Path(path))
    except AceInputError as exc:
        return 0, _problem(exc)
    except (OSError, UnicodeDecodeError) as exc:
        return 0, f"cannot be read ({exc})"
    return len(numbers), None


@lru_cache(maxsize=2048)
def _v3_rows(path: str, key: StatKey) -> tuple[tuple[tuple[int, int], ...], str | None]:
    try:
        table = _read_v3_timestamps(Path(path))
    except AceInputError as exc:
        return (), _problem(exc)
    except (OSError, UnicodeDecodeError) as exc:
        return (), f"cannot be read ({exc})"
    cams, counts = np.unique(table[:, 0].astype(np.int64), return_counts=True)
    return tuple((int(c), int(n)) for c, n in zip(cams, counts, strict=True)), None


@lru_cache(maxsize=8192)
def _neuralynx_problem(path: str, key: StatKey, kind: str) -> str | None:
    try:
        if kind == "ncs":
            if read_ncs_header(path).n_records == 0:
                return "a header but no records yet"
        else:
            validate_nev(path)
    except AceInputError as exc:
        return _problem(exc)
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot be read ({exc})"
    return None


# ---------------------------------------------------------------------------------------
# Miniscope


def miniscope_awaited(folder: Path, show: Show) -> list[str]:
    """What the Miniscope movie below ``folder`` (a calcium imaging directory) awaits."""
    try:
        movie_dir, version = _find_movie_dir(folder)
    except AceInputError:
        return [_no_movie_yet(folder, show)]
    if version == "V4":
        return _v4_awaited(movie_dir, show)
    return _v3_awaited(movie_dir, show)


def _no_movie_yet(folder: Path, show: Show) -> str:
    names = {p.name for p in folder.iterdir()}
    if V3_TIMESTAMPS in names or any(n.lower().startswith("mscam") for n in names):
        return f"{show(folder / 'msCam1.avi')} (the V3 movie has not arrived)"
    device = _device_folder(folder)
    if device is not None:
        return f"{show(device / '0.avi')} (the Miniscope movie has not arrived)"
    others = sorted(f"{p.name}/" for p in folder.iterdir() if p.is_dir())
    present = f"; present: {', '.join(others)}" if others else ""
    return (
        f"{show(folder / 'Miniscope')}/ (the Miniscope device folder with metaData.json, "
        f"timeStamps.csv and 0.avi, 1.avi, ... has not arrived{present})"
    )


def _device_folder(folder: Path) -> Path | None:
    """The V4 Miniscope device folder, by the reader's rules, before any AVI is in it."""
    if _is_miniscope_dir(folder):
        return folder
    if (folder / "Miniscope").is_dir():
        return folder / "Miniscope"
    found = [p for p in sorted(folder.iterdir()) if p.is_dir() and _is_miniscope_dir(p)]
    return found[0] if found else None


def _avis_awaited(
    movie_dir: Path, pattern: re.Pattern[str], first: int, name: str, show: Show
) -> tuple[list[Path], list[str], int | None]:
    """The movie files, gaps in their numbering and unfinished ones; total frames if whole."""
    files = numbered_avis(movie_dir, pattern)
    numbers = [int(m.group(1)) for p in files if (m := pattern.match(p.name))]
    gaps = sorted(set(range(first, max(numbers) + 1)) - set(numbers))
    last = name.format(max(numbers))
    listed: list[tuple[int, str]] = [
        (n, f"{show(movie_dir / name.format(n))} (missing: the movie runs up to {last})")
        for n in gaps[:MAX_LISTED_GAPS]
    ]
    total = 0
    for number, path in zip(numbers, files, strict=True):
        probe = _avi(str(path), _key(path))
        if probe.whole:
            total += int(probe.frames or 0)
        else:
            listed.append((number, f"{show(path)} ({probe.problem})"))
    awaited = [text for _, text in sorted(listed)]
    if len(gaps) > MAX_LISTED_GAPS:
        awaited.append(f"{len(gaps) - MAX_LISTED_GAPS} more movie files in {show(movie_dir)}/")
    return files, awaited, (None if awaited else total)


def _v4_awaited(movie_dir: Path, show: Show) -> list[str]:
    files, awaited, frames = _avis_awaited(movie_dir, V4_AVI, 0, "{}.avi", show)
    meta = movie_dir / V4_METADATA
    if not meta.is_file():
        awaited.append(f"{show(meta)} (missing: the frame rate is read from it)")
    elif problem := _json_problem(str(meta), _key(meta)):
        awaited.append(f"{show(meta)} ({problem})")
    table = movie_dir / V4_TIMESTAMPS
    if not table.is_file():
        awaited.append(f"{show(table)} (missing: one row per frame)")
        return awaited
    rows, problem = _v4_rows(str(table), _key(table))
    if problem:
        awaited.append(f"{show(table)} ({problem})")
    elif frames is not None and rows != frames:
        awaited.append(_rows_reason(show(table), rows, frames, files))
    return awaited


def _v3_awaited(movie_dir: Path, show: Show) -> list[str]:
    files, awaited, frames = _avis_awaited(movie_dir, V3_AVI, 1, "msCam{}.avi", show)
    table = movie_dir / V3_TIMESTAMPS
    if not table.is_file():
        awaited.append(f"{show(table)} (missing: one row per frame and camera)")
        return awaited
    per_camera, problem = _v3_rows(str(table), _key(table))
    if problem:
        awaited.append(f"{show(table)} ({problem})")
    elif frames is not None and all(n != frames for _, n in per_camera):
        rows = dict(per_camera)
        awaited.append(
            f"{show(table)} (no camNum has one row per AVI frame: the AVIs hold {frames} "
            f"frames, rows per camNum {rows})"
        )
    return awaited


def _rows_reason(table: str, rows: int, frames: int, files: list[Path]) -> str:
    span = f"{files[0].name}..{files[-1].name}" if len(files) > 1 else files[0].name
    if rows > frames:
        return (
            f"{table} ({rows} rows but {span} hold {frames} frames: a movie file is still to come)"
        )
    return f"{table} ({rows} rows for the {frames} frames of {span}: still being written)"


# ---------------------------------------------------------------------------------------
# Neuralynx


def neuralynx_awaited(folder: Path, experiment: dict[str, Any], show: Show) -> list[str]:
    """The listed channels, EMG channel and events file: present, each whole records."""
    names = [c for c in str(experiment.get("channels") or "").split(";") if c]
    emg = experiment.get("emg_channel")
    if emg and emg not in names:
        names.append(str(emg))
    wanted = [(folder / f"{n}.ncs", "ncs") for n in names]
    events = experiment.get("events_filename")
    if events:
        wanted.append((folder / str(events), "nev"))
    awaited = []
    for path, kind in wanted:
        if not path.is_file():
            awaited.append(f"{show(path)} (missing)")
        elif problem := _neuralynx_problem(str(path), _key(path), kind):
            awaited.append(f"{show(path)} ({problem})")
    return awaited
