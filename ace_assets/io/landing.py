"""Has a recording finished landing on the server? Decided from files alone.

Copies from acquisition PCs take minutes to hours. A line is ready when
every file its catalog row names is present, the Miniscope folder has its
metaData.json and timeStamps.csv, and nothing under its folders has changed
size or modification time for ``settle_seconds`` across two looks.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ace_assets.catalog.paths import UnsafePathError, resolve_under


@dataclass(frozen=True)
class LandingState:
    line_number: int
    fingerprint: str  # hash of (path, size, mtime) of every file of the line
    newest_mtime: float
    complete: bool
    reason: str

    def ready(self, previous_fingerprint: str | None, settle_seconds: float, now: float) -> bool:
        """Complete, unchanged since the last look, and quiet for ``settle_seconds``."""
        return (
            self.complete
            and previous_fingerprint == self.fingerprint
            and now - self.newest_mtime >= settle_seconds
        )


def landing_state(data_path: str | Path, experiment: dict[str, Any]) -> LandingState:
    """Fingerprint the raw files of one stored experiments row."""
    line = int(experiment["line_number"])
    entries: list[tuple[str, int, float]] = []
    missing: list[str] = []
    for column in ("calcium_dir", "ephys_dir"):
        relative = experiment.get(column)
        if not relative:
            continue
        try:
            folder = resolve_under(data_path, Path(relative))
        except UnsafePathError as exc:
            return LandingState(line, "", 0.0, False, str(exc))
        if not folder.is_dir():
            missing.append(f"{relative}/")
            continue
        entries.extend(_scan(folder))
        names = {Path(e[0]).name for e in entries}
        if column == "calcium_dir":
            for needed in ("metaData.json", "timeStamps.csv"):
                has_v3 = any(n.startswith("msCam") for n in names)
                if needed not in names and not has_v3:
                    missing.append(f"{relative}/**/{needed}")
            if not any(n.endswith(".avi") for n in names):
                missing.append(f"{relative}/**/*.avi")
        else:
            for channel in str(experiment.get("channels") or "").split(";"):
                if channel and f"{channel}.ncs" not in names:
                    missing.append(f"{relative}/{channel}.ncs")
            events = experiment.get("events_filename")
            if events and events not in names:
                missing.append(f"{relative}/{events}")
    digest = hashlib.sha256(repr(sorted(entries)).encode()).hexdigest()[:16]
    newest = max((e[2] for e in entries), default=0.0)
    if missing:
        return LandingState(line, digest, newest, False, "waiting for " + ", ".join(missing))
    if not entries:
        return LandingState(line, digest, newest, False, "no raw files for this line")
    return LandingState(line, digest, newest, True, "all files present")


def _scan(folder: Path) -> list[tuple[str, int, float]]:
    out = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            stat = path.stat()
            out.append((str(path), stat.st_size, stat.st_mtime))
    return out


def now() -> float:
    return time.time()
