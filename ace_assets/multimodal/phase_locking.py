"""Phase-locking of calcium events to ephys oscillations, and event rates in analysis periods.

Event phases are read from a phase time series (radians, e.g. from
:mod:`ace_assets.ephys.phase`) at the event times by *complex* interpolation: cos and sin
are interpolated linearly between the neighbouring samples and the angle taken, which never
jumps the wrong way across the -pi/pi wrap. Events outside the phase series, or falling in
a recording gap, get NaN and are left out of the statistics.

Statistics per (component, channel): circular mean phase, mean resultant length
``R = |mean(exp(i*phase))|``, Rayleigh ``z = n R^2`` and its p-value by Zar's
approximation (Biostatistical Analysis, 1999, eq. 27.4)::

    p = exp(sqrt(1 + 4n + 4(n^2 - (nR)^2)) - (1 + 2n))

Times are seconds on the shared clock, i.e. after ``zero time (s)`` was subtracted (the
frame times from :func:`ace_assets.multimodal.alignment.align_frames_to_ttl`); analysis
periods (``periods of high slow wave power (s)``, ``control periods (s)``) are on that clock,
parsed once by :mod:`ace_assets.catalog.periods`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ace_assets.catalog.periods import merge_intervals

Periods = Sequence[Sequence[float]] | Sequence[float]


def _interp_phase(pos: np.ndarray, read_rows: Any) -> np.ndarray:
    """Complex interpolation at fractional sample positions (NaN where pos is NaN)."""
    ok = np.isfinite(pos)
    out_shape = (pos.size, read_rows(np.zeros(1, dtype=np.int64)).shape[1])
    out = np.full(out_shape, np.nan)
    if not ok.any():
        return out
    p = pos[ok]
    i0 = np.floor(p).astype(np.int64)
    w = (p - i0)[:, None]
    ph0 = read_rows(i0)
    ph1 = read_rows(i0 + 1)
    z = (1 - w) * np.exp(1j * ph0) + w * np.exp(1j * ph1)
    out[ok] = np.angle(z)
    return out


def event_phases(
    event_times_s: np.ndarray, phase_times_s: np.ndarray, phase_rad: np.ndarray
) -> np.ndarray:
    """Phase at each event from an in-memory phase series (n,) or (n, channels).

    ``phase_times_s`` must increase. Events more than 1.5 median sample intervals from the
    nearest samples on both sides (outside the series or inside a gap) are NaN.
    """
    t = np.asarray(phase_times_s, dtype=np.float64)
    ph = np.asarray(phase_rad, dtype=np.float64)
    flat = ph.ndim == 1
    ph2 = ph[:, None] if flat else ph
    ev = np.asarray(event_times_s, dtype=np.float64).reshape(-1)
    pos = np.full(ev.size, np.nan)
    if t.size > 1:
        dt = np.median(np.diff(t))
        idx = np.searchsorted(t, ev, side="right") - 1
        idx = np.where((idx == t.size - 1) & (ev == t[-1]), t.size - 2, idx)  # last sample
        inside = (idx >= 0) & (idx <= t.size - 2)
        i = np.clip(idx, 0, t.size - 2)
        span = t[i + 1] - t[i]
        inside &= span <= 1.5 * dt
        pos = np.where(inside, i + (ev - t[i]) / span, np.nan)
    out = _interp_phase(pos, lambda rows: ph2[np.clip(rows, 0, t.size - 1)])
    return out[:, 0] if flat else out


def event_phases_store(event_times_s: np.ndarray, phase_store: Any, clock: Any) -> np.ndarray:
    """Phases (n_events, n_channels) from a phase ArrayStore (n_samples, n_channels) and its
    :class:`~ace_assets.io.neuralynx.SampleClock`; reads only the neighbouring samples."""
    mm = phase_store.mmap
    pos = clock.position(np.asarray(event_times_s, dtype=np.float64).reshape(-1))
    n = mm.shape[0]

    def read_rows(rows: np.ndarray) -> np.ndarray:
        uniq, inverse = np.unique(np.clip(rows, 0, n - 1), return_inverse=True)
        block = np.asarray(mm[uniq], dtype=np.float64)  # sorted fancy index: few page reads
        block = block[:, None] if block.ndim == 1 else block
        return block[inverse]

    return _interp_phase(pos, read_rows)


def rayleigh_test(phases: np.ndarray) -> tuple[float, float]:
    """Rayleigh z and p (Zar's approximation) for phases in radians; NaNs ignored."""
    ph = np.asarray(phases, dtype=np.float64)
    ph = ph[np.isfinite(ph)]
    n = ph.size
    if n == 0:
        return float("nan"), float("nan")
    r_n = np.abs(np.exp(1j * ph).sum())
    z = r_n**2 / n
    p = np.exp(np.sqrt(1 + 4 * n + 4 * (n**2 - r_n**2)) - (1 + 2 * n))
    return float(z), float(min(max(p, 0.0), 1.0))


def circular_stats(phases: np.ndarray) -> dict[str, float]:
    """n, circular mean phase (rad), mean resultant length, Rayleigh z and p."""
    ph = np.asarray(phases, dtype=np.float64)
    ph = ph[np.isfinite(ph)]
    if ph.size == 0:
        nan = float("nan")
        return {"n_events": 0, "mean_phase": nan, "mrl": nan, "rayleigh_z": nan, "rayleigh_p": nan}
    m = np.exp(1j * ph).mean()
    z, p = rayleigh_test(ph)
    return {
        "n_events": int(ph.size),
        "mean_phase": float(np.angle(m)),
        "mrl": float(np.abs(m)),
        "rayleigh_z": z,
        "rayleigh_p": p,
    }


def _components(
    events: Mapping[Any, np.ndarray] | Sequence[np.ndarray],
) -> list[tuple[Any, np.ndarray]]:
    items = events.items() if isinstance(events, Mapping) else enumerate(events)
    return [(k, np.asarray(v, dtype=np.float64).reshape(-1)) for k, v in items]


def phase_locking_table(
    event_times: Mapping[Any, np.ndarray] | Sequence[np.ndarray],
    phase_times_s: np.ndarray,
    phase_rad: np.ndarray,
    channel_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per (component, channel): circular statistics of that component's event phases.

    ``event_times``: per component (neuron) an array of event times (s, shared clock).
    """
    ph = np.asarray(phase_rad)
    n_ch = 1 if ph.ndim == 1 else ph.shape[1]
    names = list(channel_names) if channel_names is not None else [str(c) for c in range(n_ch)]
    rows = []
    for comp, times in _components(event_times):
        phases = event_phases(times, phase_times_s, ph)
        phases = phases[:, None] if phases.ndim == 1 else phases
        for c in range(n_ch):
            rows.append({"component": comp, "channel": names[c], **circular_stats(phases[:, c])})
    return pd.DataFrame(rows)


def parse_periods(periods: Periods | None) -> np.ndarray:
    """``[[start, end], ...]`` (or one ``[start, end]``) -> sorted, merged (k, 2) array.

    The catalog's one definition (:func:`ace_assets.catalog.periods.merge_intervals`).
    """
    return merge_intervals(periods)


def event_rate(times: np.ndarray, periods: Periods) -> tuple[int, float, float]:
    """(events inside, total duration s, rate Hz) over the union of ``periods``."""
    p = parse_periods(periods)
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    inside = np.zeros(t.size, dtype=bool)
    for s, e in p:
        inside |= (t >= s) & (t < e)
    duration = float((p[:, 1] - p[:, 0]).sum()) if p.size else 0.0
    count = int(inside.sum())
    return count, duration, (count / duration if duration > 0 else float("nan"))


def compare_period_rates(
    event_times: Mapping[Any, np.ndarray] | Sequence[np.ndarray],
    high_periods: Periods,
    control_periods: Periods,
) -> pd.DataFrame:
    """Per component: event rate in high slow-wave-power periods vs control periods."""
    rows = []
    for comp, times in _components(event_times):
        n_hi, d_hi, r_hi = event_rate(times, high_periods)
        n_co, d_co, r_co = event_rate(times, control_periods)
        rows.append(
            {
                "component": comp,
                "n_high": n_hi,
                "high_duration_s": d_hi,
                "high_rate_hz": r_hi,
                "n_control": n_co,
                "control_duration_s": d_co,
                "control_rate_hz": r_co,
                "rate_ratio": r_hi / r_co if r_co and np.isfinite(r_co) else float("nan"),
            }
        )
    return pd.DataFrame(rows)
