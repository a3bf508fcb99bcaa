"""Calcium event detection on traces with known transients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from ace_assets.errors import AceInputError
from ace_assets.miniscope.events import detect_events, event_frames_by_component


def _traces(seed=0, n=3, t=1200, g=0.9, noise=0.3):
    rng = np.random.default_rng(seed)
    s = np.zeros((n, t))
    truth = []
    for k in range(n):
        frames = np.sort(rng.choice(np.arange(20, t - 20, 25), size=12, replace=False))
        s[k, frames] = rng.uniform(4, 8, len(frames))
        truth.append(frames)
    c = lfilter([1.0], [1.0, -g], s, axis=1)
    return c + noise * rng.standard_normal(c.shape), truth


@pytest.mark.parametrize("derivative", ["first", "second"])
def test_derivative_events_land_on_spike_frames(derivative):
    y, truth = _traces()
    ev = detect_events(y, 30.0, derivative_for_estimates=derivative, event_height=4, ids=[7, 8, 9])
    assert list(ev.columns[:5]) == ["component", "frame", "time_s", "amplitude", "height_sd"]
    assert set(ev["component"]) == {7, 8, 9}
    found = event_frames_by_component(ev, [7, 8, 9])
    for f, tr in zip(found, truth, strict=False):
        hits = sum(np.any(np.abs(f - x) <= 1) for x in tr)
        assert hits == len(tr)
        assert len(f) <= len(tr) + 1
    np.testing.assert_allclose(ev["time_s"], ev["frame"] / 30.0)
    assert np.all(ev["height_sd"] >= 4)


def test_zeroth_derivative_peaks_and_separation():
    t = np.arange(300)
    x = np.zeros(300)
    x[[50, 53, 200]] = [5.0, 6.0, 4.0]
    x += 0.05 * np.random.default_rng(1).standard_normal(300)
    ev = detect_events(
        x,
        10.0,
        derivative_for_estimates="zeroth",
        event_height=5,
        min_separation=5,
        frame_times=t * 0.1 + 100.0,
    )
    assert ev["frame"].tolist() == [53, 200]  # 50 and 53 closer than 5 frames: higher wins
    np.testing.assert_allclose(ev["time_s"], [105.3, 120.0])


def test_quiet_traces_and_bad_arguments():
    ev = detect_events(np.zeros((2, 100)), 30.0)
    assert isinstance(ev, pd.DataFrame) and len(ev) == 0
    assert ev["frame"].dtype == np.int64
    with pytest.raises(AceInputError, match="derivative_for_estimates"):
        detect_events(np.ones((1, 50)), 30.0, derivative_for_estimates="third")
    with pytest.raises(AceInputError, match="fps"):
        detect_events(np.ones((1, 50)), 0)
    with pytest.raises(AceInputError, match="frame_times"):
        detect_events(np.ones((1, 50)), 30.0, frame_times=np.arange(10))
