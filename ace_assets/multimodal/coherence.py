"""Multitaper coherence between an EEG channel and a fluorescence signal on the frame clock.

Why multitaper: a period of a session is a few windows long; DPSS tapers give K nearly
independent spectral estimates per window, so the coherence has usable degrees of freedom
and known statistics where a Welch estimate would have a handful.

How it is estimated (Thomson 1982; Thomson & Chave 1991; Chronux ``coherencyc``):

- the period's frames are cut into non-overlapping windows of ``window_s`` (shorter, one
  window, when the period is shorter), only where both signals are finite;
- the tapers are those of :mod:`ace_assets.ephys.multitaper`: ``NW = W * T`` from the
  half-bandwidth ``W`` (Hz) and the window length ``T`` (s), ``K = floor(2 NW) - 1``;
- the ``L = K * windows`` tapered spectra are averaged into the auto- and cross-spectra;
  ``coherence`` is the magnitude-squared coherence ``|Sxy|^2 / (Sxx Syy)``;
- ``lower`` / ``upper``: jackknife (leave one out) on ``atanh(|C|)``, a two-sided
  ``1 - alpha`` interval; the units left out are the windows from
  :data:`JACKKNIFE_WINDOWS` windows on, else the L tapered estimates;
- ``level``: the coherence incoherent signals exceed with probability ``alpha`` at one
  frequency; ``peak_level`` the same for the maximum over the frequency range, so "the
  peak is above it" is one test at ``alpha``, not one per frequency. Each is the larger of
  (1) the analytic level for L independent estimates, ``1 - a ** (1 / (L - 1))``, with
  ``a = alpha`` or ``alpha / bins`` (Bonferroni over bins: conservative, as neighbouring
  bins are correlated; ``range / 2W`` "independent" frequencies is not, in simulation a
  third of incoherent pairs passed), and (2) window-shifted surrogates
  (:func:`shifted_levels`). The analytic level alone assumes broadband signals: two
  independent slow oscillations leak their own, slowly drifting, phase relation into every
  taper of a window, so the windows, not the tapers, are what is independent; the
  surrogates measure that (a quarter of such controls passed the analytic level alone);
- ``phase`` is the angle of ``Sxy = <X conj(Y)>`` with X the EEG, Y the fluorescence, so
  ``lag_s = phase / (2 pi f)`` is positive when the fluorescence follows the EEG, the
  convention of :mod:`ace_assets.multimodal.lagged_correlation`. It is defined modulo one
  period of ``f``; reported wrapped to ``(-1/2f, 1/2f]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from ace_assets.ephys.multitaper import MultitaperPlan, plan_multitaper

MIN_WINDOW = 16  # frames: fewer give no usable taper
#: from this many windows on, windows (not tapers) are the jackknife units
JACKKNIFE_WINDOWS = 10


@dataclass(frozen=True)
class Coherence:
    """Coherence spectrum of one signal pair over one period."""

    freqs: np.ndarray
    coherence: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    phase: np.ndarray
    level: float
    peak_level: float
    method: str
    n_windows: int
    n_tapers: int
    time_bandwidth: float
    window_s: float

    @property
    def n_estimates(self) -> int:
        return self.n_windows * self.n_tapers

    def peak(self) -> dict[str, float | bool]:
        """The peak's frequency, coherence, bounds, lag and whether it passes ``peak_level``."""
        finite = np.isfinite(self.coherence)
        if not finite.any():
            return _no_peak(self)
        i = int(np.nanargmax(self.coherence))
        f = float(self.freqs[i])
        return {
            "peak_freq_hz": f,
            "peak_coherence": float(self.coherence[i]),
            "peak_lower": float(self.lower[i]),
            "peak_upper": float(self.upper[i]),
            "significance_level": self.level,
            "peak_significance_level": self.peak_level,
            "significant": bool(self.coherence[i] > self.peak_level),
            "phase_rad": float(self.phase[i]),
            "lag_s": phase_lag_s(float(self.phase[i]), f),
            **_design(self),
        }

    def at(self, freq_hz: float) -> dict[str, float]:
        """Coherence, bounds and lag at the bin nearest ``freq_hz``."""
        i = int(np.argmin(np.abs(self.freqs - freq_hz)))
        return {
            "freq_hz": float(self.freqs[i]),
            "coherence": float(self.coherence[i]),
            "lower": float(self.lower[i]),
            "upper": float(self.upper[i]),
            "lag_s": phase_lag_s(float(self.phase[i]), float(self.freqs[i])),
        }


def _design(c: Coherence) -> dict[str, float]:
    return {
        "n_windows": c.n_windows,
        "n_tapers": c.n_tapers,
        "time_bandwidth": c.time_bandwidth,
        "window_s": c.window_s,
        "level_method": c.method,
    }


def _no_peak(c: Coherence) -> dict[str, float | bool]:
    nan = float("nan")
    return {
        "peak_freq_hz": nan,
        "peak_coherence": nan,
        "peak_lower": nan,
        "peak_upper": nan,
        "significance_level": c.level,
        "peak_significance_level": c.peak_level,
        "significant": False,
        "phase_rad": nan,
        "lag_s": nan,
        **_design(c),
    }


