"""AR(p) deconvolution of calcium traces into spike estimates (OASIS), in numpy.

Model (CNMF): ``y_t = b + c_t + noise``, ``c_t = sum_i g_i c_{t-i} + s_t``, ``s >= 0``.

- AR(1): OASIS (Friedrich, Zhou & Paninski 2017), a pool-adjacent-violators pass over the
  trace. With ``lam = 0`` and a minimum spike size ``s_min`` this is *thresholded OASIS*,
  one linear-time pass; the L1 form (``lam > 0``) is the same pass on a shifted trace.
  We use the thresholded form by default because it needs no search over ``lam`` (the
  noise-constrained foopsi of CaImAn solves for ``lam`` iteratively), which matters for
  54,000-frame traces deconvolved in pure Python.
- AR(2): non-negative least squares (scipy ``nnls``) over overlapping windows of the
  trace, the calcium carried over from earlier windows subtracted, spikes below ``s_min``
  pruned and the window refitted on the remaining support.

``s_min`` defaults to ``s_min_sd * sn``: a jump in the denoised trace must exceed a few
noise SDs to count as a spike (CaImAn's negative-``s_min`` convention scales by
``sqrt(1 - sum(g))`` instead; we found the plain noise scale steadier across ``g``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import nnls
from scipy.signal import get_window, lfilter

DEFAULT_S_MIN_SD = 3.0


def noise_psd(
    y: np.ndarray,
    *,
    freq_range: tuple[float, float] = (0.25, 0.5),
    method: str = "logmexp",
) -> np.ndarray:
    """Noise SD from the high-frequency part of the Welch PSD (CaImAn's ``GetSn``).

    Frequencies are in units of the sampling rate. Works along the last axis; the
    calcium signal has little power above a quarter of the frame rate, white noise does.
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[-1]
    if n < 4:
        return np.zeros(y.shape[:-1])
    ff, pxx = welch_density(y, min(n, 256))
    ind = (ff > freq_range[0]) & (ff <= freq_range[1])
    if not ind.any():
        ind = ff > 0
    p = pxx[..., ind] / 2.0
    if method == "mean":
        out = np.sqrt(p.mean(axis=-1))
    elif method == "median":
        out = np.sqrt(np.median(p, axis=-1))
    else:  # logmexp
        with np.errstate(divide="ignore"):
            out = np.sqrt(np.exp(np.mean(np.log(np.maximum(p, 1e-30)), axis=-1)))
    return out


def welch_density(y: np.ndarray, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.welch(y, nperseg=nperseg, axis=-1)`` (Hann window, half overlap,
    constant detrend, one-sided density at unit rate), equal to it within 1e-15.

    Why not scipy's: its general machinery costs 0.25 ms per 1,000-frame trace, and every
    trace is deconvolved several times per extraction (seeds, each iteration's sweeps,
    merges); this is 0.08 ms.
    """
    win = _hann(nperseg)
    step = nperseg - nperseg // 2
    seg = np.lib.stride_tricks.sliding_window_view(y, nperseg, axis=-1)[..., ::step, :]
    seg = seg - seg.mean(axis=-1, keepdims=True)
    spec = np.fft.rfft(seg * win, axis=-1)
    power = (spec.real**2 + spec.imag**2) / float((win * win).sum())
    power[..., 1 : None if nperseg % 2 else -1] *= 2  # one-sided: all but DC (and Nyquist)
    return np.fft.rfftfreq(nperseg), power.mean(axis=-2)


@functools.cache
def _hann(n: int) -> np.ndarray:
    win = get_window("hann", n)
    win.flags.writeable = False
    return win


def ar_from_decay(decay_time: float, fps: float, p: int = 1, rise_time: float | None = None):
    """AR coefficients from time constants: ``g = exp(-1 / (decay_time * fps))`` for AR(1).

    AR(2) uses roots ``exp(-1/(tau_decay fps))`` and ``exp(-1/(tau_rise fps))``; without a
    rise time it defaults to one frame.
    """
    d = math.exp(-1.0 / max(decay_time * fps, 1e-6))
    if p <= 1:
        return np.array([d])
    tr = rise_time if rise_time and rise_time > 0 else 1.0 / fps
    r = math.exp(-1.0 / max(tr * fps, 1e-6))
    return np.array([d + r, -d * r])


def estimate_ar(y: np.ndarray, p: int, sn: float | None = None, lags: int = 5) -> np.ndarray:
    """AR coefficients from the noise-corrected autocovariance (CaImAn's approach)."""
    y = np.asarray(y, dtype=np.float64)
    if sn is None:
        sn = float(noise_psd(y))
    lags += p
    x = y - y.mean()
    n = len(x)
    xc = np.array([x[: n - k] @ x[k:] / n for k in range(lags + 1)])
    a = scipy.linalg.toeplitz(xc[np.arange(lags)], xc[np.arange(p)]) - sn**2 * np.eye(lags, p)
    g = np.linalg.lstsq(a, xc[1 : lags + 1], rcond=None)[0]
    roots = np.roots(np.concatenate([[1.0], -g]))
    roots = np.real(roots)
    roots = np.clip(roots, 0.15, 0.995)
    g = -np.poly(roots)[1:]
    return np.real(g).astype(np.float64)


def estimate_baseline(y: np.ndarray, sn: float) -> float:
    """Baseline as the mode of the trace: transients are positive and sparse, noise is not."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return 0.0
    lo, hi = np.percentile(y, [0.5, 99.5])
    width = max(sn / 4.0, (hi - lo) / 2000.0, 1e-12)
    if hi - lo <= width:
        return float(np.median(y))
    edges = np.arange(lo, hi + width, width)
    hist, edges = np.histogram(y, bins=edges)
    sigma_bins = max(sn / width, 1.0)
    smooth = gaussian_filter1d(hist.astype(np.float64), sigma_bins, mode="constant")
    k = int(np.argmax(smooth))
    return float(0.5 * (edges[k] + edges[k + 1]))


@functools.lru_cache(maxsize=8)
def _powers(g: float, n: int) -> tuple[float, ...]:
    """``g ** k`` for k = 0 .. n, shared by the many traces deconvolved with one ``g``."""
    return tuple(g**k for k in range(n + 1))


def oasis_ar1(
    y: np.ndarray, g: float, lam: float = 0.0, s_min: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """OASIS for AR(1): ``min 1/2 ||y - c||^2 + lam |s|_1``, ``s_t = c_t - g c_{t-1} >= s_min``.

    Pools of constant-rate decay are merged backwards whenever the jump between them is
    smaller than ``s_min`` (or negative). ``c_0 >= 0``; returns ``(c, s)`` with ``s_0 = 0``.
    """
    yv = np.asarray(y, dtype=np.float64)
    n = len(yv)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    if lam:
        yv = yv - lam * (1.0 - g)
        yv[-1] -= lam * g
    ys = yv.tolist()
    # the pool stack; the newest pool lives in locals until nothing merges it backwards
    v = [0.0] * n  # pool value at its start (unclipped)
    w = [0.0] * n  # pool weight sum g^(2k)
    ln = [0] * n
    gp = _powers(g, n)  # g ** (pool length): a lookup, not a pow per test
    merge_weights = g * g != 0.0
    i = -1
    for vt in ys:
        wt = 1.0
        lt = 1
        while i >= 0:
            prev = v[i]
            if i == 0 and prev < 0.0:
                prev = 0.0
            gl = gp[ln[i]]
            if prev * gl + s_min <= vt:
                break
            wn = w[i] + (wt * gl * gl if merge_weights else 0.0)
            vt = (w[i] * v[i] + gl * wt * vt) / wn if wn > 0 else v[i]
            wt = wn
            lt += ln[i]
            i -= 1
        i += 1
        v[i] = vt
        w[i] = wt
        ln[i] = lt
    m = i + 1
    vals = np.asarray(v[:m])
    vals[0] = max(vals[0], 0.0)
    lens = np.asarray(ln[:m], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lens[:-1])])  # pools tile 0 .. n - 1
    offs = np.arange(n) - np.repeat(starts, lens)
    c = np.repeat(vals, lens) * np.power(g, offs)
    c = np.maximum(c, 0.0)
    s = np.zeros(n)
    if m > 1:
        ends_decay = vals[:-1] * np.power(g, lens[:-1])
        s[starts[1:]] = np.maximum(vals[1:] - ends_decay, 0.0)
    return c, s


def _ar_kernel(g: np.ndarray, n: int) -> np.ndarray:
    imp = np.zeros(n)
    imp[0] = 1.0
    return lfilter([1.0], np.r_[1.0, -np.asarray(g, dtype=np.float64)], imp)


def deconvolve_ar2(
    y: np.ndarray,
    g: np.ndarray,
    s_min: float,
    *,
    window: int = 200,
    step: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """AR(2) (any p) deconvolution by windowed NNLS with carry-over; returns ``(c, s)``."""
    y = np.asarray(y, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    n = len(y)
    p = len(g)
    c = np.zeros(n)
    s = np.zeros(n)
    window = max(min(window, n), 1)
    step = max(min(step, window), 1)
    kern = _ar_kernel(g, window)
    kmat_full = scipy.linalg.toeplitz(kern, np.zeros(window))
    t = 0
    while t < n:
        t1 = min(t + window, n)
        w = t1 - t
        kmat = kmat_full[:w, :w]
        # free evolution of calcium present before the window
        free = np.zeros(w)
        hist = [c[t - k - 1] if t - k - 1 >= 0 else 0.0 for k in range(p)]
        for j in range(w):
            val = float(np.dot(g, hist))
            free[j] = val
            hist = [val, *hist[:-1]]
        z = y[t:t1] - free
        sw, _ = nnls(kmat, z, maxiter=10 * w)
        keep = sw >= s_min
        keep[0] = keep[0] or (t == 0 and sw[0] > 0)
        sw = np.where(keep, sw, 0.0)
        if keep.any():
            cols = np.flatnonzero(keep)
            sub, _ = nnls(kmat[:, cols], z, maxiter=10 * w)
            sw = np.zeros(w)
            sw[cols] = sub
        cw = kmat @ sw + free
        last = t1 == n
        commit = w if last else min(step, w)
        c[t : t + commit] = cw[:commit]
        s[t : t + commit] = sw[:commit]
        t += commit
    s[0] = 0.0
    return np.maximum(c, 0.0), s


@dataclass
class Deconvolved:
    c: np.ndarray
    s: np.ndarray
    baseline: float
    g: np.ndarray
    sn: float


def deconvolve(
    y: np.ndarray,
    *,
    p: int,
    g: np.ndarray | None = None,
    sn: float | None = None,
    s_min: float | None = None,
    s_min_sd: float = DEFAULT_S_MIN_SD,
) -> Deconvolved:
    """Deconvolve one raw trace: noise, baseline, AR coefficients, then OASIS / NNLS.

    ``p = 0`` returns the baseline-subtracted trace as ``c`` and no spikes.
    """
    y = np.asarray(y, dtype=np.float64)
    if sn is None:
        sn = float(noise_psd(y))
    sn = float(sn) if np.isfinite(sn) and sn > 0 else max(float(np.std(y)), 1e-12)
    b = estimate_baseline(y, sn)
    x = y - b
    if p <= 0:
        return Deconvolved(x, np.zeros_like(x), b, np.zeros(0), sn)
    if g is None:
        g = estimate_ar(y, p, sn)
    g = np.asarray(g, dtype=np.float64).reshape(-1)
    thr = s_min if s_min is not None else s_min_sd * sn
    if len(g) == 1:
        c, s = oasis_ar1(x, float(g[0]), 0.0, thr)
    else:
        c, s = deconvolve_ar2(x, g, thr)
    return Deconvolved(c, s, b, g, sn)
