"""Fluorescence-EEG coupling of one line: coherence, coherogram, lagged correlation, per period.

Inputs are on the frame clock already: the fluorescence signals (the movie's mean
fluorescence, each source's raw trace) and each EEG/LFP channel as resampled by
:mod:`ace_assets.multimodal.frame_clock` (its low-passed signal and its band envelopes).
Each analysis is done for the whole session (``"all"``) and for every period the line
defines (:mod:`ace_assets.catalog.periods`: baseline, high_slow_wave, control, on the
session clock the frame times are on), so a period means the same frames here as in every
other result.

- coherence (:mod:`ace_assets.multimodal.coherence`) of the channel's *signal* with each
  fluorescence signal, from ``W`` (the taper half-bandwidth; below it is the DC leakage of
  bleaching) up to the resampling cut-off (``0.4 * fps``; above it the EEG was removed);
- the coherogram of the mean fluorescence with each channel (whole session);
- lagged correlation (:mod:`ace_assets.multimodal.lagged_correlation`) of each fluorescence
  signal with the channel's *signal* (entry ``"signal"``) and with each band's envelope
  (entry ``"4-8Hz"`` ...); per signal, channel and period the entry of largest ``|r|`` is
  flagged ``best_band``, and ``p_best`` tests its r against chance correlation of slow
  signals (effective pairs, Bonferroni over lags). Positive lag: the fluorescence follows
  the EEG;
- the sliding-window correlation of the mean fluorescence with every entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ace_assets.catalog.periods import LinePeriods, frame_mask
from ace_assets.multimodal.coherence import Coherence, Coherogram, coherence, coherogram
from ace_assets.multimodal.coupling_params import CouplingParams
from ace_assets.multimodal.frame_clock import FrameClockEphys, band_label
from ace_assets.multimodal.lagged_correlation import (
    best_lag,
    effective_pairs,
    lag_p_value,
    lagged_correlation,
    sliding_correlation,
)

MEAN = "mean_fluorescence"
SIGNAL = "signal"
ALL = "all"


@dataclass
class CouplingResult:
    """The tables of one line (see the module doc); spectra and curves of the mean only."""

    peaks: pd.DataFrame
    spectra: pd.DataFrame
    lags: pd.DataFrame
    lag_curves: pd.DataFrame
    sliding: pd.DataFrame
    coherograms: dict[str, Coherogram] = field(default_factory=dict)
    spectra_by_channel: dict[str, Coherence] = field(default_factory=dict)
    #: every (signal, channel, period) spectrum, for the arrays file and coherence at a
    #: frequency chosen beforehand (the per-frequency level applies there, not the peak's)
    all_spectra: dict[tuple[str, str, str], Coherence] = field(default_factory=dict)

    def spectra_arrays(self, period: str) -> dict[str, np.ndarray]:
        """One period's spectra as arrays: coherence, lower, upper, phase (signals, channels,
        freqs), with ``signals``, ``channels``, ``freqs_hz`` and ``level`` (signals, channels).

        Signals or channels without an estimate, or whose window differs, are NaN.
        """
        keys = [k for k in self.all_spectra if k[2] == period]
        signals = list(dict.fromkeys(k[0] for k in keys))
        channels = list(dict.fromkeys(k[1] for k in keys))
        if not keys:
            return {}
        freqs = max((self.all_spectra[k].freqs for k in keys), key=len)
        shape = (len(signals), len(channels), freqs.size)
        out = {n: np.full(shape, np.nan) for n in ("coherence", "lower", "upper", "phase")}
        level = np.full(shape[:2], np.nan)
        for (sig, ch, _), coh in ((k, self.all_spectra[k]) for k in keys):
            if coh.freqs.size != freqs.size:
                continue
            i, j = signals.index(sig), channels.index(ch)
            out["coherence"][i, j] = coh.coherence
            out["lower"][i, j], out["upper"][i, j] = coh.lower, coh.upper
            out["phase"][i, j] = coh.phase
            level[i, j] = coh.level
        return {
            **out,
            "level": level,
            "freqs_hz": freqs,
            "signals": np.array(signals, dtype=str),
            "channels": np.array(channels, dtype=str),
        }


def period_masks(periods: LinePeriods | None, frame_times_s: np.ndarray) -> dict[str, np.ndarray]:
    """``"all"`` plus each period the line defines, as frame masks (session clock)."""
    t = np.asarray(frame_times_s, dtype=np.float64)
    masks = {ALL: np.isfinite(t)}
    if periods is not None:
        for name in periods.names:
            masks[name] = frame_mask(periods, t, name)
    return masks


def entries(ephys: FrameClockEphys, channel: int) -> dict[str, np.ndarray]:
    """The channel's signal and each band's envelope, by entry name."""
    out = {SIGNAL: ephys.signal[:, channel]}
    for k, band in enumerate(ephys.bands):
        out[band_label(band)] = ephys.envelopes[k, :, channel]
    return out


def _crop(mask: np.ndarray) -> slice:
    idx = np.flatnonzero(mask)
    return slice(int(idx[0]), int(idx[-1]) + 1) if idx.size else slice(0, 0)


def couple(
    fluorescence: Mapping[str, np.ndarray],
    ephys: FrameClockEphys,
    channels: Sequence[str],
    frame_times_s: np.ndarray,
    fps: float,
    params: CouplingParams,
    periods: LinePeriods | None = None,
) -> CouplingResult:
    """Every coupling measure of every fluorescence signal with every channel and period."""
    masks = period_masks(periods, frame_times_s)
    freq_range = (params.coupling_bandwidth_hz, ephys.cutoff_hz)
    peaks, spectra, lag_rows, curves, sliding = [], [], [], [], []
    grams: dict[str, Coherogram] = {}
    whole: dict[str, Coherence] = {}
    every: dict[tuple[str, str, str], Coherence] = {}
    for c, channel in enumerate(channels):
        by_entry = entries(ephys, c)
        eeg = by_entry[SIGNAL]
        for name, trace in fluorescence.items():
            y = np.asarray(trace, dtype=np.float64)
            for period, mask in masks.items():
                keep = mask & np.isfinite(y)
                coh = coherence(
                    eeg,
                    y,
                    fps,
                    window_s=params.coupling_window_s,
                    bandwidth_hz=params.coupling_bandwidth_hz,
                    alpha=params.coupling_alpha,
                    freq_range=freq_range,
                    mask=keep,
                )
                base = {"signal": name, "channel": channel, "period": period}
                seconds = float(keep.sum() / fps)
                if coh is None:
                    peaks.append({**base, "duration_s": seconds, "significant": False})
                else:
                    peaks.append({**base, "duration_s": seconds, **coh.peak()})
                    every[(name, channel, period)] = coh
                    if name == MEAN:
                        spectra.append(_spectrum_frame(coh, base))
                        if period == ALL:
                            whole[channel] = coh
                window = _crop(keep)
                rows = []
                for entry, x in by_entry.items():
                    xs = np.where(keep, x, np.nan)[window]
                    lags, r, pairs = lagged_correlation(
                        xs, y[window], fps, params.coupling_max_lag_s
                    )
                    lag, r_best = best_lag(lags, r)
                    zero = int(np.argmin(np.abs(lags)))
                    n_eff = effective_pairs(xs, y[window])
                    rows.append(
                        {
                            **base,
                            "entry": entry,
                            "best_lag_s": lag,
                            "r_best": r_best,
                            "r_zero_lag": float(r[zero]) if r.size else float("nan"),
                            "n_pairs": int(pairs[zero]) if pairs.size else 0,
                            "n_effective": n_eff,
                            "p_best": lag_p_value(r_best, n_eff, lags.size),
                        }
                    )
                    if name == MEAN:
                        curves.append(pd.DataFrame({**base, "entry": entry, "lag_s": lags, "r": r}))
                        if period == ALL:
                            slid = sliding_correlation(
                                x,
                                y,
                                fps,
                                window_s=params.coupling_window_s,
                                step_s=params.coupling_step_s,
                                max_lag_s=params.coupling_max_lag_s,
                                lag_s=lag if np.isfinite(lag) else 0.0,
                            )
                            sliding.append(_sliding_frame(slid, frame_times_s, base, entry))
                lag_rows.extend(_flag_best(rows))
        if MEAN in fluorescence:
            gram = coherogram(
                eeg,
                np.asarray(fluorescence[MEAN], dtype=np.float64),
                fps,
                window_s=params.coupling_window_s,
                step_s=params.coupling_step_s,
                bandwidth_hz=params.coupling_bandwidth_hz,
                alpha=params.coupling_alpha,
                freq_range=freq_range,
            )
            if gram is not None:
                grams[channel] = gram
    return CouplingResult(
        peaks=pd.DataFrame(peaks),
        spectra=pd.concat(spectra, ignore_index=True) if spectra else pd.DataFrame(),
        lags=pd.DataFrame(lag_rows),
        lag_curves=pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(),
        sliding=pd.concat(sliding, ignore_index=True) if sliding else pd.DataFrame(),
        coherograms=grams,
        spectra_by_channel=whole,
        all_spectra=every,
    )


def _flag_best(rows: list[dict]) -> list[dict]:
    scores = [abs(r["r_best"]) if np.isfinite(r["r_best"]) else -1.0 for r in rows]
    best = int(np.argmax(scores)) if rows and max(scores) >= 0 else -1
    return [{**r, "best_band": i == best} for i, r in enumerate(rows)]


def _spectrum_frame(coh: Coherence, base: dict) -> pd.DataFrame:
    return pd.DataFrame(
        {
            **base,
            "freq_hz": coh.freqs,
            "coherence": coh.coherence,
            "lower": coh.lower,
            "upper": coh.upper,
            "phase_rad": coh.phase,
            "significance_level": coh.level,
            "peak_significance_level": coh.peak_level,
        }
    )


def _sliding_frame(
    slid: pd.DataFrame, frame_times_s: np.ndarray, base: dict, entry: str
) -> pd.DataFrame:
    t = np.asarray(frame_times_s, dtype=np.float64)
    start = slid["start_frame"].to_numpy(dtype=int)
    stop = slid["stop_frame"].to_numpy(dtype=int)
    return slid.assign(
        signal=base["signal"],
        channel=base["channel"],
        entry=entry,
        start_s=t[start] if start.size else [],
        end_s=t[np.maximum(stop - 1, 0)] if stop.size else [],
    )
