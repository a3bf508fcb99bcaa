"""From every frame's correlation window to one motion trace, searching near the trajectory.

Why not each frame's highest peak: in a sparse, quiet movie a frame may show one active
neuron, and within ``max_shifts`` its correlation with the template can peak where that
neuron meets a *neighbouring* template neuron, far from the true lag and just as tall.
Such a peak is confident and wrong. The brain's motion is continuous, so the neighbours
in time say where to look:

1. a robust first trajectory through the confident frames whose highest peak *agrees*
   with others nearby (at least one, and half of the confident frames within
   ``HALF_WINDOW`` frames, lie within ``AGREE_PX + AGREE_PX_PER_FRAME * distance``):
   wrong peaks land anywhere, true ones line up; a sudden real step still agrees with
   the frames after it. Gaps are interpolated;
2. each frame's peak is searched again within ``SEARCH_RADIUS`` px of that trajectory
   (a frame with no peak there keeps its highest one: the brain may really have moved)
   and the lags smoothed (:func:`~ace_assets.miniscope.shift_smoothing.smooth_lags`,
   which drops what its neighbours do not predict);
3. once more within 3 posterior SDs of the smoothed trace (at least ``MIN_RADIUS`` px);
   a frame whose own peak is still below ``min_confidence`` is measured on its window
   added to its neighbours' (``POOL_HALVES`` either side, each moved along the trace so
   their peaks coincide): in a quiet stretch no single frame shows enough, a few do. What
   is still below ``min_confidence`` is interpolated by the smoother.

On a textured movie the highest peak is the local one and nothing changes. The windows are
z-scored correlation planes (the confidence is the peak's value), kept per frame by the
caller (in a scratch file for a whole movie).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ace_assets.miniscope.registration import subpixel_offsets
from ace_assets.miniscope.shift_smoothing import SmoothedShifts, smooth_lags

HALF_WINDOW = 7
AGREE_PX = 1.5
AGREE_PX_PER_FRAME = 0.5
SEARCH_RADIUS = 3.0
MIN_RADIUS = 1.5
#: neighbours either side whose windows are added to a weak frame's
POOL_HALVES = (4,)
POOL_BATCH = 2048


@dataclass(frozen=True)
class Track:
    """The motion trace of a movie and the per-frame measurements it was made from."""

    measured: np.ndarray
    """(n, 2) lags of the peaks finally used (searched near the trajectory)."""
    confidence: np.ndarray
    """(n,) z-score of each frame's own peak near the trajectory."""
    pooled: np.ndarray
    """(n,) bool: the frame's own peak was too weak; its neighbours' windows, added, were not."""
    smoothed: SmoothedShifts
    first_peaks: np.ndarray
    """(n, 2) each frame's highest peak anywhere within ``max_shifts``."""


