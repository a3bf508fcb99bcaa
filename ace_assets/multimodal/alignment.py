"""Put Miniscope frames on the Neuralynx clock using the per-frame TTL pulses.

The Miniscope DAQ sends one TTL pulse per frame; Neuralynx logs each change of its digital
input port as a ``.nev`` event. Frame i's time on the ephys clock is the i-th rising edge,
after spurious pulses (listed by the user in ``indices of TTL events to delete``) are removed.

Reconciling counts (``align_frames_to_ttl``):

- equal counts: frame i = TTL i (``method="direct"``);
- fewer TTLs than frames, by at most ``max_repair``: pulses were lost. Each TTL interval is
  matched to the run of camera intervals (``timeStamps.csv``, scaled to the ephys clock by
  the ratio of median intervals) it spans; an interval spanning k camera intervals means k-1
  lost pulses. The first TTL is taken to be frame 0 (nothing in the data can tell otherwise).
  Frames without a pulse get times interpolated in camera time between their matched
  neighbours; frames after the last pulse are extrapolated with a linear camera->ephys clock
  fitted on all matched pulses (``method="repaired"``);
- more TTLs than frames, or more missing than ``max_repair``: AceInputError, with the indices
  of suspiciously short TTL intervals as candidates for deletion.

``zero_time_s`` is subtracted last, so it sets the shared time origin of everything
downstream (event times, analysis periods).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ace_assets.errors import AceInputError

TTL_EVENT_ID = 11


def ttl_rising_edges(
    events: pd.DataFrame, *, bit: int | None = None, time_column: str = "timestamp_s"
) -> np.ndarray:
    """Times of rising edges in the ``.nev`` TTL port word.

    Only TTL-input events are used (event_id 11, or a string starting with "TTL").
    A rising edge is an event whose value, masked to ``bit`` (all 16 bits when None), is
    non-zero while the previous TTL event's masked value was zero. For a port that toggles
    0 -> 1 -> 0 this is simply every event with ``ttl != 0``.
    """
    if events.empty:
        return np.empty(0)
    is_ttl = events["event_id"].to_numpy() == TTL_EVENT_ID
    if "string" in events:
        is_ttl |= events["string"].astype(str).str.startswith("TTL").to_numpy()
    ttl_rows = events[is_ttl]
    mask = 0xFFFF if bit is None else (1 << int(bit))
    value = ttl_rows["ttl"].to_numpy(dtype=np.int64) & mask
    prev = np.concatenate([[0], value[:-1]])
    rising = (value != 0) & (prev == 0)
    return ttl_rows[time_column].to_numpy(dtype=np.float64)[rising]


def _short_interval_candidates(ttl: np.ndarray) -> list[int]:
    if ttl.size < 3:
        return []
    d = np.diff(ttl)
    return (np.flatnonzero(d < 0.5 * np.median(d)) + 1).tolist()


def _match_pulses(ttl: np.ndarray, cam: np.ndarray, n_missing: int) -> np.ndarray:
    """Frame index of every TTL (monotone, first = 0), absorbing ``n_missing`` lost pulses."""
    scale = np.median(np.diff(ttl)) / np.median(np.diff(cam))
    frames = np.empty(ttl.size, dtype=np.int64)
    frames[0] = 0
    budget = n_missing
    tol = 0.5 * np.median(np.diff(cam)) * scale
    for j in range(1, ttl.size):
        f = frames[j - 1]
        dt = ttl[j] - ttl[j - 1]
        ks = np.arange(1, min(budget + 1, cam.size - 1 - f) + 1)
        if ks.size == 0:
            raise AceInputError(f"TTL pulse {j} has no camera frame left to match")
        err = np.abs(dt - (cam[f + ks] - cam[f]) * scale)
        best = int(np.argmin(err))
        if err[best] > tol:
            raise AceInputError(
                f"TTL interval before pulse {j} ({dt * 1e3:.1f} ms) matches no run of camera "
                f"frame intervals after frame {f} (closest off by {err[best] * 1e3:.1f} ms)"
            )
        frames[j] = f + ks[best]
        budget -= ks[best] - 1
    return frames


def align_frames_to_ttl(
    ttl_times_s: np.ndarray,
    n_frames: int,
    frame_timestamps_ms: np.ndarray,
    delete_indices: list[int] | None = None,
    zero_time_s: float = 0.0,
    *,
    max_repair: int = 30,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-frame time (s, ephys clock minus ``zero_time_s``) and a report of the reconciliation.

    ``delete_indices`` index the raw ``ttl_times_s`` (before deletion), as in the
    ``indices of TTL events to delete`` column.
    """
    raw = np.asarray(ttl_times_s, dtype=np.float64).reshape(-1)
    cam_ms = np.asarray(frame_timestamps_ms, dtype=np.float64).reshape(-1)
    if cam_ms.size != n_frames:
        raise AceInputError(
            f"{cam_ms.size} camera timestamps for {n_frames} frames; timeStamps.csv must have "
            "one row per frame"
        )
    delete = sorted({int(i) for i in (delete_indices or [])})
    bad = [i for i in delete if not 0 <= i < raw.size]
    if bad:
        raise AceInputError(
            f"TTL indices {bad} to delete are outside 0..{raw.size - 1} ({raw.size} TTL events)",
            column="indices of TTL events to delete",
        )
    ttl = np.delete(raw, delete)
    if ttl.size > 1 and np.any(np.diff(ttl) <= 0):
        raise AceInputError("TTL times are not strictly increasing")
    report: dict[str, Any] = {
        "n_ttl_raw": int(raw.size),
        "n_deleted": len(delete),
        "n_ttl": int(ttl.size),
        "n_frames": int(n_frames),
        "mismatch": int(n_frames - ttl.size),
        "repaired_frames": [],
        "zero_time_s": float(zero_time_s),
    }
    if n_frames == 0:
        raise AceInputError("no frames to align")
    if ttl.size == n_frames:
        times = ttl.copy()
        report["method"] = "direct"
        matched = np.arange(n_frames)
    elif ttl.size > n_frames:
        cands = _short_interval_candidates(raw)
        raise AceInputError(
            f"{ttl.size} TTL pulses (after deleting {len(delete)}) for {n_frames} frames: "
            f"{ttl.size - n_frames} too many. Add the spurious pulses to 'indices of TTL events "
            f"to delete'; pulses following unusually short intervals: {cands[:20]}",
            column="indices of TTL events to delete",
        )
    elif n_frames - ttl.size > max_repair or ttl.size < 2:
        raise AceInputError(
            f"{ttl.size} TTL pulses for {n_frames} frames: {n_frames - ttl.size} missing, more "
            f"than max_repair={max_repair}; check the events file and the TTL wiring"
        )
    else:
        cam = cam_ms / 1000.0
        matched = _match_pulses(ttl, cam, n_frames - ttl.size)
        times = _fill_frames(ttl, cam, matched, n_frames)
        report["method"] = "repaired"
        report["repaired_frames"] = np.setdiff1d(np.arange(n_frames), matched).tolist()
    if ttl.size >= 2:
        cam = cam_ms / 1000.0
        slope, offset = np.polyfit(cam[matched], ttl, 1)
        resid = ttl - (offset + slope * cam[matched])
        report["clock_slope"] = float(slope)
        report["clock_offset_s"] = float(offset)
        report["max_residual_ms"] = float(np.max(np.abs(resid)) * 1e3)
    return times - float(zero_time_s), report


def _fill_frames(ttl: np.ndarray, cam: np.ndarray, matched: np.ndarray, n: int) -> np.ndarray:
    times = np.full(n, np.nan)
    times[matched] = ttl
    inner = np.arange(matched[0], matched[-1] + 1)
    times[inner] = np.interp(cam[inner], cam[matched], ttl)
    times[matched] = ttl
    slope, offset = np.polyfit(cam[matched], ttl, 1)
    tail = np.arange(matched[-1] + 1, n)
    times[tail] = ttl[-1] + (cam[tail] - cam[matched[-1]]) * slope
    return times
