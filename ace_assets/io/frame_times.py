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

#: An inter-frame interval longer than this many nominal intervals means lost frames.
LONG_INTERVAL_FACTOR = 1.5
#: A repaired stretch must leave every interval at least this share of the nominal one.
MIN_INTERVAL_FACTOR = 0.5
#: How far apart (in rows) two swapped rows, or the ends of a run of bad times, may be.
SEARCH_ROWS = 8
#: How many frame numbers a report or an error lists per kind of fault.
LISTED = 20
TIMESTAMP_FAULTS = "timestamp_faults"
ALIGNMENT_TOLERANCE = "alignment_tolerance_ms"
TIME_COLUMN = "Time Stamp (ms)"
#: Where a user changes the policy (the catalog column and the run-config key).
POLICY_HINT = (
    f"column '{TIMESTAMP_FAULTS}' of analysis_parameters.csv, or the run-config key "
    f"ops.analysis_parameters.config.overrides.{TIMESTAMP_FAULTS}"
)


@stage_params("timing", frozen=True)
class FrameTimingParams(StageParams):
    """How faulty camera timestamps are handled and how close frames must align."""

    timestamp_faults: str
    alignment_tolerance_ms: float | None

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


@dataclass(frozen=True)
class TimestampFault:
    """One order fault of the timestamp table and what repairing it takes."""

    kind: str
    """``backward`` | ``duplicated`` | ``swapped`` | ``frame_number_order``."""
    frames: tuple[int, ...]
    """Where it shows: the frame whose time goes back or repeats, both swapped frames."""
    detail: str
    repaired_frames: tuple[int, ...]
    """Frames whose time (or number) a repair changes (a step back: its first frame)."""
    repair: str


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
        faults += _scan_times(t, fn, n, nominal)
        faults += _scan_numbers(fn, n)
    return TimestampReport(
        n_frames=int(t.size),
        nominal_interval_ms=nominal,
        faults=tuple(faults),
        dropped=find_dropped_frames(fn, t),
        repaired_times_ms=t,
        repaired_frame_numbers=fn,
        file=str(file) if file is not None else None,
    )


def _steady(t: np.ndarray, lo: int, hi: int, nominal: float) -> bool:
    """Every interval of ``t[lo:hi]`` is at least half the nominal one."""
    seg = t[max(lo, 0) : hi]
    return bool(np.all(np.diff(seg) >= MIN_INTERVAL_FACTOR * nominal))


def _scan_times(t: np.ndarray, fn: np.ndarray, n: int, nominal: float) -> list[TimestampFault]:
    faults: list[TimestampFault] = []
    i = _next_not_increasing(t, 1, n)
    while i < n and len(faults) <= n:
        if t[i] == t[i - 1]:
            fault = _duplicate(t, i, n, nominal)
        else:
            fault = (
                _swap(t, fn, i, n, nominal)
                or _ran_ahead(t, i, n, nominal)
                or _runs_on(t, i, n, nominal)
                or _outliers(t, i, n, nominal)
                or _step(t, i, n, nominal)
            )
        faults.append(fault)
        i = _next_not_increasing(t, max(min(fault.frames), 1), n)
    return faults


def _next_not_increasing(v: np.ndarray, i: int, n: int, block: int = 4096) -> int:
    """First ``k >= i`` with ``v[k] <= v[k-1]`` (``n`` if none), a block at a time."""
    while i < n:
        stop = min(i + block, n)
        hits = np.flatnonzero(v[i:stop] <= v[i - 1 : stop - 1])
        if hits.size:
            return i + int(hits[0])
        i = stop
    return n


def _retime(t: np.ndarray, a: int, b: int) -> None:
    """Re-time frames ``a..b-1`` linearly between frame ``a-1`` and frame ``b``."""
    t[a:b] = np.interp(np.arange(a, b), [a - 1, b], [t[a - 1], t[b]])


