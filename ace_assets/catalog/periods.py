"""Analysis periods of a line, parsed once: baseline, high slow-wave power, control.

Every period is on the *session clock*: seconds after the line's ``zero time (s)``, the
clock frame times are on once aligned (:mod:`ace_assets.multimodal.alignment`). The ephys
clock is the session clock plus ``zero time (s)`` (seconds from the first ephys sample's
timestamp origin). Periods are half-open, ``start <= t < end``, so two periods that touch
never share a frame or a sample.

The baseline is the ``baseline period (min)`` minutes just before zero time: zero time marks
where the manipulation starts (an infusion), and the baseline is what precedes it.

Every consumer (per-line results, the cohort table) takes its periods from here, so a
period means the same frames and samples everywhere. ``analysis_parameters`` parses them as
soon as a line's settings are resolved, so a bad cell fails there, before any processing:

* a pair that is not ``[start, end]`` with finite ``start < end`` seconds;
* a listed interval starting before zero time (time before zero time is the baseline);
* a high slow-wave interval overlapping a control interval (a frame in both would count
  for both sides of the comparison). Intervals of one column may overlap: they are merged.

Whether a period lies inside the recording is known only once the recording is read:
:func:`beyond_recording` says which periods stick out, naming their column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ace_assets.errors import AceInputError

BASELINE_COLUMN = "baseline period (min)"
ZERO_COLUMN = "zero time (s)"
#: period name -> the analysis_parameters.csv column listing its [start, end] pairs (s)
INTERVAL_COLUMNS: dict[str, str] = {
    "high_slow_wave": "periods of high slow wave power (s)",
    "control": "control periods (s)",
}
#: every period name, in the order a session runs: baseline first
PERIOD_NAMES: tuple[str, ...] = ("baseline", *INTERVAL_COLUMNS)
COLUMN_OF: dict[str, str] = {"baseline": BASELINE_COLUMN, **INTERVAL_COLUMNS}


@dataclass(frozen=True)
class Period:
    """One interval of a named period, seconds on the session clock (half-open)."""

    name: str
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class LinePeriods:
    """All periods of one line, and the zero time that puts them on the ephys clock."""

    periods: tuple[Period, ...]
    zero_time_s: float = 0.0

    def named(self, name: str) -> tuple[Period, ...]:
        if name not in PERIOD_NAMES:
            raise KeyError(f"unknown period {name!r}; periods are {list(PERIOD_NAMES)}")
        return tuple(p for p in self.periods if p.name == name)

    def intervals(self, name: str) -> np.ndarray:
        """The period's (k, 2) [start, end) array, sorted, overlapping intervals merged."""
        return merge_intervals([(p.start_s, p.end_s) for p in self.named(name)])

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the periods this line defines (at least one interval), in session order."""
        return tuple(n for n in PERIOD_NAMES if self.named(n))

    def duration_s(self, name: str) -> float:
        iv = self.intervals(name)
        return float((iv[:, 1] - iv[:, 0]).sum())


def merge_intervals(intervals: Sequence[Sequence[float]] | Sequence[float] | None) -> np.ndarray:
    """``[[start, end], ...]`` (or one ``[start, end]``) -> sorted, merged (k, 2) array.

    Raises ValueError saying what is wrong (shape, start < end, not finite).
    """
    if intervals is None:
        return np.empty((0, 2))
    arr = np.asarray(intervals, dtype=np.float64)
    if arr.size == 0:
        return np.empty((0, 2))
    if arr.ndim == 1:
        if arr.size != 2:
            raise ValueError(f"a period is [start, end] in seconds, got {list(arr)}")
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"periods must be [[start, end], ...], got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"period bounds must be finite numbers of seconds, got {arr.tolist()}")
    if np.any(arr[:, 1] <= arr[:, 0]):
        raise ValueError(f"each period needs start < end (s), got {arr.tolist()}")
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    merged = [arr[0].copy()]
    for s, e in arr[1:]:
        if s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append(np.array([s, e]))
    return np.array(merged)


def line_periods(
    values: Mapping[str, Any],
    *,
    file: str | Path | None = None,
    row: int | None = None,
    line: int | None = None,
) -> LinePeriods:
    """The periods of one line from its analysis parameters (a ``LineParameters`` works).

    A bad value raises :class:`AceInputError` naming ``file``, ``row``, the line and the
    column, with the grammar expected.
    """

    def fail(column: str, why: str) -> AceInputError:
        return AceInputError(why, file=file, row=row, line=line, column=column)

    zero = values[ZERO_COLUMN] if _has(values, ZERO_COLUMN) else 0.0
    if isinstance(zero, bool) or not isinstance(zero, (int, float)) or not math.isfinite(zero):
        raise fail(ZERO_COLUMN, f"{zero!r} is not a time: expected a number of seconds such as 0")
    periods: list[Period] = []
    minutes = values[BASELINE_COLUMN] if _has(values, BASELINE_COLUMN) else None
    if minutes is not None:
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, (int, float))
            or not math.isfinite(minutes)
            or minutes <= 0
        ):
            raise fail(
                BASELINE_COLUMN,
                f"{minutes!r} is not a baseline length: expected a positive number of minutes "
                "(the baseline is that long, ending at 'zero time (s)'), or an empty cell",
            )
        periods.append(Period("baseline", -60.0 * float(minutes), 0.0))
    for name, column in INTERVAL_COLUMNS.items():
        raw = values[column] if _has(values, column) else None
        try:
            listed = _pairs(raw)
        except ValueError as exc:
            raise fail(
                column,
                f"{exc}; expected [start, end] pairs in seconds after zero time, "
                "such as [[0, 60], [120, 180]]",
            ) from None
        early = [(s, e) for s, e in listed if s < 0]
        if early:
            raise fail(
                column,
                f"{[list(p) for p in early]} starts before zero time: intervals are seconds "
                "after 'zero time (s)' (0 or later); the time before it is the baseline "
                f"('{BASELINE_COLUMN}'), or lower 'zero time (s)'",
            )
        periods += [Period(name, s, e) for s, e in listed]
    found = LinePeriods(tuple(periods), float(zero))
    clash = _overlap(found, *INTERVAL_COLUMNS)
    if clash is not None:
        (a, b), (c, d) = clash
        raise fail(
            INTERVAL_COLUMNS["control"],
            f"control period [{c:g}, {d:g}] overlaps the high slow wave period [{a:g}, {b:g}] "
            f"('{INTERVAL_COLUMNS['high_slow_wave']}'): a frame would count for both; "
            "expected periods that at most touch, such as [[0, 60]] and [[60, 120]]",
        )
    return found


def _overlap(
    periods: LinePeriods, first: str, second: str
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The first pair of intervals of two periods sharing time (touching is fine)."""
    for a, b in periods.intervals(first):
        for c, d in periods.intervals(second):
            if max(a, c) < min(b, d):
                return (float(a), float(b)), (float(c), float(d))
    return None


