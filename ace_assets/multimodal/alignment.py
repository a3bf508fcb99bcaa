"""Put Miniscope frames on the Neuralynx clock using the per-frame TTL pulses.

The Miniscope DAQ sends one TTL pulse per frame; Neuralynx logs each change of its digital
input port as a ``.nev`` event. Frame i's time on the ephys clock is the i-th rising edge of
the sync bit (see :mod:`ace_assets.multimodal.ttl`), after spurious pulses (listed by the user
in ``indices of TTL events to delete``, indices of that bit's rising edges) are removed.

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

Every alignment is then checked against the camera's own clock: a linear camera->ephys
clock is fitted on the matched pulses, and a frame whose time is further from it than
``tolerance_ms`` (default half a frame interval) is an error naming the frames. That is
what a lost pulse next to a spurious one (the counts agree, the frames between are one
pulse off) or a wrong pulse match looks like. The camera times must increase: a matching
over swapped or backward camera times would put frames a frame interval off, so those
are refused, naming the frames (``timestamp_faults`` = repair fixes them upstream, see
:mod:`ace_assets.io.frame_times`).

``zero_time_s`` is subtracted last, so it sets the shared time origin of everything
downstream (event times, analysis periods).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ace_assets.errors import AceInputError
from ace_assets.io.frame_times import (
    ALIGNMENT_TOLERANCE,
    LISTED,
    POLICY_HINT,
    TIME_COLUMN,
    diagnose_timestamps,
)
from ace_assets.multimodal.ttl import (
    SYNC_BIT_COLUMN,
    SyncBitChoice,
    choose_sync_bit,
    describe_edges,
    ttl_rising_edges,
)

#: a pause between the parts of a split session: this many typical pulse intervals or more
PAUSE_FACTOR = 5.0

__all__ = ["AlignmentReport", "align_frames", "align_frames_to_ttl", "ttl_rising_edges"]


@dataclass(frozen=True)
class AlignmentReport:
    """How the TTL pulses were reconciled with the camera's frames."""

    n_ttl_raw: int
    n_deleted: int
    n_ttl: int  #: pulses after deletion
    n_frames: int
    mismatch: int  #: frames minus pulses after deletion
    zero_time_s: float
    method: str  #: "direct" (one pulse per frame) or "repaired" (missing pulses filled)
    repaired_frames: list[int] = field(default_factory=list)
    clock_slope: float | None = None  #: ephys seconds per camera second
    clock_offset_s: float | None = None
    max_residual_ms: float | None = None  #: worst pulse off the fitted clock line
    tolerance_ms: float | None = None  #: largest frame residual allowed
    max_frame_residual_ms: float | None = None  #: worst frame (pulsed or filled) off the line
    sync: SyncBitChoice | None = None  #: the bit choice (from an event table only)

    @property
    def sync_bit(self) -> int | None:
        return self.sync.sync_bit if self.sync else None

    @property
    def sync_bit_source(self) -> str | None:
        return self.sync.sync_bit_source if self.sync else None

    def manifest(self) -> dict[str, Any]:
        """The JSON the alignment manifest has always carried, keys in the same order."""
        out: dict[str, Any] = {
            "n_ttl_raw": self.n_ttl_raw,
            "n_deleted": self.n_deleted,
            "n_ttl": self.n_ttl,
            "n_frames": self.n_frames,
            "mismatch": self.mismatch,
            "repaired_frames": self.repaired_frames,
            "zero_time_s": self.zero_time_s,
            "method": self.method,
        }
        if self.clock_slope is not None:
            out["clock_slope"] = self.clock_slope
            out["clock_offset_s"] = self.clock_offset_s
            out["max_residual_ms"] = self.max_residual_ms
            out["max_frame_residual_ms"] = self.max_frame_residual_ms
            out["tolerance_ms"] = self.tolerance_ms
        if self.sync is not None:
            out.update(self.sync.manifest())
        return out


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
    tolerance_ms: float | None = None,
    segment_starts: Sequence[int] = (),
) -> tuple[np.ndarray, AlignmentReport]:
    """Per-frame time (s, ephys clock minus ``zero_time_s``) and a report of the reconciliation.

    ``delete_indices`` index the raw ``ttl_times_s`` (before deletion), as in the
    ``indices of TTL events to delete`` column. ``tolerance_ms`` (None: half the camera's
    median frame interval) bounds every frame's distance from the fitted camera clock.
    ``segment_starts`` (first frame of each part of a session split across folders): each
    part is aligned on its own pulses, split at the pauses between parts, since a restart
    starts a new camera clock.
    """
    if len(segment_starts) > 1:
        return _align_segments(
            ttl_times_s,
            n_frames,
            frame_timestamps_ms,
            delete_indices,
            zero_time_s,
            max_repair=max_repair,
            tolerance_ms=tolerance_ms,
            segment_starts=segment_starts,
        )
    raw = np.asarray(ttl_times_s, dtype=np.float64).reshape(-1)
    cam_ms = np.asarray(frame_timestamps_ms, dtype=np.float64).reshape(-1)
    if cam_ms.size != n_frames:
        raise AceInputError(
            f"{cam_ms.size} camera timestamps for {n_frames} frames; timeStamps.csv must have "
            "one row per frame"
        )
    ttl, delete = _delete_pulses(raw, delete_indices)
    if ttl.size > 1 and np.any(np.diff(ttl) <= 0):
        raise AceInputError("TTL times are not strictly increasing")
    if n_frames == 0:
        raise AceInputError("no frames to align")
    if ttl.size == n_frames:
        times = ttl.copy()
        method, repaired = "direct", []
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
        _require_increasing(cam_ms)
        cam = cam_ms / 1000.0
        matched = _match_pulses(ttl, cam, n_frames - ttl.size)
        times = _fill_frames(ttl, cam, matched, n_frames)
        method = "repaired"
        repaired = np.setdiff1d(np.arange(n_frames), matched).tolist()
    clock: dict[str, float] = {}
    if ttl.size >= 2:
        clock = _check_clock(times, ttl, cam_ms, matched, tolerance_ms)
    report = AlignmentReport(
        n_ttl_raw=int(raw.size),
        n_deleted=len(delete),
        n_ttl=int(ttl.size),
        n_frames=int(n_frames),
        mismatch=int(n_frames - ttl.size),
        zero_time_s=float(zero_time_s),
        method=method,
        repaired_frames=repaired,
        **clock,
    )
    return times - float(zero_time_s), report


