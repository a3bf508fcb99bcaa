"""Per-frame registration lags -> one motion trace: outliers out, gaps bridged, noise smoothed.

Why: a frame's correlation peak is only as good as what the frame shows. A frame of a
textured field pins its shift to a few hundredths of a pixel; a quiet frame of a flat
field (one dim neuron active) gives a peak that is broad, biased by the template's other
neurons, or simply wrong; a black, white or half-garbage frame gives nothing. The brain's
motion, by contrast, is continuous from frame to frame. So the measured lags are treated
as noisy observations of a smooth trajectory:

1. frames whose peak confidence is below ``min_confidence`` are not observations at all;
2. a Rauch-Tung-Striebel smoother combines the rest, each weighted by its confidence
   (variance ~ 1 / confidence^2), under a motion model of smooth drift (constant velocity
   with acceleration noise) plus jitter (position noise). The noise levels are fitted to
   the data by maximum likelihood, so a textured movie keeps its per-frame shifts
   (measurement noise ~0, whatever the motion), while a quiet one leans on its
   neighbours; dropped frames are interpolated from both sides in time;
3. confident observations that their neighbours do not predict (leave-one-out residual
   beyond 5 robust SDs and 1 px) are outliers: dropped, and the fit repeated.

Only per-frame numbers are handled here (two floats per frame); memory does not depend on
the frame size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: candidate (acceleration, jitter) noise / measurement noise ratios, searched by likelihood:
#: acceleration noise makes smooth drifts, jitter (position noise) makes jerky steps
_ACCEL = np.r_[0.0, 10.0 ** np.arange(-7.0, 5.01, 1.0)]
_JITTER = np.r_[0.0, 10.0 ** np.arange(-6.0, 5.01, 1.0)]
RATIOS = np.array([(a, j) for a in _ACCEL for j in _JITTER if a or j])
#: an observation whose leave-one-out residual is this many robust SDs out is an outlier...
OUTLIER_SDS = 5.0
#: ... if it is also this far (px) from what its neighbours predict
OUTLIER_MIN_PX = 1.0
#: rounds of dropping outliers and refitting
OUTLIER_ROUNDS = 3
#: how far the fitted measurement noise may stray from the measurements' own SD estimates
SD_SCALE = 10.0


@dataclass(frozen=True)
class SmoothedShifts:
    """A smoothed trace of lags and how each frame was treated."""

    lags: np.ndarray
    """(n, 2) smoothed lags, float64."""
    sd: np.ndarray
    """(n, 2) posterior standard deviation of each smoothed lag, px."""
    used: np.ndarray
    """(n,) bool: the frame's own measurement entered the smoother."""
    outlier: np.ndarray
    """(n,) bool: confident, but far from its neighbours, so dropped."""
    ratio: tuple[tuple[float, float], tuple[float, float]]
    """Per axis, fitted (acceleration, jitter) / measurement noise ratios (large = little
    smoothing)."""


def smooth_lags(
    lags: np.ndarray,
    confidence: np.ndarray,
    min_confidence: float,
    segment_starts: np.ndarray | None = None,
    lag_sd: np.ndarray | None = None,
) -> SmoothedShifts:
    """Smooth (n, 2) lags given each frame's confidence; frames below ``min_confidence`` are gaps.

    ``segment_starts`` (frame indices) start independent stretches: nothing is carried
    across them (the template's frames come in stretches spread over a movie).
    ``lag_sd`` (n, 2), each measurement's own SD estimate, calibrates the measurement
    noise: the fitted scale may then differ from it only by ``SD_SCALE``, so motion that
    jumps from frame to frame is not mistaken for noise. Without it, the variance is
    ``1 / confidence^2`` up to a freely fitted scale. With no
    confident frame at all, every lag is 0 (nothing is known; the caller's check on the
    low-confidence fraction reports it).
    """
    lags = np.asarray(lags, np.float64).reshape(-1, 2)
    conf = np.nan_to_num(np.asarray(confidence, np.float64).reshape(-1), nan=0.0)
    n = len(lags)
    confident = (conf >= min_confidence) & np.isfinite(lags).all(axis=1)
    ok = confident.copy()
    if not ok.any():
        zero = np.zeros((n, 2))
        none = (np.nan, np.nan)
        return SmoothedShifts(zero, np.full((n, 2), np.inf), ok, np.zeros(n, bool), (none, none))
    if lag_sd is None:
        relative = np.repeat((1.0 / np.maximum(conf, 1e-6) ** 2)[:, None], 2, axis=1)
        scale_range = (0.0, np.inf)
    else:
        relative = np.minimum(np.asarray(lag_sd, np.float64).reshape(-1, 2), 1e100) ** 2
        ok &= np.isfinite(relative).all(axis=1)
        scale_range = (1.0 / SD_SCALE**2, 1.0)
    reset = np.zeros(n, bool)
    if segment_starts is not None:
        reset[np.asarray(segment_starts, np.int64)] = True
    out = np.empty((n, 2))
    sd = np.empty((n, 2))
    ratios: list[tuple[float, float]] = [(np.nan, np.nan)] * 2
    for _ in range(OUTLIER_ROUNDS):
        far = np.zeros(n, bool)
        for axis in range(2):
            variance = np.where(ok, relative[:, axis], np.inf)
            fit = kalman_smooth(lags[:, axis], variance, reset, scale_range)
            out[:, axis], sd[:, axis], ratios[axis] = fit.pos, fit.sd, fit.ratio
            far |= _outliers(lags[:, axis], variance, fit) & ok
        if not far.any() or far.sum() >= ok.sum() - 1:
            break
        ok &= ~far
    return SmoothedShifts(out, sd, ok, confident & ~ok, (ratios[0], ratios[1]))


