"""Coherence and lag are recovered on synthetic data with a known coupling; no coupling is
found where there is none.

The fluorescence is the EEG smoothed by a zero-phase filter and delayed by a known lag, plus
noise, at several frame rates, lengths, noise levels and lags (one negative: fluorescence
leading). The control is an independent signal with the same kind of slow oscillation.
"""

from __future__ import annotations

import numpy as np
import pytest

from ace_assets.multimodal.coherence import coherence
from ace_assets.multimodal.lagged_correlation import best_lag, lagged_correlation
from ace_assets_tests.multimodal.coupling_synth import coupled

W = 0.5  # taper half-bandwidth, Hz
CASES = [
    # fps, duration s, f0 Hz, lag s, noise (SD relative to the coupled signal's)
    pytest.param(20.0, 120.0, 1.5, 0.30, 0.5, id="20fps-2min-low-noise"),
    pytest.param(30.0, 300.0, 1.0, 0.25, 2.0, id="30fps-5min-noisy"),
    pytest.param(10.0, 120.0, 2.0, -0.15, 1.0, id="10fps-2min-fluorescence-leads"),
]


def _coherence(eeg: np.ndarray, y: np.ndarray, fps: float):
    return coherence(eeg, y, fps, window_s=10.0, bandwidth_hz=W, freq_range=(W, 0.4 * fps))


@pytest.mark.parametrize(("fps", "duration", "f0", "lag", "noise"), CASES)
def test_coherence_peak_and_lag_are_recovered(fps, duration, f0, lag, noise) -> None:
    data = coupled(fps=fps, duration_s=duration, f0=f0, lag_s=lag, noise=noise, seed=int(fps))
    eeg = data.on_frames().signal[:, 0]

    coh = _coherence(eeg, data.fluorescence, fps)
    peak = coh.peak()
    # the peak is the oscillation (within the spectral resolution and its 5 % wander)
    assert abs(peak["peak_freq_hz"] - f0) <= W + 0.1 * f0
    assert peak["significant"] and peak["peak_coherence"] > coh.peak_level
    assert peak["peak_lower"] > coh.level  # the whole jackknife interval clears the level
    # the coherency phase at the oscillation gives the lag (fluorescence follows: > 0)
    at = coh.at(f0)
    assert at["lag_s"] == pytest.approx(lag, abs=0.02)

    # cross-correlation: the best lag is the known one, to the frame
    lags, r, _ = lagged_correlation(eeg, data.fluorescence, fps, max_lag_s=1.0)
    found, r_best = best_lag(lags, r)
    assert abs(found - lag) <= 1.0 / fps + 1e-9
    assert r_best > 0.2

    # the independent control stays under the bound, and its correlation is small
    control = _coherence(eeg, data.control, fps).peak()
    assert not control["significant"]
    assert control["peak_coherence"] < control["peak_significance_level"]
    _, r_control = best_lag(*lagged_correlation(eeg, data.control, fps, max_lag_s=1.0)[:2])
    assert abs(r_control) < abs(r_best)


def test_false_positive_rate_of_the_peak_is_at_most_alpha() -> None:
    """40 independent pairs: the family-wise peak level lets through about 5 %, not more."""
    rng = np.random.default_rng(11)
    fps, n = 20.0, 2400
    hits = 0
    for _ in range(40):
        x = np.convolve(rng.normal(size=n), np.ones(4) / 4, "same")
        y = np.convolve(rng.normal(size=n), np.ones(7) / 7, "same")
        hits += bool(_coherence(x, y, fps).peak()["significant"])
    assert hits <= 5  # P(more than 5 of 40 at alpha = 0.05) < 0.05


def test_bounds_shrink_with_more_data_and_degrees_of_freedom_are_reported() -> None:
    short = coupled(duration_s=40.0, noise=1.0, seed=3)
    long = coupled(duration_s=240.0, noise=1.0, seed=3)
    widths = []
    for data in (short, long):
        coh = _coherence(data.on_frames().signal[:, 0], data.fluorescence, data.fps)
        assert coh.n_tapers == 9 and coh.time_bandwidth == pytest.approx(5.0)
        assert coh.n_estimates == coh.n_windows * 9
        p = coh.peak()
        widths.append(p["peak_upper"] - p["peak_lower"])
    assert widths[1] < widths[0]


def test_nan_frames_are_left_out_not_filled() -> None:
    data = coupled(duration_s=120.0, seed=5)
    eeg = data.on_frames().signal[:, 0]
    y = data.fluorescence.copy()
    y[500:900] = np.nan  # a stretch of missing frames
    coh = _coherence(eeg, y, data.fps)
    whole = _coherence(eeg, data.fluorescence, data.fps)
    assert coh.n_windows < whole.n_windows
    assert coh.peak()["significant"]
    assert np.isfinite(coh.coherence).all()