def _delete_pulses(raw: np.ndarray, indices: list[int] | None) -> tuple[np.ndarray, list[int]]:
    """The pulses left once the user's ``indices of TTL events to delete`` are removed."""
    delete = sorted({int(i) for i in (indices or [])})
    bad = [i for i in delete if not 0 <= i < raw.size]
    if bad:
        raise AceInputError(
            f"TTL indices {bad} to delete are outside 0..{raw.size - 1} ({raw.size} TTL events)",
            column="indices of TTL events to delete",
        )
    return np.delete(raw, delete), delete


def _align_segments(
    ttl_times_s: np.ndarray,
    n_frames: int,
    frame_timestamps_ms: np.ndarray,
    delete_indices: list[int] | None,
    zero_time_s: float,
    *,
    max_repair: int,
    tolerance_ms: float | None,
    segment_starts: Sequence[int],
) -> tuple[np.ndarray, AlignmentReport]:
    """Split the pulses at the pauses between parts; align each part alone; join."""
    raw = np.asarray(ttl_times_s, dtype=np.float64).reshape(-1)
    cam_ms = np.asarray(frame_timestamps_ms, dtype=np.float64).reshape(-1)
    ttl, delete = _delete_pulses(raw, delete_indices)
    bounds = [*sorted(int(b) for b in segment_starts), n_frames]
    k = len(bounds) - 1
    gaps = np.diff(ttl)
    pauses = np.sort(np.argsort(gaps)[::-1][: k - 1]) + 1 if ttl.size > k else np.empty(0, int)
    typical = float(np.median(gaps)) if gaps.size else float("nan")
    if len(pauses) != k - 1 or not np.all(gaps[pauses - 1] > PAUSE_FACTOR * typical):
        raise AceInputError(
            f"the movie is {k} parts (a session split across folders) but the TTL pulses show "
            f"no pause between them (longest intervals {np.sort(gaps)[::-1][: k - 1].tolist()} "
            f"s, typical {typical:.4f} s). Check that the folders in 'calcium imaging "
            "directory' belong to this ephys recording",
            column="calcium imaging directory",
        )
    pulse_bounds = [0, *pauses.tolist(), ttl.size]
    times, reports = [], []
    for i in range(k):
        lo, hi = bounds[i], bounds[i + 1]
        try:
            part, report = align_frames_to_ttl(
                ttl[pulse_bounds[i] : pulse_bounds[i + 1]],
                hi - lo,
                cam_ms[lo:hi],
                max_repair=max_repair,
                tolerance_ms=tolerance_ms,
            )
        except AceInputError as exc:
            raise AceInputError(
                f"part {i + 1} of {k} (frames {lo}-{hi - 1}): {exc.reason}", column=exc.column
            ) from None
        times.append(part)
        reports.append((lo, report))
    joined = np.concatenate(times)
    worst = [r for _, r in reports if r.max_frame_residual_ms is not None]
    report = AlignmentReport(
        n_ttl_raw=int(raw.size),
        n_deleted=len(delete),
        n_ttl=int(ttl.size),
        n_frames=int(n_frames),
        mismatch=int(n_frames - ttl.size),
        zero_time_s=float(zero_time_s),
        method="direct" if all(r.method == "direct" for _, r in reports) else "repaired",
        repaired_frames=[lo + f for lo, r in reports for f in r.repaired_frames],
        clock_slope=reports[0][1].clock_slope,
        clock_offset_s=reports[0][1].clock_offset_s,
        max_residual_ms=max((r.max_residual_ms or 0.0) for r in worst) if worst else None,
        tolerance_ms=reports[0][1].tolerance_ms,
        max_frame_residual_ms=max(r.max_frame_residual_ms for r in worst) if worst else None,
    )
    return joined - float(zero_time_s), report