def _outliers(z: np.ndarray, variance: np.ndarray, fit: _Fit) -> np.ndarray:
    """Observations that neither their past nor their future predicts.

    Each observation's innovation (observation minus the filter's prediction from one
    side only), divided by its predicted SD, is computed forwards and backwards in time;
    an outlier is far out both ways: beyond ``OUTLIER_SDS`` robust SDs (MAD, so a fit
    pulled by many outliers still shows them) and ``OUTLIER_MIN_PX`` px (clean, textured
    movies have tiny, homogeneous residuals).
    """
    seen = np.isfinite(variance)
    far = np.ones(len(z), bool)
    for std, miss in (fit.forward, fit.backward):
        s = std[seen]
        spread = 1.4826 * np.median(np.abs(s - np.median(s)))
        if not spread > 0:
            return np.zeros(len(z), bool)
        far &= seen & (np.abs(std) > OUTLIER_SDS * spread) & (np.abs(miss) > OUTLIER_MIN_PX)
    return far


@dataclass(frozen=True)
class _Fit:
    pos: np.ndarray  # smoothed positions
    var: np.ndarray  # their variances, relative (multiply by scale for px^2)
    scale: float  # fitted measurement-noise scale k
    ratio: tuple[float, float]  # fitted (acceleration, jitter) / k
    forward: tuple[np.ndarray, np.ndarray]  # standardized and raw innovations, past only
    backward: tuple[np.ndarray, np.ndarray]  # the same from the future

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.var * self.scale, 0.0))


def kalman_smooth(
    z: np.ndarray,
    variance: np.ndarray,
    reset: np.ndarray | None = None,
    scale_range: tuple[float, float] = (0.0, np.inf),
) -> _Fit:
    """RTS-smoothed positions of one axis, with the noise ratios fitted by maximum likelihood.

    ``variance`` is each observation's relative variance (``inf`` = no observation);
    ``reset`` marks frames where the state starts afresh (diffuse). The motion model is a
    constant velocity disturbed by white acceleration noise ``a`` and by position jitter
    ``j`` per frame; observation variance is ``k * variance``. For each candidate
    ``(a / k, j / k)`` the filter runs with ``k = 1``; the likelihood's maximum over ``k``
    (within ``scale_range``) is closed-form, so the search runs all candidates at once,
    keeping only their sums.
    """
    z = np.asarray(z, np.float64)
    variance = np.asarray(variance, np.float64)
    n = len(z)
    reset = np.zeros(n, bool) if reset is None else np.asarray(reset, bool)
    chi2, log_det, n_obs = _filter(z, variance, RATIOS, reset)
    if n_obs >= 2:
        scale = np.clip(chi2 / n_obs, max(scale_range[0], 1e-300), scale_range[1])
        loglik = -0.5 * (log_det + n_obs * np.log(scale)) - 0.5 * chi2 / scale
        best = int(np.argmax(loglik))
        k = float(scale[best])
    else:  # at most one observation per stretch: hold it
        best, k = len(RATIOS) - 1, 1.0
    ratio = RATIOS[best : best + 1]
    steps = _Steps(n)
    _filter(z, variance, ratio, reset, steps)
    pos, var = _rts(steps)
    back = _Steps(n)
    back_reset = np.r_[False, reset[::-1][:-1]]
    _filter(z[::-1], variance[::-1], ratio, back_reset, back)
    k_sd = np.sqrt(max(k, 1e-300))
    forward = (steps.nu / (np.sqrt(steps.s) * k_sd), steps.nu)
    backward = ((back.nu / (np.sqrt(back.s) * k_sd))[::-1], back.nu[::-1])
    return _Fit(pos, var, k, (float(ratio[0, 0]), float(ratio[0, 1])), forward, backward)


