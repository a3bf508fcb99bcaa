"""Lagged correlation: the sign convention, NaN-aware pairs, and the fast sliding windows
against the plain definition."""

from __future__ import annotations

import numpy as np
import pytest

from ace_assets.multimodal.lagged_correlation import (
    best_lag,
    lagged_correlation,
    sliding_correlation,
)


def plain_r(x: np.ndarray, y: np.ndarray, start: int, stop: int, lag: int) -> float:
    """corr(x[t], y[t + lag]) over t in [start, stop) where both exist and are finite."""
    t = np.arange(start, stop)
    t = t[(t + lag >= 0) & (t + lag < y.size)]
    a, b = x[t], y[t + lag]
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def test_positive_lag_means_the_fluorescence_follows() -> None:
    rng = np.random.default_rng(0)
    fps = 20.0
    x = np.convolve(rng.normal(size=4000), np.ones(9) / 9, "same")
    delay = 7  # frames: fluorescence = EEG 0.35 s later
    y = np.r_[np.zeros(delay), x[:-delay]] + 0.1 * rng.normal(size=x.size)
    lags, r, pairs = lagged_correlation(x, y, fps, max_lag_s=1.0)
    assert best_lag(lags, r)[0] == pytest.approx(delay / fps)
    assert best_lag(*lagged_correlation(y, x, fps, 1.0)[:2])[0] == pytest.approx(-delay / fps)
    # each lag's r is the plain Pearson r of the pairs that exist
    for k in (0, 10, 27, 40):
        assert r[k] == pytest.approx(plain_r(x, y, 0, x.size, int(round(lags[k] * fps))))
    assert pairs[len(lags) // 2] == x.size


def test_nan_frames_are_left_out_pair_by_pair() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=600)
    y = 0.5 * x + rng.normal(size=600)
    x[100:130] = np.nan
    y[400:420] = np.nan
    lags, r, pairs = lagged_correlation(x, y, 10.0, max_lag_s=0.5)
    for k in range(lags.size):
        lag = int(round(lags[k] * 10))
        assert r[k] == pytest.approx(plain_r(x, y, 0, x.size, lag))
    assert pairs[lags.size // 2] == 600 - 30 - 20


def test_sliding_windows_match_the_plain_definition() -> None:
    rng = np.random.default_rng(2)
    fps = 10.0
    x = np.convolve(rng.normal(size=1500), np.ones(5) / 5, "same")
    y = np.r_[np.zeros(3), x[:-3]] * np.linspace(0, 2, 1500) + 0.2 * rng.normal(size=1500)
    y[700:720] = np.nan
    table = sliding_correlation(x, y, fps, window_s=20.0, step_s=7.0, max_lag_s=1.0, lag_s=0.3)
    assert len(table) == (1500 - 200) // 70 + 1
    for row in table.itertuples(index=False):
        assert row.r_at_lag == pytest.approx(plain_r(x, y, row.start_frame, row.stop_frame, 3))
        curve = [plain_r(x, y, row.start_frame, row.stop_frame, k) for k in range(-10, 11)]
        k = int(np.nanargmax(np.abs(curve)))
        assert row.best_lag_s == pytest.approx((k - 10) / fps)
        assert row.r_best == pytest.approx(curve[k])
    # the coupling grows along the session, and so does r
    assert table["r_at_lag"].iloc[-1] > table["r_at_lag"].iloc[0]


def test_slow_independent_signals_are_not_called_correlated_but_coupled_ones_are() -> None:
    """Smooth independent series reach large |r| by chance; p_best accounts for that."""
    from scipy.ndimage import gaussian_filter1d

    from ace_assets.multimodal.lagged_correlation import effective_pairs, lag_p_value

    rng = np.random.default_rng(4)
    fps, n = 10.0, 3000
    chance_r, false_calls = [], 0
    for _ in range(30):
        x = gaussian_filter1d(rng.normal(size=n), 60)
        y = gaussian_filter1d(rng.normal(size=n), 60)
        lags, r, _ = lagged_correlation(x, y, fps, max_lag_s=2.0)
        _, r_best = best_lag(lags, r)
        chance_r.append(abs(r_best))
        n_eff = effective_pairs(x, y)
        assert n_eff < n / 10  # smooth series are worth far fewer pairs than frames
        false_calls += lag_p_value(r_best, n_eff, lags.size) < 0.05
    assert np.median(chance_r) > 0.15  # a naive test (n = 3000) would call these all coupled
    assert false_calls <= 3
    x = gaussian_filter1d(rng.normal(size=n), 60)
    y = np.r_[np.zeros(5), x[:-5]] + 0.5 * x.std() * rng.normal(size=n)
    lags, r, _ = lagged_correlation(x, y, fps, max_lag_s=2.0)
    lag, r_best = best_lag(lags, r)
    assert lag == pytest.approx(0.5)
    assert lag_p_value(r_best, effective_pairs(x, y), lags.size) < 1e-3
