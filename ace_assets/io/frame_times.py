"""Diagnose, and repair or refuse, the Miniscope camera's per-frame timestamps.

A timestamp table can be wrong in ways that are not lost frames: the host clock steps
back, a value goes back and returns, a time is written twice, two rows trade places, the
``Frame Number`` column runs out of order. Counting every odd interval as "dropped frames"
hides all of that (a 5 s step back once read as 152 dropped frames) and lets a swap pass.
So the order faults are found first, on their own terms, and dropped frames are counted
only on the series with those faults taken out.

Frames are named by their movie frame index (0-based: the row order of the table, which
is V4's ``Frame Number`` when no dropped frame is numbered).

The ``timestamp_faults`` parameter decides what an order fault does: ``repair`` (swapped
rows reordered, duplicated or backward times re-timed from their neighbours, a clock step
back taken out of all later times; each repair listed) or ``fail`` (an AceInputError
naming the file and the frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ace_assets.catalog.stage_params import StageParams, stage_params
from ace_assets.errors import AceInputError
from ace_assets.io.timestamp_scan import (
    LONG_INTERVAL_FACTOR,
    TimestampFault,
    scan_numbers,
    scan_times,
)

#: How many frame numbers a report or an error lists per kind of fault.
LISTED = 20
TIMESTAMP_FAULTS = "timestamp_faults"
ALIGNMENT_TOLERANCE = "alignment_tolerance_ms"
TIME_COLUMN = "Time Stamp (ms)"
NUMBER_COLUMN = "Frame Number"
#: Where a user changes the policy (the catalog column and the run-config key).
POLICY_HINT = (
    f"column '{TIMESTAMP_FAULTS}' of analysis_parameters.csv, or the run-config key "
    f"ops.analysis_parameters.config.overrides.{TIMESTAMP_FAULTS}"
)


@stage_params("timing", frozen=True)
class FrameTimingParams(StageParams):
    """How faulty camera timestamps are handled and how close frames must align."""

    timestamp_faults: str
    timestamp_rows: str
    alignment_tolerance_ms: float | None

    @property
    def strict_rows(self) -> bool:
        """Is a timestamp table that does not match the frame count an error?"""
        return self.timestamp_rows == "fail"

    def validate(self) -> None:
        tol = self.alignment_tolerance_ms
        if tol is not None and not (math.isfinite(tol) and tol > 0):
            raise AceInputError(
                f"{ALIGNMENT_TOLERANCE} = {tol} is not a positive number of milliseconds",
                column=ALIGNMENT_TOLERANCE,
            )


@dataclass(frozen=True)
class DroppedFrames:
    """Evidence of frames the DAQ lost before they reached the AVI files."""

    missing_frame_numbers: np.ndarray
    """DAQ frame numbers absent from the timestamp table (gaps in the counter)."""
    long_interval_frames: np.ndarray
    """Frame indices ``i`` whose interval ``t[i] - t[i-1]`` exceeds 1.5 x the median."""
    median_interval_ms: float
    missing_from_intervals: int = 0
    """Frames that would fit in the long intervals: sum of round(interval / median) - 1."""

    @property
    def estimated_missing(self) -> int:
        """Frames lost, by whichever evidence (counter gaps or long intervals) shows more."""
        return max(int(len(self.missing_frame_numbers)), int(self.missing_from_intervals))

    @property
    def any(self) -> bool:
        return bool(len(self.missing_frame_numbers) or len(self.long_interval_frames))

    def as_dict(self) -> dict[str, Any]:
        return {
            "missing_frame_numbers": self.missing_frame_numbers.tolist(),
            "long_interval_frames": self.long_interval_frames.tolist(),
            "median_interval_ms": self.median_interval_ms,
            "n_missing_frame_numbers": int(len(self.missing_frame_numbers)),
            "n_long_intervals": int(len(self.long_interval_frames)),
            "estimated_missing": self.estimated_missing,
        }


def find_dropped_frames(frame_numbers: np.ndarray, times_ms: np.ndarray) -> DroppedFrames:
    """Counter gaps and over-long intervals in a per-frame timestamp table."""
    valid = frame_numbers >= 0
    fn = frame_numbers[valid]
    missing: np.ndarray = np.zeros(0, np.int64)
    if len(fn) > 1:
        steps = np.diff(fn)
        gaps = np.nonzero(steps > 1)[0]
        if len(gaps):
            missing = np.concatenate([np.arange(fn[g] + 1, fn[g + 1]) for g in gaps])
    finite = np.isfinite(times_ms)
    intervals = np.diff(times_ms)
    median = nominal_interval(times_ms)
    long = np.zeros(0, np.int64)
    from_intervals = 0
    if math.isfinite(median) and finite.sum() > 1:
        with np.errstate(invalid="ignore"):
            long = np.nonzero(intervals > LONG_INTERVAL_FACTOR * median)[0] + 1
        from_intervals = int(np.sum(np.maximum(np.rint(intervals[long - 1] / median) - 1, 1)))
    return DroppedFrames(
        missing_frame_numbers=missing.astype(np.int64),
        long_interval_frames=long.astype(np.int64),
        median_interval_ms=median,
        missing_from_intervals=from_intervals,
    )


def nominal_interval(times_ms: np.ndarray) -> float:
    """Median of the positive intervals: robust to drops, steps and duplicates."""
    intervals = np.diff(np.asarray(times_ms, dtype=np.float64))
    good = intervals[np.isfinite(intervals) & (intervals > 0)]
    return float(np.median(good)) if len(good) else float("nan")


FAULT_KINDS = ("backward", "duplicated", "swapped", "frame_number_order")
_KIND_TEXT = {
    "backward": "time goes backward at frames",
    "duplicated": "time repeats the previous frame's at frames",
    "swapped": "rows out of order (swapping the pair restores the order) at frames",
    "frame_number_order": "'Frame Number' out of order at frames",
}


@dataclass(frozen=True)
class TimestampReport:
    """What the camera timestamps say: order faults, their repairs, dropped frames."""

    n_frames: int
    nominal_interval_ms: float
    faults: tuple[TimestampFault, ...]
    dropped: DroppedFrames
    """Counted on the repaired series, so a step back or a swap is never a drop."""
    repaired_times_ms: np.ndarray = field(repr=False)
    repaired_frame_numbers: np.ndarray = field(repr=False)
    file: str | None = None

    def of_kind(self, kind: str) -> list[TimestampFault]:
        return [f for f in self.faults if f.kind == kind]

    def count(self, kind: str) -> int:
        return len(self.of_kind(kind))

    def frames(self, kind: str) -> list[int]:
        """Every frame a fault of ``kind`` shows at, in order."""
        return sorted({i for f in self.of_kind(kind) for i in f.frames})

    @property
    def any_faults(self) -> bool:
        return bool(self.faults)

    @property
    def repaired_frames(self) -> list[int]:
        return sorted({i for f in self.faults for i in f.repaired_frames})

    def describe(self) -> str:
        """One clause per kind of fault, each with its count and first frames."""
        parts = []
        for kind in FAULT_KINDS:
            n = self.count(kind)
            if n:
                frames = self.frames(kind)
                more = f" (+{len(frames) - LISTED} more)" if len(frames) > LISTED else ""
                parts.append(f"{n} x {_KIND_TEXT[kind]} {frames[:LISTED]}{more}")
        return "; ".join(parts) or "no order faults"

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts and (first) frame numbers of each kind, plus the repairs."""
        out: dict[str, Any] = {
            "nominal_interval_ms": self.nominal_interval_ms,
            "dropped_frames": self.dropped.estimated_missing,
            "dropped_after_frames": self.dropped.long_interval_frames[:LISTED].tolist(),
        }
        for kind in FAULT_KINDS:
            out[kind] = {"count": self.count(kind), "frames": self.frames(kind)[:LISTED]}
        out["repairs"] = [
            {
                "kind": f.kind,
                "frames": list(f.frames),
                "detail": f.detail,
                "repair": f.repair,
                "repaired_frames": list(f.repaired_frames[:LISTED]),
            }
            for f in self.faults[:LISTED]
        ]
        return out


