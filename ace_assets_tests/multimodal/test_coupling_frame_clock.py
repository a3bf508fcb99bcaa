"""EEG onto the frame clock: anti-aliased, block-size independent, bounded reads, gaps as NaN;
the best band and lag of an envelope coupling; coupling confined to one period is found there."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from ace_assets.catalog.periods import LinePeriods, Period
from ace_assets.errors import AceInputError
from ace_assets.multimodal.coupling import ALL, MEAN, SIGNAL, couple
from ace_assets.multimodal.coupling_params import CouplingParams
from ace_assets.multimodal.frame_clock import ephys_on_frame_clock
from ace_assets.multimodal.lagged_correlation import best_lag, lagged_correlation
from ace_assets_tests.multimodal.coupling_synth import coupled

FS = 1000.0


def test_power_above_the_frame_nyquist_does_not_fold_into_the_frames() -> None:
    """40 Hz at 30 frames/s would alias to 10 Hz if frames just picked samples."""
    t = np.arange(int(60 * FS)) / FS
    slow = np.cos(2 * np.pi * 0.7 * t)
    eeg = slow + 3.0 * np.sin(2 * np.pi * 40.0 * t)
    frames = np.arange(1.0, 59.0, 1 / 30.0)
    ephys = ephys_on_frame_clock(lambda a, b: eeg[a:b, None], eeg.size, FS, frames * FS, 30.0, [])
    picked = np.interp(frames, t, eeg)
    alias = np.abs(np.sum((picked - slow_at(frames)) * np.exp(-2j * np.pi * 10.0 * frames)))
    ours = np.abs(
        np.sum((ephys.signal[:, 0] - slow_at(frames)) * np.exp(-2j * np.pi * 10 * frames))
    )
    assert alias > 100 * ours
    # what is left is the slow signal itself, undistorted and not delayed
    assert np.max(np.abs(ephys.signal[:, 0] - slow_at(frames))) < 0.01


def slow_at(t: np.ndarray) -> np.ndarray:
    return np.cos(2 * np.pi * 0.7 * t)


def test_blocks_give_the_same_result_and_reads_stay_bounded() -> None:
    data = coupled(duration_s=240.0, seed=2)
    requested: list[int] = []

    def read(a: int, b: int) -> np.ndarray:
        requested.append(b - a)
        return data.eeg[a:b, None]

    bands = [(0.5, 4.0), (30.0, 80.0)]
    small = ephys_on_frame_clock(
        read, data.eeg.size, FS, data.frame_times * FS, data.fps, bands, block_s=20.0
    )
    one = ephys_on_frame_clock(
        lambda a, b: data.eeg[a:b, None],
        data.eeg.size,
        FS,
        data.frame_times * FS,
        data.fps,
        bands,
        block_s=1e6,
    )
    assert len(requested) > 5
    pad = 10.0 / 0.5  # the default pad: ten periods of the lowest band edge
    assert max(requested) <= (20.0 + 2 * pad + 1) * FS  # never the whole recording
    # the low-passed signal is the same to rounding; an envelope differs by the Hilbert
    # transform's reach beyond the pad (worst 1.4 % of its SD, measured; no pad: ~100 %)
    assert np.allclose(small.signal, one.signal, atol=1e-6 * np.std(one.signal))
    for k in range(len(bands)):
        diff = np.abs(small.envelopes[k] - one.envelopes[k]) / np.std(one.envelopes[k])
        assert diff.max() < 0.03 and np.median(diff) < 0.003


def test_unrecorded_samples_and_frames_outside_the_recording_are_nan() -> None:
    data = coupled(duration_s=60.0, seed=4)
    eeg = data.eeg.copy()
    eeg[20_000:22_000] = np.nan  # 2 s unrecorded
    positions = data.frame_times * FS
    positions[-5:] = np.nan  # frames with no ephys (after the recording)
    ephys = ephys_on_frame_clock(lambda a, b: eeg[a:b, None], eeg.size, FS, positions, data.fps, [])
    t = data.frame_times
    gap = (t >= 20.0) & (t < 22.0)
    assert np.isnan(ephys.signal[gap, 0]).all() and np.isnan(ephys.signal[-5:, 0]).all()
    far = (np.abs(t - 21.0) > 3.0) & np.isfinite(positions)
    assert np.isfinite(ephys.signal[far, 0]).all()


def test_the_band_whose_envelope_drives_fluorescence_is_the_best_band_with_its_lag() -> None:
    """Gamma (40 Hz, above the frame Nyquist) amplitude drives fluorescence 0.5 s later."""
    rng = np.random.default_rng(8)
    t = np.arange(int(180 * FS)) / FS
    drive = gaussian_filter1d(rng.normal(size=t.size), 0.5 * FS)
    drive = 1.0 + drive / drive.std() * 0.4
    eeg = drive * np.sin(2 * np.pi * 40.0 * t) + 0.3 * np.cos(2 * np.pi * 1.1 * t)
    fps, lag = 20.0, 0.5
    frames = np.arange(3.0, 177.0, 1 / fps)
    fluorescence = np.interp(frames - lag, t, drive) + 0.2 * rng.normal(size=frames.size)
    bands = [(0.5, 4.0), (4.0, 8.0), (30.0, 80.0)]
    ephys = ephys_on_frame_clock(lambda a, b: eeg[a:b, None], eeg.size, FS, frames * FS, fps, bands)
    params = CouplingParams.from_mapping({"coupling_bands_hz": bands})
    result = couple({MEAN: fluorescence}, ephys, ["EEG"], frames, fps, params)
    best = result.lags[result.lags["best_band"] & (result.lags["period"] == ALL)].iloc[0]
    assert best.entry == "30-80Hz"
    assert best.best_lag_s == pytest.approx(lag, abs=1.5 / fps)
    assert best.r_best > 0.8
    # the envelope itself is what the lag correlation saw
    lags, r, _ = lagged_correlation(ephys.envelopes[2, :, 0], fluorescence, fps, 2.0)
    assert best_lag(lags, r)[0] == pytest.approx(best.best_lag_s)


def test_coupling_confined_to_one_period_is_found_in_that_period_only() -> None:
    data = coupled(duration_s=400.0, noise=1.0, seed=9)
    t = data.frame_times - 100.0  # session clock: zero time 100 s into the recording
    high = (t >= 0) & (t < 150)
    fluorescence = np.where(high, data.fluorescence, data.control)
    periods = LinePeriods(
        (Period("high_slow_wave", 0.0, 150.0), Period("control", 150.0, 290.0)), 100.0
    )
    ephys = data.on_frames()
    params = CouplingParams.from_mapping({})
    result = couple({MEAN: fluorescence}, ephys, ["EEG"], t, data.fps, params, periods)
    peaks = result.peaks.set_index("period")
    assert set(peaks.index) == {ALL, "high_slow_wave", "control"}
    assert peaks.loc["high_slow_wave", "significant"]
    assert abs(peaks.loc["high_slow_wave", "peak_freq_hz"] - 1.5) <= 0.5 + 0.15
    assert not peaks.loc["control", "significant"]
    assert peaks.loc["high_slow_wave", "duration_s"] == pytest.approx(150.0, abs=0.1)
    lags = result.lags[(result.lags["entry"] == SIGNAL)].set_index("period")
    assert lags.loc["high_slow_wave", "best_lag_s"] == pytest.approx(0.3, abs=1.5 / data.fps)
    assert abs(lags.loc["high_slow_wave", "r_best"]) > abs(lags.loc["control", "r_best"])
    # sliding windows cover the session and find the coupling only while it lasts
    slid = result.sliding[result.sliding["entry"] == SIGNAL]
    inside = slid[(slid["start_s"] >= 0) & (slid["end_s"] < 150)]["r_at_lag"]
    outside = slid[slid["start_s"] >= 160]["r_at_lag"]
    assert inside.median() > 0.3 > outside.abs().median()


@pytest.mark.parametrize(
    ("cells", "column"),
    [
        ({"coupling_window_s": "0"}, "coupling_window_s"),
        ({"coupling_bands_hz": "[[0, 4]]"}, "coupling_bands_hz"),
        ({"coupling_alpha": "1.5"}, "coupling_alpha"),
    ],
)
def test_bad_settings_name_their_column_and_where_to_set_it(cells, column) -> None:
    with pytest.raises(AceInputError) as err:
        CouplingParams.from_mapping(cells)
    assert err.value.column == column
    assert "analysis_parameters.csv" in str(err.value)


def test_a_band_beyond_the_ephys_nyquist_and_a_window_of_few_frames_are_refused() -> None:
    params = CouplingParams.from_mapping({"coupling_bands_hz": "[[30, 600]]"})
    with pytest.raises(AceInputError, match="Nyquist"):
        params.check_rates(fps=30.0, ephys_fs=1000.0)
    short = CouplingParams.from_mapping({"coupling_window_s": "0.5"})
    with pytest.raises(AceInputError, match="16 frames"):
        short.check_rates(fps=20.0, ephys_fs=1000.0)
