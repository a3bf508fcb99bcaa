"""The real Pegasus recording (ace_assets_tests/data/neuralynx_pegasus, see its ORIGIN.md):
the reader against the vendor's MATLAB exports, gaps, mixed rates, non-monotonic events."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from scipy.signal import butter, resample_poly, sosfiltfilt

from ace_assets.ephys.filters import filter_signal
from ace_assets.ephys.masks import blank_unrecorded
from ace_assets.ephys.windows import band_power, plan_windows
from ace_assets.io.neuralynx import NeuralynxSession, read_events, record_index
from ace_assets.io.neuralynx_events import events_sanity
from ace_assets_tests.helpers.paths import DATA as TEST_DATA

DATA = TEST_DATA / "neuralynx_pegasus"
CHANNELS = ["LAHC1", "LAHC2", "LAHC3", "xAIR1", "xEKG1", "LAHCu1", "LAHC1_3_gaps", "LAHC2_3_gaps"]
DELTA = [0.5, 4.0]


def _mat(name: str) -> dict[str, np.ndarray]:
    return scipy.io.loadmat(DATA / f"{name}.mat")


@pytest.mark.parametrize("name", CHANNELS)
def test_reader_equals_vendor_export_exactly(name: str) -> None:
    """Timestamps, valid counts and every sample (counts x the header's signed scale) equal
    Nlx2MatCSC's output; read without filling, the samples are exactly the recorded ones."""
    m = _mat(name)
    s = NeuralynxSession(DATA, [name], max_fill_s=0.0)
    ts, nv = record_index(s.files[0], s.headers[0].n_records)
    np.testing.assert_array_equal(ts, m["Timestamps"][0].astype(np.int64))
    np.testing.assert_array_equal(nv, m["NumberOfValidSamples"][0])
    assert s.sampling_rate == float(m["SampleFrequencies"][0, 0])
    counts = np.concatenate([m["Samples"][:k, r] for r, k in enumerate(nv)]).astype(np.float64)
    assert s.n_samples == counts.size
    volts = s.read(0, s.n_samples)[0]
    np.testing.assert_array_equal(volts, counts * s.headers[0].volts_per_count)
    assert s.headers[0].input_inverted and s.headers[0].volts_per_count < 0


def test_events_equal_vendor_export_and_are_flagged_not_monotonic() -> None:
    m = _mat("Events")
    ev = read_events(DATA / "Events.nev")
    np.testing.assert_array_equal(ev.timestamp_us, m["Timestamps"][0].astype(np.int64))
    np.testing.assert_array_equal(ev.event_id, m["EventIDs"][0])
    np.testing.assert_array_equal(ev.ttl, m["TTLs"][0])
    assert ev.string.tolist() == [str(x[0][0]) for x in m["EventStrings"]]
    s = NeuralynxSession(DATA, ["LAHC1"], "Events.nev")
    seg = s.segments()
    sanity = events_sanity(s.events(), seg.t_start_s.iloc[0], seg.t_stop_s.iloc[-1])
    assert sanity["not_monotonic"] == 1 and sanity["outside_recording"] == 0
    assert "not monotonic" in sanity["warnings"][0]
    # the same events read against another session's clock: 1.7e9 s away, flagged
    foreign = read_events(DATA / "Events.nev", origin_us=0)
    far = events_sanity(foreign, seg.t_start_s.iloc[0], seg.t_stop_s.iloc[-1], file="Events.nev")
    assert far["outside_recording"] == 4
    assert "another session" in far["warnings"][0] and "1.69893e+09" in far["warnings"][0]


def _delta_rms(names: list[str], max_fill_s: float) -> tuple[np.ndarray, np.ndarray]:
    """RMS (µV) and mean delta power over recorded samples, as the pipeline computes them."""
    s = NeuralynxSession(DATA, names, max_fill_s=max_fill_s)
    x = s.read(0, s.n_samples).T
    y = filter_signal(x, s.sampling_rate, "butter", DELTA, segments=s.grid.segments)
    runs = np.array(
        [(r.column, r.start_index, r.stop_index) for r in s.channel_runs().itertuples()]
    ).reshape(-1, 3)
    y = blank_unrecorded(y, 0, runs)
    plan = plan_windows(s.grid.segments, s.sampling_rate, window_s=2.0, step_s=0.5)
    power = band_power(lambda a, b: y[a:b], plan)
    return np.sqrt(np.nanmean(y**2, axis=0)) * 1e6, np.nanmean(power[~plan.masked], axis=0)


def test_gapped_channels_filter_like_the_intact_ones() -> None:
    """The issue's bar: filtered RMS of the gapped channels within 1.5x of the intact ones
    (SciPy's per-segment default gave 10x, and delta power inflated ~100x)."""
    s = NeuralynxSession(DATA, ["LAHC1_3_gaps", "LAHC2_3_gaps"], max_fill_s=0.1)
    gaps = s.gaps()
    np.testing.assert_allclose(gaps.duration_s, [0.050, 0.0035, 0.0115], atol=2e-6)
    assert gaps.filled.all() and len(s.grid.segments) == 1
    runs = s.channel_runs()
    assert (runs.kind == "filled").all() and len(runs) == 6
    intact_rms, intact_power = _delta_rms(["LAHC1", "LAHC2"], 0.1)
    gapped_rms, gapped_power = _delta_rms(["LAHC1_3_gaps", "LAHC2_3_gaps"], 0.1)
    ratio = gapped_rms / intact_rms
    assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), ratio
    assert np.all(gapped_power / intact_power < 1.5), gapped_power / intact_power
    # the recorded samples are untouched by the filling
    intact = NeuralynxSession(DATA, ["LAHC1"]).read(0, s.n_samples)[0]
    filled = s.read(0, s.n_samples)[0]
    keep = np.ones(s.n_samples, bool)
    for r in runs[runs.channel == "LAHC1_3_gaps"].itertuples():
        keep[r.start_index : r.stop_index] = False
    np.testing.assert_array_equal(filled[keep], intact[keep])
    # what the issue measured: each segment filtered with SciPy's default padding
    old = NeuralynxSession(DATA, ["LAHC1_3_gaps"], max_fill_s=0.0)
    x = old.read(0, old.n_samples)[0]
    sos = butter(4, DELTA, "bandpass", fs=2000.0, output="sos")
    y = np.concatenate([sosfiltfilt(sos, x[a:b]) for a, b in old.grid.segments])
    assert np.sqrt(np.mean(y**2)) * 1e6 > 5 * intact_rms[0]