def diagnose_timestamps(
    frame_numbers: np.ndarray, times_ms: np.ndarray, *, file: str | Path | None = None
) -> TimestampReport:
    """Find backward, duplicated and swapped times and out-of-order frame numbers.

    A sequential scan: every place where the time does not increase is explained by the
    smallest change that restores a steady clock (a swap of two rows, a short run of
    times re-timed from their neighbours, or a step back taken out of all later times),
    and the scan goes on over the repaired series. Trailing NaN times (rows missing at
    the end) are left as they are.
    """
    t = np.asarray(times_ms, dtype=np.float64).copy()
    fn = np.asarray(frame_numbers, dtype=np.int64).copy()
    finite = np.isfinite(t)
    n = int(np.argmin(finite)) if not finite.all() else t.size
    nominal = nominal_interval(t[:n])
    faults: list[TimestampFault] = []
    if n > 1 and math.isfinite(nominal):
        faults += scan_times(t, fn, n, nominal)
        faults += scan_numbers(fn, n)
    return TimestampReport(
        n_frames=int(t.size),
        nominal_interval_ms=nominal,
        faults=tuple(faults),
        dropped=find_dropped_frames(fn, t),
        repaired_times_ms=t,
        repaired_frame_numbers=fn,
        file=str(file) if file is not None else None,
    )


def resolve_timestamps(
    frame_numbers: np.ndarray,
    times_ms: np.ndarray,
    *,
    policy: str = "repair",
    file: str | Path | None = None,
    columns: tuple[str, str] = (NUMBER_COLUMN, TIME_COLUMN),
) -> TimestampReport:
    """Diagnose, then apply ``policy``: ``repair`` returns the report (use its repaired
    series), ``fail`` raises an AceInputError naming the file, the frames and ``columns``
    (the table's frame-number and time columns)."""
    if policy not in ("repair", "fail"):
        raise AceInputError(
            f"{TIMESTAMP_FAULTS} = {policy!r}: expected 'repair' or 'fail'",
            column=TIMESTAMP_FAULTS,
        )
    report = diagnose_timestamps(frame_numbers, times_ms, file=file)
    if policy == "fail" and report.any_faults:
        raise AceInputError(
            f"camera timestamps out of order: {report.describe()}. Expected "
            f"'{columns[1]}' to increase by about {report.nominal_interval_ms:.1f} ms per "
            f"frame and '{columns[0]}' to increase. {TIMESTAMP_FAULTS} is 'fail'; to repair "
            f"them (rows reordered, bad times interpolated, each repair listed) set it to "
            f"'repair' ({POLICY_HINT})",
            file=file,
            column=columns[1],
        )
    return report
