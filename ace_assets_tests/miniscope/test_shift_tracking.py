"""From per-frame correlation peaks to one motion trace: smoothing, gaps, outliers, decoys."""

from __future__ import annotations

import numpy as np

from ace_assets.miniscope.shift_smoothing import smooth_lags
from ace_assets.miniscope.shift_tracking import track

M = 10  # max_shifts of the synthetic windows


def smooth_path(n: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return np.stack([3 * np.sin(t / 40 + rng.uniform(0, 6)), 2 * np.cos(t / 55)], axis=1)


def test_smoother_denoises_bridges_gaps_and_drops_outliers() -> None:
    rng = np.random.default_rng(1)
    n = 600
    truth = smooth_path(n)
    z = truth + rng.normal(0, 0.5, truth.shape)
    conf = np.full(n, 10.0)
    conf[200:230] = 1.0  # a quiet stretch: no confident frame
    z[400] += (8, -6)  # confident, and wrong
    z[450] += (0, 4)
    s = smooth_lags(z, conf, 5.0)
    err = np.hypot(*(s.lags - truth).T)
    assert np.median(err) < 0.15 and np.percentile(err, 95) < 0.35
    assert err[200:230].max() < 0.5  # the gap is interpolated from both sides
    assert set(np.flatnonzero(s.outlier)) == {400, 450}
    assert not s.used[200:230].any() and s.used.sum() == n - 32
    assert np.all(s.sd[200:230] > s.sd[100])  # less known inside the gap


def test_precise_measurements_are_kept_even_when_motion_jumps() -> None:
    """Frame-to-frame jumps measured to 0.02 px are motion, not noise to smooth away."""
    rng = np.random.default_rng(2)
    truth = rng.uniform(-2, 2, (80, 2))
    z = truth + rng.normal(0, 0.02, truth.shape)
    s = smooth_lags(z, np.full(80, 20.0), 5.0, lag_sd=np.full((80, 2), 0.03))
    assert np.abs(s.lags - z).max() < 0.02
    assert not s.outlier.any()


def windows_with_decoys(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z-scored correlation windows: a broad true peak, and in every third frame a taller
    decoy 6-9 px away (a single active neuron matching a neighbouring template cell)."""
    rng = np.random.default_rng(seed)
    truth = smooth_path(n, seed) * 0.8
    axis = np.arange(-M - 1, M + 2)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    windows = np.empty((n, len(axis), len(axis)), np.float32)
    decoys = np.zeros(n, bool)
    for t in range(n):
        ty, tx = truth[t]
        w = 9.0 * np.exp(-((yy - ty) ** 2 + (xx - tx) ** 2) / (2 * 2.0**2))
        if t % 3 == 0:
            angle = rng.uniform(0, 2 * np.pi)
            dy, dx = ty + 7.5 * np.sin(angle), tx + 7.5 * np.cos(angle)
            w += 12.0 * np.exp(-((yy - dy) ** 2 + (xx - dx) ** 2) / (2 * 2.0**2))
            decoys[t] = True
        windows[t] = w + rng.normal(0, 0.3, w.shape)
    return windows, truth, decoys


def test_track_follows_the_trajectory_past_taller_decoys() -> None:
    windows, truth, decoys = windows_with_decoys(300)
    tr = track(windows, (float(M), float(M)), 5.0)
    first_err = np.hypot(*(tr.first_peaks - truth).T)
    assert np.median(first_err[decoys]) > 5  # the highest peak is the decoy
    err = np.hypot(*(tr.smoothed.lags - truth).T)
    assert np.percentile(err, 95) < 0.3 and err.max() < 0.6
    assert tr.confidence.min() > 5  # the true peak, found near the trajectory


def test_track_keeps_a_real_step() -> None:
    """Five frames still, five frames 6 px away, all sharp: a step, not outliers."""
    windows, _, _ = windows_with_decoys(10)
    axis = np.arange(-M - 1, M + 2)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    truth = np.array([[0.0, 0.0]] * 5 + [[0.0, 6.0]] * 5)
    for t, (ty, tx) in enumerate(truth):
        windows[t] = 20.0 * np.exp(-((yy - ty) ** 2 + (xx - tx) ** 2) / (2 * 1.5**2))
    tr = track(windows, (float(M), float(M)), 5.0)
    assert np.abs(tr.smoothed.lags - truth).max() < 0.05