def test_gaps_kept_as_boundaries_do_not_ring() -> None:
    """With filling off, each segment is mirror-padded for the filter's impulse response."""
    boundary_rms, _ = _delta_rms(["LAHC1_3_gaps", "LAHC2_3_gaps"], 0.0)
    intact_rms, _ = _delta_rms(["LAHC1", "LAHC2"], 0.0)
    assert np.all(boundary_rms < 2.5 * intact_rms), boundary_rms / intact_rms


def test_channels_with_and_without_gaps_in_one_line() -> None:
    s = NeuralynxSession(DATA, ["LAHC1_3_gaps", "LAHC3"], max_fill_s=0.1)
    assert s.gaps().empty and len(s.grid.segments) == 1 and s.n_samples == 11691
    runs = s.channel_runs()
    assert set(runs.channel) == {"LAHC1_3_gaps"}
    assert runs.start_index.tolist() == [5020, 8185, 10729]
    v = s.read(0, s.n_samples)
    np.testing.assert_array_equal(v[1], NeuralynxSession(DATA, ["LAHC3"]).read(0, 11691)[0])
    # filled channel still samples the same times as the intact one
    np.testing.assert_array_equal(v[0, :5020], NeuralynxSession(DATA, ["LAHC1"]).read(0, 5020)[0])


def test_mixed_rate_folder_becomes_two_streams() -> None:
    """LAHCu1 (32 kHz, starting 469 µs earlier) beside LAHC1 (2 kHz): its own stream, and
    polyphase-resampled onto the 2 kHz grid at the grid's sample times."""
    m = _mat("LAHCu1")
    s = NeuralynxSession(DATA, ["LAHC1", "LAHCu1"])
    assert s.sampling_rate == 2000.0 and [st.fs for st in s.streams] == [32000.0]
    assert s.origin_us == int(m["Timestamps"][0, 0])
    grid_t = s.clock.times(0, 4)
    assert grid_t[0] == pytest.approx(469e-6, abs=1e-9)
    v = s.read(0, s.n_samples)
    nv = m["NumberOfValidSamples"][0]
    native = np.concatenate([m["Samples"][:k, r] for r, k in enumerate(nv)]) * float(
        s.headers[1].volts_per_count
    )
    # grid sample j sits 15 native samples (469 µs) after LAHCu1's first sample: phase 15
    ref = resample_poly(native[15:], 1, 16)
    inner = slice(200, s.n_samples - 200)
    np.testing.assert_allclose(v[1][inner], ref[inner], rtol=0, atol=1e-12)
    assert s.report().resampled_channels == ["LAHCu1"]
