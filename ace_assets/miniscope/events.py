"""Calcium events: peaks of a trace (or of its first/second derivative) above a few SDs.

``derivative_for_estimates`` chooses the signal: ``"zeroth"`` (the trace), ``"first"`` (its
backward difference, peaking on the frame where fluorescence rises, i.e. the spike frame)
or ``"second"`` (backward second difference, sharper onsets). Thresholds are in robust SDs
(1.4826 x MAD around the median) so that the events themselves do not inflate the scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.signal import find_peaks

from ace_assets.errors import AceInputError

DERIVATIVES = ("zeroth", "first", "second")
COLUMNS = ["component", "frame", "time_s", "amplitude", "height_sd"]


def derivative_signal(traces: np.ndarray, derivative: str) -> np.ndarray:
    """The signal events are detected on, same shape as ``traces`` (backward differences)."""
    x = np.asarray(traces, dtype=np.float64)
    if derivative in ("zeroth", "0", "zero"):
        return x.copy()
    if derivative in ("first", "1"):
        return np.diff(x, axis=-1, prepend=x[..., :1])
    if derivative in ("second", "2"):
        d1 = np.diff(x, axis=-1, prepend=x[..., :1])
        return np.diff(d1, axis=-1, prepend=d1[..., :1])
    raise AceInputError(
        f"derivative_for_estimates must be one of {DERIVATIVES}, got {derivative!r}",
        column="derivative_for_estimates",
    )


def robust_sd(x: np.ndarray) -> tuple[float, float]:
    """(median, 1.4826 * MAD); falls back to the plain SD when the MAD is zero."""
    med = float(np.median(x))
    sd = 1.4826 * float(np.median(np.abs(x - med)))
    if sd <= 0:
        sd = float(np.std(x))
    return med, sd


def detect_events(
    traces: np.ndarray,
    fps: float,
    *,
    derivative_for_estimates: str = "first",
    event_height: float = 3.0,
    min_separation: int = 3,
    frame_times: np.ndarray | None = None,
    ids: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Events per component as a DataFrame ``component, frame, time_s, amplitude, height_sd``.

    ``traces`` is (N, T) (C, C_raw or S). ``amplitude`` is the detection signal at the peak
    (trace value, jump or second difference); ``height_sd`` the same in robust SDs above
    the median. ``min_separation`` (frames) keeps the highest of nearby peaks. ``time_s``
    comes from ``frame_times`` when given, else ``frame / fps``. ``ids`` labels components
    (default: row index).
    """
    x = np.asarray(traces, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise AceInputError(f"expected traces of shape (components, frames), got {x.shape}")
    n, t = x.shape
    if not fps or fps <= 0:
        raise AceInputError(f"fps must be positive, got {fps}", column="fps")
    if event_height < 0:
        raise AceInputError(
            f"event_height must be >= 0 SDs, got {event_height}", column="event_height"
        )
    if frame_times is not None and len(frame_times) != t:
        raise AceInputError(
            f"frame_times has {len(frame_times)} entries for {t} frames", column="frame_times"
        )
    labels = np.arange(n) if ids is None else np.asarray(ids)
    if len(labels) != n:
        raise AceInputError(f"{len(labels)} ids for {n} traces", column="ids")
    sig = derivative_signal(x, derivative_for_estimates)
    rows = []
    for k in range(n):
        finite = np.isfinite(sig[k])
        if finite.sum() < 3:
            continue
        s = np.where(finite, sig[k], -np.inf)
        med, sd = robust_sd(sig[k][finite])
        if sd <= 0:
            continue
        thr = med + event_height * sd
        peaks, props = find_peaks(s, height=thr, distance=max(1, int(min_separation)))
        for pk, amp in zip(peaks, props["peak_heights"], strict=False):
            rows.append((labels[k], int(pk), float(amp), float((amp - med) / sd)))
    if not rows:
        return pd.DataFrame(
            {
                "component": pd.Series([], dtype=np.int64),
                "frame": pd.Series([], dtype=np.int64),
                "time_s": pd.Series([], dtype=np.float64),
                "amplitude": pd.Series([], dtype=np.float64),
                "height_sd": pd.Series([], dtype=np.float64),
            }
        )
    comp, frame, amp, hsd = zip(*rows, strict=False)
    frame = np.asarray(frame, dtype=np.int64)
    times = (
        np.asarray(frame_times, dtype=np.float64)[frame]
        if frame_times is not None
        else (frame / float(fps))
    )
    return pd.DataFrame(
        {
            "component": np.asarray(comp, dtype=np.int64),
            "frame": frame,
            "time_s": times,
            "amplitude": np.asarray(amp),
            "height_sd": np.asarray(hsd),
        }
    )


def event_frames_by_component(events: pd.DataFrame, ids: Sequence[int]) -> list[np.ndarray]:
    """Event frames per component, in the order of ``ids``."""
    out = []
    for k in ids:
        sel = events["frame"][events["component"] == k].to_numpy()
        out.append(np.sort(sel.astype(np.int64)))
    return out
