"""The scan behind :func:`ace_assets.io.frame_times.diagnose_timestamps`.

Every place where a camera time does not increase is explained by the smallest change
that restores a steady clock, tried in this order: a swap of two rows; one time that ran
ahead; a clock step back after which the clock runs on at its rate; a short run of times
that went back while the clock carried on; else a step back, measured where the clock
runs on again. The series is repaired in place as the scan goes, so each fault is judged
against repaired neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: An inter-frame interval longer than this many nominal intervals means lost frames.
LONG_INTERVAL_FACTOR = 1.5
#: A repaired stretch must leave every interval at least this share of the nominal one.
MIN_INTERVAL_FACTOR = 0.5
#: How far apart (in rows) two swapped rows, or the ends of a run of bad times, may be.
SEARCH_ROWS = 8


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


def _steady(t: np.ndarray, lo: int, hi: int, nominal: float) -> bool:
    """Every interval of ``t[lo:hi]`` is at least half the nominal one."""
    seg = t[max(lo, 0) : hi]
    return bool(np.all(np.diff(seg) >= MIN_INTERVAL_FACTOR * nominal))


def scan_times(t: np.ndarray, fn: np.ndarray, n: int, nominal: float) -> list[TimestampFault]:
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


def scan_numbers(fn: np.ndarray, n: int) -> list[TimestampFault]:
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
