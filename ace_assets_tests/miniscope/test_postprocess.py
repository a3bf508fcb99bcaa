"""Post-processing of calcium traces: band-pass, phase, z-score, spectrogram, ETAs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ace_assets.errors import AceInputError
from ace_assets.miniscope.postprocess import (
    bandpass_traces,
    component_event_triggered_averages,
    event_triggered_average,
    hilbert_phase,
    population_signal,
    population_spectrogram,
    zscore_traces,
)

FPS = 30.0


def test_bandpass_keeps_band_rejects_outside_without_phase_lag():
    t = np.arange(6000) / FPS
    inband = np.sin(2 * np.pi * 0.5 * t)
    out = np.vstack([inband, np.sin(2 * np.pi * 5.0 * t), np.sin(2 * np.pi * 0.01 * t)])
    f = bandpass_traces(out, FPS)  # n=2, cut=[0.1, 1.5], butter, bandpass
    mid = slice(600, -600)
    assert np.std(f[0, mid]) > 0.9 * np.std(inband[mid])
    assert np.std(f[1, mid]) < 0.05 and np.std(f[2, mid]) < 0.1
    lag = np.argmax(np.correlate(f[0, mid], inband[mid], "full")) - (len(inband[mid]) - 1)
    assert lag == 0  # zero-phase
    low = bandpass_traces(out[1], FPS, cut=2.0, btype="lowpass", ftype="cheby1")
    assert np.std(low[0, mid]) < 0.05


def test_hilbert_phase_of_a_cosine_advances_linearly():
    t = np.arange(3000) / FPS
    ph = hilbert_phase(np.cos(2 * np.pi * 0.5 * t))[0]
    expected = np.angle(np.exp(1j * 2 * np.pi * 0.5 * t))
    err = np.angle(np.exp(1j * (ph - expected)))[300:-300]
    assert np.max(np.abs(err)) < 0.05


def test_sliding_zscore_follows_slow_level_changes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(5000) + 20.0 * (np.arange(5000) >= 2500)
    z = zscore_traces(x, frameWindow=1000)[0]
    away = np.r_[0:1900, 3100:5000]  # more than half a window from the step
    assert abs(z[away].mean()) < 0.05 and 0.9 < z[away].std() < 1.1
    whole = zscore_traces(x, frameWindow=None)[0]
    assert whole.std() == pytest.approx(1.0) and whole[:1900].mean() < -0.9
    assert np.all(zscore_traces(np.ones((1, 100)), 10) == 0)


def test_population_spectrogram_finds_the_shared_rhythm():
    rng = np.random.default_rng(1)
    t = np.arange(int(120 * FPS)) / FPS
    traces = np.sin(2 * np.pi * 2.0 * t) + 0.5 * rng.standard_normal((10, len(t)))
    assert np.std(population_signal(traces)) > 0.5
    s, times, freqs = population_spectrogram(traces, FPS)
    assert s.shape == (len(freqs), len(times))
    assert freqs.min() >= 0 and freqs.max() <= 15
    assert np.diff(times).mean() == pytest.approx(3.0)
    assert abs(freqs[np.argmax(s.mean(axis=1))] - 2.0) < 0.2
    with pytest.raises(AceInputError, match="window_length"):
        population_spectrogram(traces[:, :300], FPS)


def test_event_triggered_averages():
    x = np.zeros((2, 100))
    x[0, [20, 50]] = 1.0
    x[1, 21] = 3.0
    mean, seg, lags = event_triggered_average(x, [20, 50, 2, 98], framesb=3, framesa=4)
    assert seg.shape == (2, 2, 8) and lags[0] == -3 and lags[-1] == 4
    np.testing.assert_allclose(mean[0], [0, 0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_allclose(mean[1], [0, 0, 0, 0, 1.5, 0, 0, 0])
    ev = pd.DataFrame({"component": [5, 5, 6], "frame": [20, 50, 1]})
    eta, counts, _ = component_event_triggered_averages(x, ev, 3, 4, ids=[5, 6])
    assert counts.tolist() == [2, 0]
    np.testing.assert_allclose(eta[0], mean[0])
    assert np.all(np.isnan(eta[1]))


def test_bad_filter_settings_raise():
    x = np.zeros((1, 500))
    with pytest.raises(AceInputError, match="Nyquist"):
        bandpass_traces(x, FPS, cut=(0.1, 20.0))
    with pytest.raises(AceInputError, match="ftype"):
        bandpass_traces(x, FPS, ftype="fir")
    with pytest.raises(AceInputError, match="cut must have 2"):
        bandpass_traces(x, FPS, cut=1.0)
    with pytest.raises(AceInputError, match="frames"):
        bandpass_traces(np.zeros((1, 10)), FPS)