def phase_lag_s(phase_rad: float, freq_hz: float) -> float:
    """A coherency phase as a lag (s), wrapped to half a period either side of zero."""
    if not (freq_hz > 0 and math.isfinite(phase_rad)):
        return float("nan")
    wrapped = math.remainder(phase_rad, 2 * math.pi)
    return wrapped / (2 * math.pi * freq_hz)


def valid_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` runs of True in ``mask``."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def window_starts(runs: list[tuple[int, int]], n: int, step: int) -> list[int]:
    """Starts of every ``n``-frame window, ``step`` apart, that fits inside one run."""
    return [s for a, b in runs for s in range(a, b - n + 1, step)]


def taper_plan(
    fs: float, n: int, bandwidth_hz: float, freq_range: tuple[float, float]
) -> MultitaperPlan:
    """DPSS tapers for ``n``-frame windows: ``NW = W * n / fs`` (at least 1), ``K = 2NW - 1``."""
    nw = max(1.0, bandwidth_hz * n / fs)
    return plan_multitaper(
        fs,
        window_s=n / fs,
        step_s=n / fs,
        freq_range=freq_range,
        time_bandwidth=nw,
        n_tapers=max(1, math.floor(2 * nw) - 1),
    )


def tapered_spectra(plan: MultitaperPlan, windows: np.ndarray) -> np.ndarray:
    """(windows, win) -> (windows * K, n_freqs) complex spectra of mean-removed tapered windows."""
    segs = np.asarray(windows, dtype=np.float64)
    segs = segs - segs.mean(axis=1, keepdims=True)
    tapered = segs[:, None, :] * plan.tapers[None, :, :]
    fx = np.fft.rfft(tapered, n=plan.nfft, axis=2)[:, :, plan.freq_index]
    return fx.reshape(-1, plan.freq_index.size)


def coherence_from_units(
    sxy: np.ndarray, sxx: np.ndarray, syy: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MSC, jackknife lower and upper bounds, and phase from per-unit (taper or window)
    cross- and auto-spectra, units along axis 0."""
    n = sxy.shape[0]
    txy, txx, tyy = sxy.sum(0), sxx.sum(0), syy.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        msc = np.abs(txy) ** 2 / (txx * tyy)
        if n < 2:
            nan = np.full(msc.shape, np.nan)
            return msc, nan, nan, np.angle(txy)
        loo = np.abs(txy - sxy) / np.sqrt((txx - sxx) * (tyy - syy))
        z = np.arctanh(np.clip(loo, 0.0, 1 - 1e-12))
        sigma = np.sqrt((n - 1) / n * ((z - z.mean(0)) ** 2).sum(0))
        crit = float(student_t.ppf(1 - alpha / 2, n - 1))
        centre = np.arctanh(np.clip(np.sqrt(msc), 0.0, 1 - 1e-12))
        lower = np.tanh(np.maximum(centre - crit * sigma, 0.0)) ** 2
        upper = np.tanh(centre + crit * sigma) ** 2
    return msc, lower, upper, np.angle(txy)


def coherence_from_spectra(
    x: np.ndarray, y: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`coherence_from_units` with every tapered spectrum (L, freqs) its own unit."""
    return coherence_from_units(x * np.conj(y), np.abs(x) ** 2, np.abs(y) ** 2, alpha)


def shifted_levels(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[float, float]:
    """Per-frequency and peak levels from window-shifted surrogates.

    ``x``, ``y``: (windows, K, freqs) tapered spectra. Surrogate ``s`` pairs EEG window ``w``
    with fluorescence window ``w + s`` (cyclically), for every shift ``s`` of at least one
    window. A shift keeps both spectra and each signal's slow structure (a slowly drifting
    phase difference between two oscillations is as slow in the surrogate), so the null
    it gives holds for oscillatory signals; shuffling windows at random would break that
    structure and understate the null (independent wandering oscillations then pass).
    Returns the ``1 - alpha`` quantile of all surrogate coherences (pooled over
    frequencies) and of each surrogate's maximum over frequencies; with fewer than
    ``1 / alpha - 1`` surrogates that quantile cannot be resolved, and the largest
    surrogate maximum is returned instead.
    """
    n = x.shape[0]
    total = (np.abs(x) ** 2).sum((0, 1)) * (np.abs(y) ** 2).sum((0, 1))
    # every shift at once: a circular cross-correlation over the window axis (by FFT),
    # summed over tapers; shift 0 is the data itself
    shifted = np.fft.ifft(np.conj(np.fft.fft(x, axis=0)) * np.fft.fft(y, axis=0), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        null = np.abs(shifted.sum(axis=1)[1:]) ** 2 / total
    peaks = np.nanmax(null, axis=1)
    enough = n - 1 >= 1 / alpha - 1
    peak = np.nanquantile(peaks, 1 - alpha) if enough else np.nanmax(peaks)
    return float(np.nanquantile(null, 1 - alpha)), float(peak)


def significance_level(n_estimates: int, alpha: float) -> float:
    """MSC exceeded with probability ``alpha`` by incoherent signals (L estimates)."""
    if n_estimates < 2:
        return float("nan")
    return float(1.0 - alpha ** (1.0 / (n_estimates - 1)))


def coherence(
    eeg: np.ndarray,
    fluorescence: np.ndarray,
    fps: float,
    *,
    window_s: float,
    bandwidth_hz: float,
    alpha: float = 0.05,
    freq_range: tuple[float, float] | None = None,
    mask: np.ndarray | None = None,
) -> Coherence | None:
    """Coherence of two frame-clock signals over the frames in ``mask`` (all if None).

    None when no window of at least :data:`MIN_WINDOW` finite frames fits.
    """
    x = np.asarray(eeg, dtype=np.float64).reshape(-1)
    y = np.asarray(fluorescence, dtype=np.float64).reshape(-1)
    ok = np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        ok &= np.asarray(mask, dtype=bool)
    runs = valid_runs(ok)
    longest = max((b - a for a, b in runs), default=0)
    n = min(int(round(window_s * fps)), longest)
    if n < MIN_WINDOW:
        return None
    lo, hi = freq_range if freq_range is not None else (0.0, fps / 2)
    plan = taper_plan(fps, n, bandwidth_hz, (lo, hi))
    starts = window_starts(runs, n, n)
    rows = np.asarray(starts)[:, None] + np.arange(n)[None, :]
    sx, sy = tapered_spectra(plan, x[rows]), tapered_spectra(plan, y[rows])
    n_windows, k = len(starts), plan.n_tapers
    wx, wy = sx.reshape(n_windows, k, -1), sy.reshape(n_windows, k, -1)
    if n_windows >= JACKKNIFE_WINDOWS:
        units = "windows"
        msc, lower, upper, phase = coherence_from_units(
            (wx * np.conj(wy)).sum(1), (np.abs(wx) ** 2).sum(1), (np.abs(wy) ** 2).sum(1), alpha
        )
    else:
        units = "tapers"
        msc, lower, upper, phase = coherence_from_spectra(sx, sy, alpha)
    level = significance_level(sx.shape[0], alpha)
    peak_level = significance_level(sx.shape[0], alpha / max(1, plan.freqs.size))
    method = f"analytic (L = {sx.shape[0]}); jackknife over {units}"
    if n_windows >= 2:
        shifted, shifted_peak = shifted_levels(wx, wy, alpha)
        level, peak_level = max(level, shifted), max(peak_level, shifted_peak)
        method = (
            f"larger of analytic (L = {sx.shape[0]}) and {n_windows - 1} window-shifted "
            f"surrogates; jackknife over {units}"
        )
    return Coherence(
        freqs=plan.freqs,
        coherence=msc,
        lower=lower,
        upper=upper,
        phase=phase,
        level=level,
        peak_level=peak_level,
        method=method,
        n_windows=n_windows,
        n_tapers=plan.n_tapers,
        time_bandwidth=plan.time_bandwidth,
        window_s=n / fps,
    )


@dataclass(frozen=True)
class Coherogram:
    """Coherence in sliding windows: ``coherence`` (freqs, windows), NaN where data lack."""

    times_s: np.ndarray  # window centres, frame index / fps from the first frame
    freqs: np.ndarray
    coherence: np.ndarray
    level: float  # significance level of one window (K estimates)


def coherogram(
    eeg: np.ndarray,
    fluorescence: np.ndarray,
    fps: float,
    *,
    window_s: float,
    step_s: float,
    bandwidth_hz: float,
    alpha: float = 0.05,
    freq_range: tuple[float, float] | None = None,
) -> Coherogram | None:
    """Coherence of each ``window_s`` window, ``step_s`` apart; None if the data are shorter."""
    x = np.asarray(eeg, dtype=np.float64).reshape(-1)
    y = np.asarray(fluorescence, dtype=np.float64).reshape(-1)
    n = int(round(window_s * fps))
    step = max(1, int(round(step_s * fps)))
    if n < MIN_WINDOW or x.size < n:
        return None
    lo, hi = freq_range if freq_range is not None else (0.0, fps / 2)
    plan = taper_plan(fps, n, bandwidth_hz, (lo, hi))
    starts = np.arange(0, x.size - n + 1, step)
    out = np.full((plan.freqs.size, starts.size), np.nan)
    rows = starts[:, None] + np.arange(n)[None, :]
    ok = np.isfinite(x[rows]).all(1) & np.isfinite(y[rows]).all(1)
    k = plan.n_tapers
    for j in np.flatnonzero(ok):
        sx = tapered_spectra(plan, x[rows[j]][None, :])
        sy = tapered_spectra(plan, y[rows[j]][None, :])
        with np.errstate(invalid="ignore", divide="ignore"):
            txy = (sx * np.conj(sy)).sum(0)
            out[:, j] = np.abs(txy) ** 2 / ((np.abs(sx) ** 2).sum(0) * (np.abs(sy) ** 2).sum(0))
    return Coherogram(
        times_s=(starts + n / 2) / fps,
        freqs=plan.freqs,
        coherence=out,
        level=significance_level(k, alpha),
    )
