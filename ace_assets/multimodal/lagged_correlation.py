"""Pearson correlation of EEG and fluorescence at every lag, whole-period and in sliding windows.

Lag convention: ``r(lag) = corr(eeg(t), fluorescence(t + lag))``, so a **positive lag means
the fluorescence follows the EEG** by that many seconds (the convention of
:mod:`ace_assets.multimodal.coherence` too). The best lag is the one of largest ``|r|``
within ``+-max_lag_s``; its ``r`` keeps its sign (fluorescence falling when a band's power
rises is coupling as well).

Frames where either signal is NaN (outside a period, unrecorded ephys) are left out pair by
pair: every lag's r uses exactly the frame pairs where both are finite. The sums are
computed with FFT correlations of the masked signals, so the cost is ``n log n`` per pair
rather than ``n`` times the number of lags.

Slow signals correlate by chance: a bleaching trend and a slowly varying band power reach
|r| of 0.3 with nothing linking them. :func:`lag_p_value` therefore tests the best r with
the effective number of independent pairs (Pyper & Peterman 1998: the sample size shrunk
by the product of the two autocorrelations) and Bonferroni over the lags searched
(conservative: neighbouring lags are correlated).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import correlate
from scipy.stats import t as student_t

MIN_PAIRS = 8  # fewer frame pairs give no r


def _xcorr(u: np.ndarray, v: np.ndarray, max_lag: int) -> np.ndarray:
    """``c[lag] = sum_t u[t] v[t + lag]`` for lag in ``-max_lag..max_lag``."""
    full = correlate(v, u, mode="full", method="fft" if u.size > 256 else "direct")
    zero = u.size - 1
    lo, hi = zero - max_lag, zero + max_lag + 1
    out = np.zeros(2 * max_lag + 1)
    a, b = max(lo, 0), min(hi, full.size)
    out[a - lo : b - lo] = full[a:b]
    return out


def lagged_correlation(
    eeg: np.ndarray, fluorescence: np.ndarray, fps: float, max_lag_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lags_s, r, n_pairs)`` for every whole-frame lag within ``+-max_lag_s``."""
    x = np.asarray(eeg, dtype=np.float64).reshape(-1)
    y = np.asarray(fluorescence, dtype=np.float64).reshape(-1)
    max_lag = max(0, min(int(round(max_lag_s * fps)), x.size - 1))
    mx, my = np.isfinite(x).astype(float), np.isfinite(y).astype(float)
    lags = np.arange(-max_lag, max_lag + 1) / fps
    if mx.sum() < MIN_PAIRS or my.sum() < MIN_PAIRS:
        return lags, np.full(lags.size, np.nan), np.zeros(lags.size, dtype=np.int64)
    a = np.where(mx > 0, x - np.nanmean(x), 0.0)
    b = np.where(my > 0, y - np.nanmean(y), 0.0)
    scale_a, scale_b = np.abs(a).max() or 1.0, np.abs(b).max() or 1.0
    a, b = a / scale_a, b / scale_b  # r is scale free; this keeps the FFT sums well conditioned
    n = np.rint(_xcorr(mx, my, max_lag))
    sx, sy = _xcorr(a, my, max_lag), _xcorr(mx, b, max_lag)
    sxx, syy = _xcorr(a * a, my, max_lag), _xcorr(mx, b * b, max_lag)
    sxy = _xcorr(a, b, max_lag)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = n * sxy - sx * sy
        var = (n * sxx - sx**2) * (n * syy - sy**2)
        r = np.where((n >= MIN_PAIRS) & (var > 0), cov / np.sqrt(np.maximum(var, 1e-300)), np.nan)
    return lags, np.clip(r, -1.0, 1.0), n.astype(np.int64)


