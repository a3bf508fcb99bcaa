"""Fill short runs of missing samples so that a filter sees no trace of them.

Why not a straight line: a 50 ms hole in a signal carrying 60 Hz mains of a few mV, bridged
by a line between two samples at arbitrary phase, is a burst with a DC error of up to the
mains amplitude; a 0.5-4 Hz filter turns it into a transient five times the band's true RMS
(measured on the real Pegasus gapped channels, see the tests). So each run is interpolated
by linear prediction: an autoregressive model (``ORDER`` lags, least squares on the recorded
samples just before the run) continues the signal forward, another (fitted on the samples
just after, time-reversed) continues it backward, and the two are cross-faded linearly
across the run. On those channels this reproduces the removed samples to about 20 µV of a
2.5 mV signal and leaves the filtered RMS within 1% of the intact channels'. Where too few
recorded samples surround a run, or a prediction runs away, the run is bridged by a straight
line (held flat at a segment edge) instead.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal

ORDER = 32
#: recorded samples each side a model is fitted on
CONTEXT = 16 * ORDER


def runs_of(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and stops (exclusive) of the True runs of a 1-D bool array."""
    d = np.diff(np.concatenate([[0], mask.view(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _predict(context: np.ndarray, n: int) -> np.ndarray | None:
    """``n`` samples continuing ``context`` by its least-squares AR(ORDER) model."""
    if context.size < 4 * ORDER:
        return None
    rows = sliding_window_view(context[:-1], ORDER)
    coef, *_ = np.linalg.lstsq(rows, context[ORDER:], rcond=None)
    lags = coef[::-1]  # lags[k - 1] multiplies y[t - k]
    a = np.concatenate([[1.0], -lags])
    zi = signal.lfiltic([1.0], a, y=context[::-1][:ORDER])
    out, _ = signal.lfilter([1.0], a, np.zeros(n), zi=zi)
    scale = np.max(np.abs(context)) if context.size else 0.0
    if not np.all(np.isfinite(out)) or np.max(np.abs(out)) > 4 * scale + 1e-12:
        return None
    return out


def fill_missing(x: np.ndarray, have: np.ndarray) -> None:
    """Fill ``x[~have]`` in place, run by run (see module doc); ``have`` needs a True."""
    starts, stops = runs_of(~have)
    present_starts, present_stops = runs_of(have)
    for s, e in zip(starts.tolist(), stops.tolist(), strict=True):
        n = e - s
        # the recorded stretch touching the run on each side, at most CONTEXT long
        k = int(np.searchsorted(present_stops, s, side="right")) - 1
        left = (
            x[max(present_starts[k], s - CONTEXT) : s]
            if k >= 0 and present_stops[k] == s
            else x[:0]
        )
        j = int(np.searchsorted(present_starts, e, side="left"))
        right = (
            x[e : min(present_stops[j], e + CONTEXT)]
            if j < present_starts.size and present_starts[j] == e
            else x[:0]
        )
        fwd = _predict(left, n) if left.size else None
        bwd = _predict(right[::-1], n) if right.size else None
        if bwd is not None:
            bwd = bwd[::-1]
        w = (np.arange(n) + 1.0) / (n + 1.0)
        if fwd is not None and bwd is not None:
            x[s:e] = (1 - w) * fwd + w * bwd
        elif (fwd is not None and not right.size) or (bwd is not None and not left.size):
            x[s:e] = fwd if fwd is not None else bwd  # one-sided: a segment edge
        elif left.size and right.size:
            x[s:e] = (1 - w) * left[-1] + w * right[0]
        else:
            x[s:e] = left[-1] if left.size else right[0]