def window_peaks(
    windows: np.ndarray,
    centre: np.ndarray,
    radius: np.ndarray | float,
    limit: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel lag, z and lag SD of the highest sample within ``radius`` of ``centre``.

    A highest sample that is not a local maximum of the whole window (it sits on the
    search region's edge, on the slope of a peak further out) has ``z = 0``: there is no
    peak near ``centre``.

    ``windows`` is (n, 2m + 3, 2m + 3): lags ``-m-1 .. m+1`` on both axes, where ``m`` is
    the search bound; the outer ring only serves the sub-pixel fit. ``limit`` bounds the
    lags (``max_shifts``). The SD per axis is ``1 / sqrt(z * curvature)``: for a peak of
    width ``w`` (``curvature = z / w^2`` in z units) standing ``z`` noise SDs high, noise
    that varies on the peak's own scale moves it by about ``w / z``.
    """
    n, size = windows.shape[0], windows.shape[1]
    half = size // 2
    axis = np.arange(size) - half
    inside = np.ones(size, bool)
    inside[[0, -1]] = False
    radius = np.broadcast_to(np.asarray(radius, np.float64), (n,))
    lags = np.zeros((n, 2))
    z = np.zeros(n)
    sd = np.full((n, 2), np.inf)
    ly = inside & (np.abs(axis) <= limit[0])
    lx = inside & (np.abs(axis) <= limit[1])
    for t in range(n):
        w = np.asarray(windows[t], np.float64)
        my = ly & (np.abs(axis - centre[t, 0]) <= radius[t])
        mx = lx & (np.abs(axis - centre[t, 1]) <= radius[t])
        if not my.any():
            my = ly & (np.abs(axis - centre[t, 0]) == np.abs(axis - centre[t, 0])[ly].min())
        if not mx.any():
            mx = lx & (np.abs(axis - centre[t, 1]) == np.abs(axis - centre[t, 1])[lx].min())
        sub = np.where(my[:, None] & mx[None, :], w, -np.inf)
        iy, ix = np.unravel_index(int(np.argmax(sub)), sub.shape)
        dy = subpixel_offsets(w[iy, ix], w[iy - 1, ix], w[iy + 1, ix])
        dx = subpixel_offsets(w[iy, ix], w[iy, ix - 1], w[iy, ix + 1])
        lags[t] = axis[iy] + dy, axis[ix] + dx  # kept for a caller's fallback even if no peak
        c = w[iy, ix]
        if c < w[iy - 1 : iy + 2, ix - 1 : ix + 2].max():
            continue  # no peak here
        z[t] = c
        curv = (2 * c - w[iy - 1, ix] - w[iy + 1, ix], 2 * c - w[iy, ix - 1] - w[iy, ix + 1])
        if c > 0:
            sd[t] = [1.0 / np.sqrt(c * k) if k > 0 else np.inf for k in curv]
    lags = np.clip(lags, -np.asarray(limit), np.asarray(limit))
    return lags, np.nan_to_num(z, nan=0.0, neginf=0.0, posinf=0.0), np.nan_to_num(sd, nan=np.inf)


def agreeing_frames(
    peaks: np.ndarray, ok: np.ndarray, half: int, segment: np.ndarray
) -> np.ndarray:
    """Confident frames whose peak lies close to the peaks of other confident frames nearby."""
    n = len(peaks)
    agree = np.zeros(n, np.int64)
    others = np.zeros(n, np.int64)
    for off in range(1, half + 1):
        a, b = np.arange(n - off), np.arange(off, n)
        both = ok[a] & ok[b] & (segment[a] == segment[b])
        close = np.abs(peaks[a] - peaks[b]).max(axis=1) <= AGREE_PX + AGREE_PX_PER_FRAME * off
        for i in (a, b):
            others[i] += both
            agree[i] += both & close
    return ok & (agree >= 1) & (2 * agree >= others)


def _segments(n: int, segment_starts: np.ndarray | None) -> np.ndarray:
    marks = np.zeros(n, np.int64)
    if segment_starts is not None:
        starts = np.asarray(segment_starts, np.int64)
        marks[starts[(starts > 0) & (starts < n)]] = 1
    return np.cumsum(marks)


def interpolated(lags: np.ndarray, ok: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """``lags`` of the ``ok`` frames, linearly interpolated in between (per stretch)."""
    out = np.zeros((len(lags), 2))
    for sid in np.unique(segment):
        t = np.flatnonzero(segment == sid)
        good = t[ok[t]]
        for axis in range(2):
            out[t, axis] = np.interp(t, good, lags[good, axis]) if len(good) else 0.0
    return out


def track(
    windows: np.ndarray,
    limit: tuple[float, float],
    min_confidence: float,
    segment_starts: np.ndarray | list[int] | None = None,
) -> Track:
    """The smoothed motion trace (lags) of ``windows``; see the module docstring."""
    n = windows.shape[0]
    starts = None if segment_starts is None else np.asarray(segment_starts, np.int64)
    segment = _segments(n, starts)
    first, z0, _ = window_peaks(windows, np.zeros((n, 2)), np.inf, limit)
    trusted = agreeing_frames(first, z0 >= min_confidence, HALF_WINDOW, segment)
    rough = interpolated(first, trusted, segment)
    lags, z, sd = window_peaks(windows, rough, SEARCH_RADIUS, limit)
    _, _, first_sd = window_peaks(windows, first, 0.0, limit)
    moved = (z <= 0) & (z0 >= min_confidence)  # no peak near the rough trace, a strong one away
    lags[moved], z[moved], sd[moved] = first[moved], z0[moved], first_sd[moved]
    smoothed = smooth_lags(lags, z, min_confidence, starts, sd)
    post = np.nan_to_num(smoothed.sd, nan=SEARCH_RADIUS, posinf=SEARCH_RADIUS).max(axis=1)
    radius = np.clip(3.0 * post, MIN_RADIUS, SEARCH_RADIUS)
    lags, z, sd = window_peaks(windows, smoothed.lags, radius, limit)
    own = z.copy()
    for half in POOL_HALVES:
        weak = np.flatnonzero(z < min_confidence)
        if not len(weak):
            break
        for a in range(0, len(weak), POOL_BATCH):  # bounded memory on long movies
            few = weak[a : a + POOL_BATCH]
            pooled = pooled_windows(windows, smoothed.lags, few, half, starts)
            plags, pz, psd = window_peaks(pooled, smoothed.lags[few], radius[few], limit)
            better = pz >= min_confidence
            lags[few[better]] = plags[better]
            z[few[better]] = pz[better]
            sd[few[better]] = psd[better]
    smoothed = smooth_lags(lags, z, min_confidence, starts, sd)
    return Track(
        lags,
        own,
        (own < min_confidence) & (z >= min_confidence),
        smoothed,
        first,
    )


def pooled_windows(
    windows: np.ndarray,
    trajectory: np.ndarray,
    frames: np.ndarray,
    half: int,
    segment_starts: np.ndarray | None = None,
) -> np.ndarray:
    """For each of ``frames``, the z-scored sum of its window and its neighbours' windows.

    Each neighbour's window is moved by the trajectory's change between the two frames,
    so the true peaks add up where frame ``t``'s peak is; noise adds as sqrt(count).
    """
    n = windows.shape[0]
    seg = _segments(n, segment_starts)
    out = np.zeros((len(frames), *windows.shape[1:]), np.float32)
    size = (windows.shape[2], windows.shape[1])
    for k, t in enumerate(frames):
        acc = np.zeros(windows.shape[1:], np.float32)
        count = 0
        for j in range(max(0, t - half), min(n, t + half + 1)):
            if seg[j] != seg[t]:
                continue
            d = trajectory[t] - trajectory[j]
            m = np.float32([[1, 0, d[1]], [0, 1, d[0]]])
            acc += cv2.warpAffine(
                np.asarray(windows[j], np.float32),
                m,
                size,
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
            count += 1
        out[k] = acc / np.float32(np.sqrt(max(count, 1)))
    return out