def _duplicate(t: np.ndarray, i: int, n: int, nominal: float) -> TimestampFault:
    j = i
    while j < n and t[j] == t[i - 1]:
        j += 1
    value = float(t[i - 1])
    if j < n and t[j] > t[i - 1]:
        _retime(t, i, j)
        how = "re-timed by interpolation from the neighbouring frames"
    else:  # nothing ahead to interpolate to: carry on at the nominal rate
        t[i:j] = t[i - 1] + nominal * np.arange(1, j - i + 1)
        how = f"re-timed at the nominal interval ({nominal:.3f} ms) from frame {i - 1}"
    frames = tuple(range(i, j))
    return TimestampFault("duplicated", frames, f"{value:.3f} ms repeated", frames, how)


def _swap(t: np.ndarray, fn: np.ndarray, i: int, n: int, nominal: float) -> TimestampFault | None:
    """Rows ``i-1`` and ``b`` traded places if swapping them back gives a steady clock."""
    a = i - 1
    lo = max(a - 1, 0)
    for b in range(i, min(i + SEARCH_ROWS, n)):
        before = t[lo : min(b + 2, n)]
        trial = before.copy()
        trial[a - lo], trial[b - lo] = trial[b - lo], trial[a - lo]
        if not bool(np.all(np.diff(trial) >= MIN_INTERVAL_FACTOR * nominal)):
            continue
        if _long_count(trial, nominal) > _long_count(before, nominal):
            continue  # putting them back would open a gap: not a swap
        t[a], t[b] = t[b], t[a]
        numbers_too = bool(fn[b] < fn[a])
        if numbers_too:
            fn[a], fn[b] = fn[b], fn[a]
        return TimestampFault(
            "swapped",
            (a, b),
            "rows swapped" if numbers_too else "times swapped (frame numbers in order)",
            (a, b),
            "rows put back in time order" if numbers_too else "the two times swapped back",
        )
    return None


def _long_count(seg: np.ndarray, nominal: float) -> int:
    return int(np.sum(np.diff(seg) > LONG_INTERVAL_FACTOR * nominal))


def _ran_ahead(t: np.ndarray, i: int, n: int, nominal: float) -> TimestampFault | None:
    """Frame ``i-1`` jumped ahead and the clock came back at ``i``: re-time ``i-1``."""
    if i < 2:
        return None
    ahead = t[i - 1] - t[i - 2] > LONG_INTERVAL_FACTOR * nominal
    if not (ahead and t[i] - t[i - 2] >= 2 * MIN_INTERVAL_FACTOR * nominal):
        return None
    back = float(t[i - 1] - t[i])
    _retime(t, i - 1, i)
    return TimestampFault(
        "backward",
        (i,),
        f"back by {back:.3f} ms after frame {i - 1} ran ahead",
        (i - 1,),
        f"frame {i - 1} re-timed by interpolation from its neighbours",
    )


def _runs_on(t: np.ndarray, i: int, n: int, nominal: float) -> TimestampFault | None:
    """The clock stepped back and runs on at its rate from there: a step, see _step."""
    if i + 1 >= n:
        return None
    nxt = t[i + 1] - t[i]
    if abs(nxt - nominal) <= MIN_INTERVAL_FACTOR * nominal:
        return _step(t, i, n, nominal)
    return None


def _outliers(t: np.ndarray, i: int, n: int, nominal: float) -> TimestampFault | None:
    """A few times went back and the clock carries on where it was: re-time them."""
    back = float(t[i - 1] - t[i])
    for r in range(1, SEARCH_ROWS + 1):
        b = i + r
        if b >= n:
            break
        if t[b] - t[i - 1] >= (r + 1) * MIN_INTERVAL_FACTOR * nominal and _steady(
            t, b, min(b + 2, n), nominal
        ):
            _retime(t, i, b)
            frames = tuple(range(i, b))
            return TimestampFault(
                "backward",
                (i,),
                f"back by {back:.3f} ms for {r} frame(s), then the clock carries on",
                frames,
                "re-timed by interpolation from the neighbouring frames",
            )
    return None


