"""Resolve one experiment line to the raw files that exist for it.

Everything downstream trusts this: paths stay inside data_path (every listed file is
resolved, links followed, and refused if it leads out: :mod:`ace_assets.io.confined`),
every listed channel exists, movie files are in numeric order with their frame counts.
A line may lack a modality; that is stated, not an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ace_assets.catalog.experiments import row_folders
from ace_assets.catalog.paths import UnsafePathError, resolve_under
from ace_assets.errors import AceInputError
from ace_assets.io.confined import OutsideDataPathError, confined_file

_DIGITS = re.compile(r"(\d+)")


@dataclass
class MiniscopeFiles:
    folder: str
    version: str
    files: list[dict[str, Any]]
    n_frames: int
    frame_rate: float
    frame_shape: tuple[int, int]
    dropped_frames: dict[str, Any]
    timestamps_file: str | None
    notes: list[str] = field(default_factory=list)
    timestamps: dict[str, Any] | None = None  #: order faults + repairs (io.frame_times)
    #: every folder of a session split by a restart (``a;b`` in the catalog), in order
    folders: list[str] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)


def movie_folders(miniscope: dict[str, Any]) -> list[str]:
    """The folders to open for a stored ``MiniscopeFiles`` (older listings had one)."""
    return list(miniscope.get("folders") or [miniscope["folder"]])


@dataclass
class EphysFiles:
    folder: str
    channels: list[dict[str, Any]]
    emg: dict[str, Any] | None
    events_file: str | None
    notes: list[str] = field(default_factory=list)


@dataclass
class SessionFiles:
    line_number: int
    miniscope: MiniscopeFiles | None
    ephys: EphysFiles | None
    missing: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def resolve_session(data_path: str | Path, experiment: dict[str, Any], source: str) -> SessionFiles:
    """``experiment`` is a stored experiments row (see Experiment.as_row)."""
    line = int(experiment["line_number"])
    missing: list[str] = []
    miniscope = None
    ephys = None
    calcium = row_folders(experiment, "calcium_dir")
    if calcium:
        column = "calcium imaging directory"
        folders = [_folder(data_path, part, source, line, column) for part in calcium]
        with _located(line, column):
            try:
                miniscope = _miniscope(folders, data_path)
            except AceInputError as exc:  # the reader names the file; say which line led there
                if exc.line is not None or isinstance(exc, OutsideDataPathError):
                    raise  # (a link out of data_path: _located names the line)
                raise AceInputError(
                    exc.reason, file=exc.file, line=line, column=exc.column or column
                ) from None
    else:
        missing.append("calcium imaging: no 'calcium imaging directory' for this line")
    if experiment.get("ephys_dir"):
        folder = _folder(data_path, experiment["ephys_dir"], source, line, "ephys directory")
        with _located(line, "ephys directory"):
            ephys = _ephys(folder, data_path, experiment, source, line)
    else:
        missing.append("ephys: no 'ephys directory' for this line")
    return SessionFiles(line, miniscope, ephys, missing)


@contextmanager
def _located(line: int, column: str) -> Iterator[None]:
    """A link out of data_path found while listing: say which line and catalog cell led there."""
    try:
        yield
    except OutsideDataPathError as exc:
        raise OutsideDataPathError(exc.reason, file=exc.file, line=line, column=column) from None


def _folder(data_path: str | Path, relative: str, source: str, line: int, column: str) -> Path:
    try:
        folder = resolve_under(data_path, PurePosixPath(relative))
    except UnsafePathError as exc:
        raise AceInputError(str(exc), file=source, line=line, column=column) from None
    if not folder.is_dir():
        raise AceInputError(
            f"directory {folder} does not exist under data_path {data_path}",
            file=source,
            line=line,
            column=column,
        )
    return folder


def _miniscope(folders: list[Path], data_path: str | Path) -> MiniscopeFiles:
    from ace_assets.io.miniscope import open_session

    # a listing, not an analysis: a timestamp table of the wrong length is noted here and
    # decided by the movie stages, which read the line's ``timestamp_rows`` setting
    rec = open_session(folders, confine_to=data_path, strict=False)
    for path in (*rec.files, *([rec.timestamps_file] if rec.timestamps_file else [])):
        confined_file(path, data_path)
    files = [
        {"name": str(Path(f).name), "path": str(f), "frames": int(n)}
        for f, n in zip(rec.files, rec.frames_per_file, strict=True)
    ]
    return MiniscopeFiles(
        folder=str(folders[0]),
        version=str(rec.version),
        files=files,
        n_frames=int(rec.n_frames),
        frame_rate=float(rec.frame_rate),
        frame_shape=(int(rec.frame_shape[0]), int(rec.frame_shape[1])),
        dropped_frames=rec.dropped.as_dict(),
        timestamps_file=str(rec.timestamps_file) if rec.timestamps_file else None,
        notes=list(rec.issues),
        timestamps=rec.timing.summary() if rec.timing else None,
        folders=[str(f) for f in folders],
        segments=[segment.as_dict() for segment in rec.segments],
    )


def _ephys(
    folder: Path, data_path: str | Path, experiment: dict[str, Any], source: str, line: int
) -> EphysFiles:
    from ace_assets.io.neuralynx import read_ncs_header

    channels = [c for c in str(experiment.get("channels") or "").split(";") if c]
    notes: list[str] = []
    if not channels:
        channels = _every_channel(folder, source, line)
        notes.append(
            f"no channels listed in 'LFP and EEG CSCs': using every .ncs file in the folder "
            f"({';'.join(channels)})"
        )

    def describe(name: str, column: str) -> dict[str, Any]:
        path = folder / f"{name}.ncs"
        if not path.is_file():
            present = sorted(p.stem for p in folder.glob("*.ncs"))
            raise AceInputError(
                f"channel '{name}' has no file {path} (present: {', '.join(present) or 'none'})",
                file=source,
                line=line,
                column=column,
            )
        header = read_ncs_header(confined_file(path, data_path))
        return {
            "name": name,
            "path": str(path),
            "sampling_rate": header.sampling_rate,
            "ad_bit_volts": header.ad_bit_volts,
            "input_inverted": header.input_inverted,
            "n_records": header.n_records,
        }

    described = [describe(c, "LFP and EEG CSCs") for c in channels]
    emg_name = experiment.get("emg_channel")
    emg = None
    if emg_name:
        emg = next((c for c in described if c["name"] == emg_name), None) or describe(
            emg_name, "emg channel"
        )
    events = None
    events_name = experiment.get("events_filename")
    if events_name:
        candidate = folder / events_name
        if candidate.is_file():
            confined_file(candidate, data_path)
            events = str(candidate)
        else:
            notes.append(f"events file {candidate} is missing: no TTL alignment for this line")
    else:
        notes.append("no events filename: no TTL alignment for this line")
    return EphysFiles(str(folder), described, emg, events, notes)


def _every_channel(folder: Path, source: str, line: int) -> list[str]:
    """Channel names of every .ncs file in ``folder``, in natural order (CSC2 before CSC10)."""
    names = [p.stem for p in folder.iterdir() if p.suffix.lower() == ".ncs" and p.is_file()]
    names = [n for n in names if not n.startswith((".", "~"))]
    if not names:
        raise AceInputError(
            f"no channels are listed and {folder} holds no .ncs file; list the channels "
            "(e.g. PFCvsCBEEG;EMG) or correct the ephys directory",
            file=source,
            line=line,
            column="LFP and EEG CSCs",
        )
    return sorted(
        names, key=lambda n: [int(t) if t.isdigit() else t.lower() for t in _DIGITS.split(n)]
    )