def _require_increasing(cam_ms: np.ndarray) -> None:
    """Pulses are matched over camera intervals: out-of-order camera times misplace frames."""
    if np.all(np.diff(cam_ms) > 0):
        return
    faults = diagnose_timestamps(np.arange(cam_ms.size), cam_ms)
    raise AceInputError(
        f"camera timestamps out of order ({faults.describe()}): with lost TTL pulses to "
        "fill from the camera clock, those frames would be placed a frame interval off. "
        f"Repair them with timestamp_faults = repair ({POLICY_HINT})",
        column=TIME_COLUMN,
    )


def _check_clock(
    times: np.ndarray,
    ttl: np.ndarray,
    cam_ms: np.ndarray,
    matched: np.ndarray,
    tolerance_ms: float | None,
) -> dict[str, float]:
    """Fit camera -> ephys on the pulsed frames; every frame must lie near that clock."""
    cam = cam_ms / 1000.0
    slope, offset = np.polyfit(cam[matched], ttl, 1)
    pulse_resid = ttl - (offset + slope * cam[matched])
    frame_resid = (times - (offset + slope * cam)) * 1e3
    frame_ms = float(np.median(np.diff(cam_ms))) if cam_ms.size > 1 else float("nan")
    tol = float(tolerance_ms) if tolerance_ms is not None else 0.5 * frame_ms
    off = np.flatnonzero(~(np.abs(frame_resid) <= tol)) if np.isfinite(tol) else []
    order = np.flatnonzero(~(np.diff(times) > 0)) + 1
    if len(off) or order.size:
        bad = np.union1d(off, order).astype(int)
        worst = float(np.nanmax(np.abs(frame_resid)))
        raise AceInputError(
            f"{bad.size} frames are off the camera clock fitted to the TTL pulses by more than "
            f"{tol:.1f} ms (worst {worst:.1f} ms{', some out of order' if order.size else ''}): "
            f"frames {bad[:LISTED].tolist()}{' and more' if bad.size > LISTED else ''}. A lost "
            "pulse next to a spurious one, a pulse matched to the wrong frame, or wrong camera "
            "timestamps there. Check the pulses around those frames ('indices of TTL events "
            f"to delete'), the camera timestamps (timestamp_faults), or raise "
            f"{ALIGNMENT_TOLERANCE} (column '{ALIGNMENT_TOLERANCE}' of "
            f"analysis_parameters.csv or the run-config key "
            f"ops.analysis_parameters.config.overrides.{ALIGNMENT_TOLERANCE})",
            column=ALIGNMENT_TOLERANCE,
        )
    return {
        "clock_slope": float(slope),
        "clock_offset_s": float(offset),
        "max_residual_ms": float(np.max(np.abs(pulse_resid)) * 1e3),
        "tolerance_ms": tol,
        "max_frame_residual_ms": float(np.max(np.abs(frame_resid))),
    }


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


def align_frames(
    events: pd.DataFrame,
    n_frames: int,
    frame_timestamps_ms: np.ndarray,
    delete_indices: list[int] | None = None,
    zero_time_s: float = 0.0,
    *,
    sync_bit: int | None = None,
    events_file: str | None = None,
    max_repair: int = 30,
    tolerance_ms: float | None = None,
    segment_starts: Sequence[int] = (),
) -> tuple[np.ndarray, np.ndarray, AlignmentReport]:
    """Frame times from a ``.nev`` event table: pick the sync bit, then reconcile counts.

    Returns ``(frame_times_s, ttl_times_s of the sync bit, report)``. A failure names the
    events file, the rising edges found on each bit and the settings that fix it.
    """
    delete = list(delete_indices or [])
    chosen, bit_report = choose_sync_bit(
        events,
        n_frames,
        frame_timestamps_ms,
        bit=sync_bit,
        events_file=events_file,
        n_deleted=len(delete),
    )
    try:
        times, report = align_frames_to_ttl(
            chosen.times_s,
            n_frames,
            frame_timestamps_ms,
            delete,
            zero_time_s,
            max_repair=max_repair,
            tolerance_ms=tolerance_ms,
            segment_starts=segment_starts,
        )
    except AceInputError as exc:
        raise AceInputError(
            f"{exc.reason} (sync bit {chosen.bit}, {bit_report.sync_bit_source}). Edges per "
            f"bit: {describe_edges(events)}. If another bit carries the frame pulses, set "
            f"{SYNC_BIT_COLUMN}; spurious pulses go in 'indices of TTL events to delete'",
            file=events_file,
            column=exc.column or SYNC_BIT_COLUMN,
        ) from None
    return times, chosen.times_s, replace(report, sync=bit_report)