class _Steps:
    """Per-frame filter states of one candidate, for the smoother and the outlier test."""

    def __init__(self, n: int) -> None:
        self.x = np.zeros((n, 2))  # filtered (position, velocity)
        self.p = np.zeros((n, 3))  # filtered covariance (p00, p01, p11)
        self.xp = np.zeros((n, 2))  # predicted
        self.pp = np.zeros((n, 3))
        self.nu = np.zeros(n)  # innovation (0 without an observation)
        self.s = np.ones(n)  # its variance, relative


def _filter(
    z: np.ndarray,
    variance: np.ndarray,
    ratios: np.ndarray,
    reset: np.ndarray,
    steps: _Steps | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Kalman filter for (G, 2) candidate ratios at once: sums of chi2 and log innovation variance.

    The first observation of a stretch only initialises its diffuse state (not counted).
    ``steps`` (one candidate only) records every frame's state.
    """
    g = len(ratios)
    accel, jitter = ratios[:, 0], ratios[:, 1]
    q00, q01, q11 = accel / 3.0 + jitter, accel / 2.0, accel
    diffuse = 1e8
    seen = np.isfinite(variance)
    pos = np.full(g, float(z[int(np.argmax(seen))]) if seen.any() else 0.0)
    vel = np.zeros(g)
    p00, p01, p11 = np.full(g, diffuse), np.zeros(g), np.full(g, diffuse)
    chi2 = np.zeros(g)
    log_det = np.zeros(g)
    started = False
    n_obs = 0
    for t in range(len(z)):
        if t and reset[t]:
            vel = np.zeros(g)
            p00, p01, p11 = np.full(g, diffuse), np.zeros(g), np.full(g, diffuse)
            started = False
        elif t:
            pos = pos + vel
            p00, p01, p11 = p00 + 2 * p01 + p11 + q00, p01 + p11 + q01, p11 + q11
        if steps is not None:
            steps.xp[t] = pos[0], vel[0]
            steps.pp[t] = p00[0], p01[0], p11[0]
        if seen[t]:
            s = p00 + variance[t]
            nu = z[t] - pos
            if started:
                chi2 += nu * nu / s
                log_det += np.log(s)
                n_obs += 1
                if steps is not None:
                    steps.nu[t], steps.s[t] = nu[0], s[0]
            started = True
            k0, k1 = p00 / s, p01 / s
            pos = pos + k0 * nu
            vel = vel + k1 * nu
            p00, p01, p11 = p00 - k0 * p00, p01 - k0 * p01, p11 - k1 * p01
        if steps is not None:
            steps.x[t] = pos[0], vel[0]
            steps.p[t] = p00[0], p01[0], p11[0]
    return chi2, log_det, n_obs


def _rts(f: _Steps) -> tuple[np.ndarray, np.ndarray]:
    """Rauch-Tung-Striebel pass: smoothed positions and their (relative) variances."""
    x, p, xp, pp = f.x, f.p, f.xp, f.pp
    n = len(x)
    xs = x.copy()
    ps = p.copy()
    for t in range(n - 2, -1, -1):
        a, b, c = p[t]
        pa, pb, pc = pp[t + 1]
        det = pa * pc - pb * pb
        if det <= 0 or pa >= 1e7:  # the next frame starts a new stretch
            continue
        # gain C = P F^T inv(P_pred), with F = [[1, 1], [0, 1]]
        m00, m01, m10, m11 = a + b, b, b + c, c
        i00, i01, i11 = pc / det, -pb / det, pa / det
        c00, c01 = m00 * i00 + m01 * i01, m00 * i01 + m01 * i11
        c10, c11 = m10 * i00 + m11 * i01, m10 * i01 + m11 * i11
        d0, d1 = xs[t + 1, 0] - xp[t + 1, 0], xs[t + 1, 1] - xp[t + 1, 1]
        xs[t, 0] = x[t, 0] + c00 * d0 + c01 * d1
        xs[t, 1] = x[t, 1] + c10 * d0 + c11 * d1
        e00, e01, e11 = ps[t + 1, 0] - pa, ps[t + 1, 1] - pb, ps[t + 1, 2] - pc
        ps[t, 0] = a + c00 * (c00 * e00 + c01 * e01) + c01 * (c00 * e01 + c01 * e11)
        ps[t, 1] = b + c00 * (c10 * e00 + c11 * e01) + c01 * (c10 * e01 + c11 * e11)
        ps[t, 2] = c + c10 * (c10 * e00 + c11 * e01) + c11 * (c10 * e01 + c11 * e11)
    return xs[:, 0], ps[:, 0]