def _step(t: np.ndarray, i: int, n: int, nominal: float) -> TimestampFault:
    """The clock stepped back and ran on from there: take the step out of later times.

    The step is measured where the clock runs on at its rate again (frame ``i`` itself,
    or up to SEARCH_ROWS frames later, when the first frames after the step are off on
    their own); frames before that point are re-timed at the nominal interval.
    """
    r = 0
    for k in range(i, min(i + SEARCH_ROWS, n - 1)):
        if abs(t[k + 1] - t[k] - nominal) <= MIN_INTERVAL_FACTOR * nominal:
            r = k - i
            break
    shift = float(t[i - 1] + (r + 1) * nominal - t[i + r])
    back = float(t[i - 1] - t[i + r]) + r * nominal
    t[i + r : n] += shift
    t[i : i + r] = t[i - 1] + nominal * np.arange(1, r + 1)
    also = f"; frames {i}..{i + r - 1} re-timed at the nominal interval" if r else ""
    return TimestampFault(
        "backward",
        (i,),
        f"clock steps back by {back:.3f} ms and runs on",
        tuple(range(i, i + r + 1)),
        f"times from frame {i + r} on shifted by {shift:+.3f} ms{also}",
    )


def _scan_numbers(fn: np.ndarray, n: int) -> list[TimestampFault]:
    """Frame numbers that still run backward once rows are in time order."""
    faults: list[TimestampFault] = []
    i = _next_not_increasing(fn, 1, n)
    while i < n:
        if fn[i] < 0 or fn[i - 1] < 0:
            i = _next_not_increasing(fn, i + 1, n)
            continue
        if (
            fn[i] < fn[i - 1]
            and i + 1 < n
            and fn[i - 1] < fn[i + 1]
            and (i < 2 or fn[i - 2] < fn[i])
        ):
            fn[i - 1], fn[i] = fn[i], fn[i - 1]
            faults.append(
                TimestampFault(
                    "frame_number_order",
                    (i - 1, i),
                    "two frame numbers swapped",
                    (i - 1, i),
                    "the two frame numbers swapped back",
                )
            )
        elif fn[i] == fn[i - 1] and (i + 1 == n or fn[i + 1] > fn[i] + 1):
            fn[i] += 1
            faults.append(
                TimestampFault(
                    "frame_number_order",
                    (i,),
                    f"frame number {int(fn[i]) - 1} repeated",
                    (i,),
                    f"renumbered {int(fn[i])}, the number its neighbours leave free",
                )
            )
        else:
            faults.append(
                TimestampFault(
                    "frame_number_order",
                    (i,),
                    f"frame number {int(fn[i])} after {int(fn[i - 1])}",
                    (),
                    "left as is (frame numbers only count dropped frames)",
                )
            )
        i = _next_not_increasing(fn, i + 1, n)
    return faults


def resolve_timestamps(
    frame_numbers: np.ndarray,
    times_ms: np.ndarray,
    *,
    policy: str = "repair",
    file: str | Path | None = None,
) -> TimestampReport:
    """Diagnose, then apply ``policy``: ``repair`` returns the report (use its repaired
    series), ``fail`` raises an AceInputError naming the file and the frames."""
    if policy not in ("repair", "fail"):
        raise AceInputError(
            f"{TIMESTAMP_FAULTS} = {policy!r}: expected 'repair' or 'fail'",
            column=TIMESTAMP_FAULTS,
        )
    report = diagnose_timestamps(frame_numbers, times_ms, file=file)
    if policy == "fail" and report.any_faults:
        raise AceInputError(
            f"camera timestamps out of order: {report.describe()}. Expected "
            f"'{TIME_COLUMN}' to increase by about {report.nominal_interval_ms:.1f} ms per "
            f"frame and 'Frame Number' to increase. {TIMESTAMP_FAULTS} is 'fail'; to repair "
            f"them (rows reordered, bad times interpolated, each repair listed) set it to "
            f"'repair' ({POLICY_HINT})",
            file=file,
            column=TIME_COLUMN,
        )
    return report