def beyond_recording(periods: LinePeriods, span_s: tuple[float, float]) -> list[str]:
    """What of each period lies outside the recording ``span_s`` (session clock), naming
    the catalog column to correct; empty when every period is inside."""
    lo, hi = span_s
    out = []
    for p in periods.periods:
        if p.start_s >= lo and p.end_s <= hi:
            continue
        outside = "wholly outside" if p.end_s <= lo or p.start_s >= hi else "partly outside"
        out.append(
            f"'{COLUMN_OF[p.name]}': {p.name} [{p.start_s:g}, {p.end_s:g}] s is {outside} "
            f"the recording [{lo:.3g}, {hi:.3g}) s after zero time; only the recorded part "
            "counts"
        )
    return out


def period_rows(periods: LinePeriods) -> list[dict[str, Any]]:
    """One row per listed interval: name, column, bounds on the session and ephys clocks."""
    return [
        {
            "period": p.name,
            "column": COLUMN_OF[p.name],
            "start_s": p.start_s,
            "end_s": p.end_s,
            "duration_s": p.duration_s,
            "ephys_start_s": p.start_s + periods.zero_time_s,
            "ephys_end_s": p.end_s + periods.zero_time_s,
        }
        for p in periods.periods
    ]


def _has(values: Mapping[str, Any], key: str) -> bool:
    try:
        values[key]
    except KeyError:
        return False
    return True


