"""One row per line: its catalog entry beside the key measures of its latest results.

Pure: the caller hands over what each line's results hold (:class:`LineResults`, read
through the typed result handles); nothing here imports Dagster or opens a results folder
by name. A line's periods come from :mod:`ace_assets.catalog.periods`, so an event rate or
a band power "in the control period" counts the same frames and samples as the line's own
``multimodal_results``.

Status of a line (column ``status``):

* ``ok``: every result the line's recordings call for is there and newer than its inputs;
* ``stale``: a result is older than the line's latest ``session_files`` or
  ``analysis_parameters`` (it was computed from other raw files or other settings);
* ``partial``: some results are there, others are not (a stage failed or never ran);
* ``missing``: no result at all (the line was never processed, or its session failed);
* ``invalid``: the catalog row is refused; the reason is in ``note``;
* ``unreadable``: a result folder of the line is damaged; what failed is in ``note``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ace_assets.catalog.experiments import Experiment, problem_text
from ace_assets.catalog.periods import (
    PERIOD_NAMES,
    LinePeriods,
    beyond_recording,
    frame_mask,
    sample_mask,
)
from ace_assets.multimodal.phase_locking import circular_stats

#: catalog columns first, in the order the lab's experiments.csv has them
CATALOG_COLUMNS: dict[str, str] = {
    "line_number": "line_number",
    "animal_id": "animal_id",
    "date": "date",
    "weight_kg": "weight_kg",
    "systemic_drug": "systemic_drug",
    "systemic_dose": "systemic_dose",
    "systemic_drug_concentration": "systemic_drug_concentration",
    "total_systemic_time_min": "total_systemic_time_min",
}
STATUS_COLUMNS = (
    "status",
    "missing_results",
    "stale_results",
    "note",
    "results_updated",
    "periods_outside_recording",
)
#: periods with a value column each; "all" is the whole recording
PERIOD_COLUMNS = ("all", *PERIOD_NAMES)
OK, STALE, PARTIAL, MISSING, INVALID = "ok", "stale", "partial", "missing", "invalid"
UNREADABLE = "unreadable"


@dataclass
class LineResults:
    """What one line's latest results hold; ``None`` where the result is absent.

    ``expected``: the results this line's recordings call for. ``updated_at``: each present
    result's time of writing (POSIX s); ``inputs_at``: the latest of the line's
    ``session_files`` and ``analysis_parameters`` (None: never materialized).
    """

    line: int
    expected: tuple[str, ...] = ()
    updated_at: dict[str, float] = field(default_factory=dict)
    inputs_at: float | None = None
    periods: LinePeriods | None = None
    n_sources: int | None = None
    rejected_ids: Sequence[int] = ()
    events: pd.DataFrame | None = None  # calcium_events: component, frame, time_s
    n_frames: int | None = None
    fps: float | None = None
    frame_times_s: np.ndarray | None = None  # session clock (aligned), None without ephys
    event_phases: pd.DataFrame | None = None  # multimodal_results: phase_<channel> per event
    phase_locking: pd.DataFrame | None = None  # multimodal_results: per component and channel
    band_hz: Sequence[float] | None = None
    band_power: Mapping[str, np.ndarray] | None = None  # power (windows, ch) V², times_s, masked
    band_window_s: float | None = None  # length of each band-power window
    channels: Sequence[str] = ()
    #: fluorescence_eeg_coupling: peak coherence per signal, channel and period
    coherence_peaks: pd.DataFrame | None = None
    denoise: Mapping[str, Any] | None = None
    motion: Mapping[str, Any] | None = None
    alignment: Mapping[str, Any] | None = None
    #: what could not be read (a bad period cell, an unreadable file): shown in ``note``
    problems: list[str] = field(default_factory=list)


def band_label(band_hz: Sequence[float] | None) -> str:
    """``5-9Hz``: the filter band a phase or power column was measured in."""
    if not band_hz:
        return "band"
    return "-".join(f"{float(b):g}" for b in band_hz) + "Hz"


def line_status(results: LineResults) -> dict[str, Any]:
    """status, missing_results, stale_results and when the newest result was written."""
    present = [a for a in results.expected if a in results.updated_at]
    missing = [a for a in results.expected if a not in results.updated_at]
    stale = (
        [a for a in present if results.updated_at[a] < results.inputs_at]
        if results.inputs_at is not None
        else []
    )
    if results.inputs_at is None or not present:
        status, note = MISSING, "no results: the line has not been processed"
    elif missing:
        status, note = PARTIAL, "not computed (yet or failed): " + ", ".join(missing)
    elif stale:
        status, note = (
            STALE,
            "older than the line's session files or parameters: " + ", ".join(stale),
        )
    else:
        status, note = OK, ""
    newest = max(results.updated_at.values(), default=None)
    note = "; ".join(n for n in (note, *results.problems) if n)
    return {
        "status": status,
        "missing_results": ";".join(missing),
        "stale_results": ";".join(stale),
        "note": note,
        "results_updated": _iso(newest),
    }


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return dt.datetime.fromtimestamp(stamp, tz=dt.UTC).isoformat(timespec="seconds")


def _event_session_times(results: LineResults) -> tuple[np.ndarray, str] | None:
    """Event times on the session clock, and which clock placed them."""
    events = results.events
    if events is None:
        return None
    frames = events["frame"].to_numpy(dtype=int)
    zero = results.periods.zero_time_s if results.periods else 0.0
    if results.frame_times_s is not None:
        return np.asarray(results.frame_times_s, dtype=float)[frames], "ephys"
    # no ephys clock: the camera's, frame 0 at 0 s, minus zero time
    return events["time_s"].to_numpy(dtype=float) - zero, "camera"


def _recording_span(results: LineResults) -> tuple[float, float] | None:
    if results.frame_times_s is not None and len(results.frame_times_s):
        t = np.asarray(results.frame_times_s, dtype=float)
        step = float(np.median(np.diff(t))) if t.size > 1 else 0.0
        return float(t[0]), float(t[-1]) + step
    if results.n_frames and results.fps:
        zero = results.periods.zero_time_s if results.periods else 0.0
        return -zero, results.n_frames / results.fps - zero
    return None


def _ephys_span(results: LineResults) -> tuple[float, float] | None:
    """What the band-power windows cover, on the session clock."""
    bp = results.band_power
    if bp is None or results.periods is None or not len(bp["times_s"]):
        return None
    centres = np.asarray(bp["times_s"], dtype=float) - results.periods.zero_time_s
    half = (results.band_window_s or 0.0) / 2
    return float(centres.min()) - half, float(centres.max()) + half


def periods_outside(results: LineResults) -> list[str]:
    """Each period sticking out of what was recorded (movie or ephys), naming its column."""
    if results.periods is None:
        return []
    spans = [s for s in (_recording_span(results), _ephys_span(results)) if s is not None]
    if not spans:
        return []
    whole = (min(s[0] for s in spans), max(s[1] for s in spans))
    return beyond_recording(results.periods, whole)


def _covered(intervals: np.ndarray, span: tuple[float, float]) -> float:
    """Seconds of ``intervals`` inside the recording ``span``."""
    lo, hi = span
    return float(sum(max(0.0, min(e, hi) - max(s, lo)) for s, e in intervals))


def calcium_measures(results: LineResults) -> dict[str, Any]:
    """Sources kept, events, and the event rate per source in each period (Hz)."""
    out: dict[str, Any] = {}
    if results.n_sources is None:
        return out
    kept = results.n_sources - len(results.rejected_ids)
    out["n_sources"] = results.n_sources
    out["n_sources_kept"] = kept
    placed = _event_session_times(results)
    span = _recording_span(results)
    if placed is None or span is None:
        return out
    times, clock = placed
    out["n_events"] = int(times.size)
    out["event_clock"] = clock
    for name in PERIOD_COLUMNS:
        if name == "all":
            intervals = np.array([span])
        elif results.periods is None or not results.periods.named(name):
            continue
        else:
            intervals = results.periods.intervals(name)
        seconds = _covered(intervals, span)
        n = int(frame_mask(intervals, times).sum())
        out[f"event_rate_hz_{name}"] = n / (kept * seconds) if kept and seconds > 0 else np.nan
        out[f"period_s_{name}"] = seconds
    return out


def phase_measures(results: LineResults) -> dict[str, Any]:
    """Per channel in the band: pooled MRL and Rayleigh p of every event's phase, and the
    fraction of sources locked (Rayleigh p < 0.05 of their own events)."""
    out: dict[str, Any] = {}
    phases = results.event_phases
    if phases is None:
        return out
    band = band_label(results.band_hz)
    locking = results.phase_locking
    for channel in results.channels:
        column = f"phase_{channel}"
        if column not in phases:
            continue
        stats = circular_stats(phases[column].to_numpy(dtype=float))
        out[f"mrl_{channel}_{band}"] = stats["mrl"]
        out[f"rayleigh_p_{channel}_{band}"] = stats["rayleigh_p"]
        if locking is not None and len(locking):
            mine = locking[locking["channel"] == channel]
            out[f"locked_fraction_{channel}_{band}"] = (
                float((mine["rayleigh_p"] < 0.05).mean()) if len(mine) else np.nan
            )
    return out


def coupling_measures(results: LineResults) -> dict[str, Any]:
    """Per channel and period: the mean fluorescence's peak coherence with the channel, its
    frequency and whether it passes the significance level, and the fraction of kept
    sources coherent with the channel (``fluorescence_eeg_coupling``)."""
    out: dict[str, Any] = {}
    peaks = results.coherence_peaks
    if peaks is None or not len(peaks) or "signal" not in peaks:
        return out
    for (channel, period), rows in peaks.groupby(["channel", "period"], sort=False):
        mean = rows[rows["signal"] == "mean_fluorescence"]
        if len(mean) and "peak_coherence" in mean:
            out[f"coherence_{channel}_{period}"] = float(mean["peak_coherence"].iloc[0])
            out[f"coherence_freq_hz_{channel}_{period}"] = float(mean["peak_freq_hz"].iloc[0])
            out[f"coherent_{channel}_{period}"] = bool(mean["significant"].iloc[0])
        sources = rows[rows["signal"].astype(str).str.startswith("source_")]
        if "kept" in sources:
            sources = sources[sources["kept"].astype(bool)]
        if len(sources):
            share = sources["significant"].astype(bool).mean()
            out[f"coherent_source_fraction_{channel}_{period}"] = float(share)
    return out


def power_measures(results: LineResults) -> dict[str, Any]:
    """Mean band power (µV²) per channel in each period, over windows centred in it."""
    out: dict[str, Any] = {}
    bp = results.band_power
    if bp is None or results.periods is None:
        return out
    power = np.asarray(bp["power"], dtype=float)
    centres = np.asarray(bp["times_s"], dtype=float)
    usable = ~np.asarray(bp.get("masked", np.zeros(len(centres), bool)), dtype=bool)
    band = band_label(results.band_hz)
    for name in PERIOD_COLUMNS:
        if name == "all":
            inside = usable.copy()
        elif not results.periods.named(name):
            continue
        else:
            inside = usable & sample_mask(results.periods, centres, name=name)
        for c, channel in enumerate(results.channels):
            value = float(np.nanmean(power[inside, c])) * 1e12 if inside.any() else np.nan
            out[f"band_power_uV2_{channel}_{band}_{name}"] = value
    return out


def qc_measures(results: LineResults) -> dict[str, Any]:
    """Dropped and corrupted frames, motion, and the TTL/frame mismatch."""
    out: dict[str, Any] = {}
    if results.denoise is not None:
        dropped = results.denoise.get("dropped_frames") or {}
        out["dropped_frames"] = dropped.get("estimated_missing")
        out["corrupted_frames"] = len(results.denoise.get("corrupted_frames") or [])
    if results.motion is not None:
        out["motion_max_shift_px"] = results.motion.get("max_shift")
        out["motion_low_confidence_fraction"] = results.motion.get("low_confidence_fraction")
    if results.alignment is not None:
        report = results.alignment.get("report") or {}
        out["ttl_mismatch"] = report.get("mismatch")
        out["ttl_repaired_frames"] = len(report.get("repaired_frames") or [])
    return out


def catalog_cells(experiment: Experiment | None, line: int) -> dict[str, Any]:
    if experiment is None:
        return {"line_number": line}
    row = experiment.as_row()
    return {column: row[attr] for column, attr in CATALOG_COLUMNS.items()}


def line_row(experiment: Experiment | None, results: LineResults | None) -> dict[str, Any]:
    """The table row of one line; a refused catalog row is listed with its reason."""
    line = experiment.line_number if experiment is not None else results.line  # type: ignore[union-attr]
    row = catalog_cells(experiment, line)
    if experiment is not None and experiment.problems:
        return {**row, "status": INVALID, "note": problem_text(experiment.problems)}
    if results is None:
        return {**row, "status": MISSING, "note": "no results: the line has not been processed"}
    row.update(line_status(results))
    outside = periods_outside(results)
    if outside:
        row["periods_outside_recording"] = "; ".join(outside)
        row["note"] = "; ".join(n for n in (row["note"], *outside) if n)
    measures_of = (calcium_measures, phase_measures, coupling_measures, power_measures, qc_measures)
    for measures in measures_of:
        row.update(measures(results))
    return row


def unreadable_row(experiment: Experiment, why: str) -> dict[str, Any]:
    """The row of a line whose results could not be read: catalog cells and why."""
    return {
        **catalog_cells(experiment, experiment.line_number),
        "status": UNREADABLE,
        "note": why,
    }


def cohort_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> one table: catalog and status columns first, then measures sorted by name."""
    frame = pd.DataFrame(list(rows))
    head = [c for c in (*CATALOG_COLUMNS, *STATUS_COLUMNS) if c in frame]
    rest = sorted(c for c in frame.columns if c not in head)
    frame = frame.reindex(columns=[*head, *rest])
    return frame.sort_values("line_number", kind="stable").reset_index(drop=True)
