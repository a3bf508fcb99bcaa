"""One session recorded into several Miniscope folders, read as one movie.

When the acquisition software crashes or is restarted mid-session, the session lands in
two (or more) folders, and labs list them in one catalog cell (``a;b``). Each folder is
opened as it would be alone; the parts are then played back to back in recording order:

- the parts must agree on version, frame size and frame rate (else the error names the
  folders that differ);
- each part's camera clock restarts at 0, so a part's times are shifted by its
  ``recordingStartTime`` (V4 session ``metaData.json``) after the first part's; without
  it (V3), the part follows the previous one by one frame interval and the gap is noted;
- the pause between parts is a segment boundary, never dropped frames: dropped frames and
  timestamp faults are counted within each part, frame numbers continue across parts;
- ``segments`` lists where each part starts, so TTL alignment can align each part on its
  own pulses (:func:`ace_assets.multimodal.alignment.align_frames_to_ttl`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ace_assets.errors import AceInputError
from ace_assets.io.frame_times import DroppedFrames, TimestampReport
from ace_assets.io.jsonio import read_json

COLUMN = "calcium imaging directory"


@dataclass(frozen=True)
class Segment:
    """One folder's part of a split session: where it starts in the joined movie."""

    folder: str
    first_frame: int
    n_frames: int
    start_ms: float  # camera time of the part's first frame on the joined clock
    start_source: str  # where the part's offset came from

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "first_frame": self.first_frame,
            "n_frames": self.n_frames,
            "start_ms": self.start_ms,
            "start_source": self.start_source,
        }


def recording_start_ms(movie_dir: Path) -> float | None:
    """``recordingStartTime.msecSinceEpoch`` of the V4 session (or device) metaData.json."""
    for candidate in (movie_dir.parent / "metaData.json", movie_dir / "metaData.json"):
        if not candidate.is_file():
            continue
        try:
            start = read_json(candidate).get("recordingStartTime")
        except (OSError, ValueError):
            continue
        if isinstance(start, dict) and isinstance(start.get("msecSinceEpoch"), int | float):
            return float(start["msecSinceEpoch"])
    return None


def join_segments(parts: Sequence[Any]) -> Any:
    """Play ``parts`` (MiniscopeRecordings, in catalog order) back to back as one recording."""
    first = parts[0]
    for part in parts[1:]:
        for what, a, b in (
            ("version", first.version, part.version),
            ("frame size", first.frame_shape, part.frame_shape),
            ("frame rate", first.frame_rate, part.frame_rate),
        ):
            if a != b:
                raise AceInputError(
                    f"the folders of this session differ in {what}: {a} in {first.folder}, "
                    f"{b} in {part.folder}; list only folders of one session, joined by ';'",
                    file=part.folder,
                    column=COLUMN,
                )
    starts = [recording_start_ms(Path(p.folder)) for p in parts]
    if all(s is not None for s in starts):  # recording order, whatever the cell's order
        order = sorted(range(len(parts)), key=lambda i: starts[i])
        parts, starts = [parts[i] for i in order], [starts[i] for i in order]
        first = parts[0]
    issues: list[str] = []
    segments: list[Segment] = []
    times: list[np.ndarray] = []
    numbers: list[np.ndarray] = []
    missing: list[np.ndarray] = []
    first_frame, number_base = 0, 0
    for k, part in enumerate(parts):
        t = np.asarray(part.timestamps_ms, dtype=np.float64)
        fn = np.asarray(part.frame_numbers, dtype=np.int64)
        if k == 0:
            offset, source = 0.0, "first part"
        elif starts[k] is not None and starts[0] is not None:
            offset, source = float(starts[k] - starts[0]), "recordingStartTime"
            if offset + t[0] <= times[-1][-1]:
                raise AceInputError(
                    f"{part.folder} starts {offset / 1e3:.3f} s after {parts[0].folder} "
                    f"(recordingStartTime), before the previous part ends "
                    f"({times[-1][-1] / 1e3:.3f} s): these folders overlap in time",
                    file=part.folder,
                    column=COLUMN,
                )
        else:
            interval = first.dropped.median_interval_ms
            step = interval if np.isfinite(interval) else 0.0
            offset = float(times[-1][-1] + step - t[0])
            source = "follows the previous part (no recordingStartTime)"
            issues.append(
                f"{part.folder}: no recordingStartTime, so the pause before it is unknown; "
                "its frames are timed as if it followed the previous part directly"
            )
        segments.append(
            Segment(str(part.folder), first_frame, part.n_frames, offset + t[0], source)
        )
        times.append(t + offset)
        shift = number_base - (int(fn[0]) if len(fn) else 0)
        numbers.append(fn + shift)
        missing.append(part.dropped.missing_frame_numbers + shift)
        first_frame += part.n_frames
        number_base = int(numbers[-1][-1]) + 1 if len(fn) else number_base
        issues += [f"{Path(part.folder).name}: {issue}" for issue in part.issues]
    decode_errors = {}
    for seg, part in zip(segments, parts, strict=True):
        decode_errors.update({seg.first_frame + i: e for i, e in part.decode_errors.items()})
    joined_times = np.concatenate(times)
    joined_numbers = np.concatenate(numbers)
    dropped = DroppedFrames(
        missing_frame_numbers=np.concatenate(missing).astype(np.int64),
        long_interval_frames=np.concatenate(
            [
                p.dropped.long_interval_frames + s.first_frame
                for p, s in zip(parts, segments, strict=True)
            ]
        ).astype(np.int64),
        median_interval_ms=float(np.median([p.dropped.median_interval_ms for p in parts])),
        missing_from_intervals=int(sum(p.dropped.missing_from_intervals for p in parts)),
    )
    return replace(
        first,
        files=tuple(f for p in parts for f in p.files),
        frames_per_file=tuple(n for p in parts for n in p.frames_per_file),
        timestamps_ms=joined_times,
        frame_numbers=joined_numbers,
        dropped=dropped,
        timing=_joined_timing(parts, segments, dropped, joined_times, joined_numbers),
        issues=issues,
        decode_errors=decode_errors,
        segments=tuple(segments),
    )


def _joined_timing(
    parts: Sequence[Any],
    segments: Sequence[Segment],
    dropped: DroppedFrames,
    times: np.ndarray,
    numbers: np.ndarray,
) -> TimestampReport | None:
    reports = [p.timing for p in parts]
    if any(r is None for r in reports):
        return None
    faults = tuple(
        replace(
            f,
            frames=tuple(i + s.first_frame for i in f.frames),
            repaired_frames=tuple(i + s.first_frame for i in f.repaired_frames),
        )
        for r, s in zip(reports, segments, strict=True)
        for f in r.faults
    )
    return TimestampReport(
        n_frames=int(times.size),
        nominal_interval_ms=float(np.median([r.nominal_interval_ms for r in reports])),
        faults=faults,
        dropped=dropped,
        repaired_times_ms=times,
        repaired_frame_numbers=numbers,
        file=";".join(str(r.file) for r in reports),
    )