def _pairs(raw: Any) -> list[tuple[float, float]]:
    """Each listed [start, end] as given (validated, not merged: the catalog's own intervals)."""
    if raw is None or (isinstance(raw, (list, tuple)) and len(raw) == 0):
        return []
    merge_intervals(raw)  # validates shape, finiteness and start < end
    arr = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
    return [(float(s), float(e)) for s, e in arr]


def _as_intervals(periods: LinePeriods | Sequence[Period] | np.ndarray, name: str | None):
    if isinstance(periods, LinePeriods):
        if name is None:
            raise TypeError("name the period to map (e.g. 'control')")
        return periods.intervals(name)
    if isinstance(periods, np.ndarray):
        return merge_intervals(periods)
    return merge_intervals([(p.start_s, p.end_s) for p in periods])


def frame_mask(
    periods: LinePeriods | Sequence[Period] | np.ndarray,
    frame_times_s: np.ndarray,
    name: str | None = None,
) -> np.ndarray:
    """Which frames lie in the period, from frame times on the session clock."""
    t = np.asarray(frame_times_s, dtype=np.float64).reshape(-1)
    inside = np.zeros(t.size, dtype=bool)
    for s, e in _as_intervals(periods, name):
        inside |= (t >= s) & (t < e)
    return inside


def to_ephys_clock(session_s: np.ndarray | float, zero_time_s: float) -> np.ndarray:
    """Session-clock seconds -> ephys-clock seconds (from the first sample's origin)."""
    return np.asarray(session_s, dtype=np.float64) + float(zero_time_s)


def to_session_clock(ephys_s: np.ndarray | float, zero_time_s: float) -> np.ndarray:
    return np.asarray(ephys_s, dtype=np.float64) - float(zero_time_s)


def sample_mask(
    periods: LinePeriods | Sequence[Period] | np.ndarray,
    sample_times_s: np.ndarray,
    zero_time_s: float | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Which samples lie in the period, from sample times on the ephys clock.

    ``zero_time_s`` defaults to the line's own when ``periods`` is a :class:`LinePeriods`.
    """
    if zero_time_s is None:
        if not isinstance(periods, LinePeriods):
            raise TypeError("zero_time_s is needed to map bare periods onto the ephys clock")
        zero_time_s = periods.zero_time_s
    return frame_mask(periods, to_session_clock(sample_times_s, zero_time_s), name)


def sample_ranges(
    periods: LinePeriods | Sequence[Period] | np.ndarray,
    sample_times_s: np.ndarray,
    zero_time_s: float | None = None,
    name: str | None = None,
) -> list[tuple[int, int]]:
    """``[start, stop)`` sample index ranges of each interval (sample times increasing).

    Reading a store by ranges touches only the period's samples, not the whole recording.
    """
    if zero_time_s is None:
        if not isinstance(periods, LinePeriods):
            raise TypeError("zero_time_s is needed to map bare periods onto the ephys clock")
        zero_time_s = periods.zero_time_s
    t = np.asarray(sample_times_s, dtype=np.float64).reshape(-1)
    out = []
    for s, e in _as_intervals(periods, name):
        lo, hi = np.searchsorted(t, to_ephys_clock(np.array([s, e]), zero_time_s), side="left")
        if hi > lo:
            out.append((int(lo), int(hi)))
    return out