def effective_pairs(x: np.ndarray, y: np.ndarray) -> float:
    """Independent pairs two autocorrelated series are worth (Pyper & Peterman 1998)."""
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < MIN_PAIRS:
        return float(n)
    a = np.where(ok, x - np.nanmean(x[ok]), 0.0)
    b = np.where(ok, y - np.nanmean(y[ok]), 0.0)
    k_max = max(1, n // 5)
    ra, rb = _autocorrelation(a, k_max), _autocorrelation(b, k_max)
    k = np.arange(1, k_max + 1)
    inflation = 1.0 + 2.0 * np.sum((n - k) / n * ra[1:] * rb[1:])
    return float(np.clip(n / max(inflation, 1e-9), 3.0, n))


def _autocorrelation(a: np.ndarray, k_max: int) -> np.ndarray:
    size = 1 << int(np.ceil(np.log2(2 * a.size)))
    spectrum = np.fft.rfft(a, size)
    acov = np.fft.irfft(np.abs(spectrum) ** 2, size)[: k_max + 1]
    return acov / acov[0] if acov[0] > 0 else np.zeros(k_max + 1)


def lag_p_value(r: float, n_eff: float, n_lags: int) -> float:
    """Two-sided p of the best ``r`` over ``n_lags`` lags, from ``n_eff`` independent pairs."""
    if not np.isfinite(r) or n_eff <= 2:
        return float("nan")
    t = abs(r) * np.sqrt((n_eff - 2) / max(1.0 - r * r, 1e-12))
    return float(min(1.0, 2.0 * student_t.sf(t, n_eff - 2) * max(1, n_lags)))


def best_lag(lags_s: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """``(lag_s, r)`` of the largest ``|r|``; NaNs if no lag has an r."""
    if not np.isfinite(r).any():
        return float("nan"), float("nan")
    i = int(np.nanargmax(np.abs(r)))
    return float(lags_s[i]), float(r[i])


def _shifted(y: np.ndarray, lag: int) -> np.ndarray:
    """``out[t] = y[t + lag]``, NaN where ``t + lag`` falls outside."""
    out = np.full(y.size, np.nan)
    if lag >= 0:
        out[: y.size - lag] = y[lag:]
    else:
        out[-lag:] = y[: y.size + lag]
    return out


def _window_sums(values: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    total = np.concatenate([[0.0], np.cumsum(values)])
    return total[starts + n] - total[starts]


def sliding_correlation(
    eeg: np.ndarray,
    fluorescence: np.ndarray,
    fps: float,
    *,
    window_s: float,
    step_s: float,
    max_lag_s: float,
    lag_s: float = 0.0,
) -> pd.DataFrame:
    """Per window: r at ``lag_s`` (the whole session's best lag), and the window's own best lag.

    A window is ``window_s`` of EEG; the fluorescence it is paired with may reach up to
    ``max_lag_s`` beyond it. Computed lag by lag from running sums, so a session of any
    length costs a few passes per lag. Columns: ``start_frame``, ``stop_frame``,
    ``r_at_lag``, ``best_lag_s``, ``r_best``, ``n_pairs`` (at ``lag_s``).
    """
    columns = ["start_frame", "stop_frame", "r_at_lag", "best_lag_s", "r_best", "n_pairs"]
    x = np.asarray(eeg, dtype=np.float64).reshape(-1)
    y = np.asarray(fluorescence, dtype=np.float64).reshape(-1)
    n = int(round(window_s * fps))
    step = max(1, int(round(step_s * fps)))
    if n < MIN_PAIRS or x.size < n or not (np.isfinite(x).any() and np.isfinite(y).any()):
        return pd.DataFrame([], columns=columns)
    x = (x - np.nanmean(x)) / (np.nanstd(x) or 1.0)
    y = (y - np.nanmean(y)) / (np.nanstd(y) or 1.0)
    starts = np.arange(0, x.size - n + 1, step)
    max_lag = int(round(max_lag_s * fps))
    lags = np.arange(-max_lag, max_lag + 1)
    r = np.full((starts.size, lags.size), np.nan)
    pairs = np.zeros((starts.size, lags.size), dtype=np.int64)
    for j, lag in enumerate(lags):
        ys = _shifted(y, int(lag))
        m = np.isfinite(x) & np.isfinite(ys)
        a, b = np.where(m, x, 0.0), np.where(m, ys, 0.0)
        k = _window_sums(m.astype(np.float64), starts, n)
        sx, sy = _window_sums(a, starts, n), _window_sums(b, starts, n)
        sxx, syy = _window_sums(a * a, starts, n), _window_sums(b * b, starts, n)
        sxy = _window_sums(a * b, starts, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            var = (k * sxx - sx**2) * (k * syy - sy**2)
            value = (k * sxy - sx * sy) / np.sqrt(np.maximum(var, 1e-300))
        r[:, j] = np.where((k >= MIN_PAIRS) & (var > 1e-12 * np.maximum(k, 1) ** 2), value, np.nan)
        pairs[:, j] = np.rint(k).astype(np.int64)
    r = np.clip(r, -1.0, 1.0)
    at = int(np.argmin(np.abs(lags / fps - lag_s)))
    best = np.full(starts.size, np.nan)
    r_best = np.full(starts.size, np.nan)
    ok = np.isfinite(r).any(axis=1)
    if ok.any():
        i = np.nanargmax(np.abs(np.where(np.isfinite(r[ok]), r[ok], 0.0)), axis=1)
        best[ok] = lags[i] / fps
        r_best[ok] = r[ok][np.arange(i.size), i]
    return pd.DataFrame(
        {
            "start_frame": starts,
            "stop_frame": starts + n,
            "r_at_lag": r[:, at],
            "best_lag_s": best,
            "r_best": r_best,
            "n_pairs": pairs[:, at],
        },
        columns=columns,
    )
