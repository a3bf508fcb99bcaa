"""The cohort table's pure rules: a line's status, and measures per period on generated events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ace_assets.catalog.csv_table import RowProblem
from ace_assets.catalog.experiments import Experiment
from ace_assets.catalog.periods import LinePeriods, Period
from ace_assets.cohort.table import (
    LineResults,
    band_label,
    calcium_measures,
    cohort_frame,
    line_row,
    line_status,
    power_measures,
)

EXPECTED = ("calcium_events", "miniscope_sources")


def _results(**kw) -> LineResults:
    base = dict(line=1, expected=EXPECTED, inputs_at=100.0)
    base.update(kw)
    return LineResults(**base)


@pytest.mark.parametrize(
    ("updated", "inputs_at", "status", "missing", "stale"),
    [
        ({"calcium_events": 200.0, "miniscope_sources": 150.0}, 100.0, "ok", "", ""),
        (
            {"calcium_events": 200.0, "miniscope_sources": 50.0},
            100.0,
            "stale",
            "",
            "miniscope_sources",
        ),
        ({"calcium_events": 200.0}, 100.0, "partial", "miniscope_sources", ""),
        ({}, 100.0, "missing", "calcium_events;miniscope_sources", ""),
        ({"calcium_events": 200.0}, None, "missing", "miniscope_sources", ""),
    ],
)
def test_status(updated, inputs_at, status, missing, stale) -> None:
    got = line_status(_results(updated_at=updated, inputs_at=inputs_at))
    assert (got["status"], got["missing_results"], got["stale_results"]) == (status, missing, stale)
    assert bool(got["note"]) == (status != "ok")


def test_refused_catalog_row_is_listed_invalid_with_its_reason() -> None:
    problem = RowProblem("experiments.csv", 4, 3, "rat weight (kg)", "'heavy' is not a number")
    row = line_row(Experiment(3, 4, animal_id="R", problems=(problem,)), None)
    assert row["status"] == "invalid" and "rat weight (kg)" in row["note"]
    assert line_row(Experiment(5, 6), None)["status"] == "missing"


def test_event_rates_per_period_on_the_ephys_clock() -> None:
    rng = np.random.default_rng(0)
    fps, n_frames, zero = 20.0, 2000, 30.0  # 100 s of frames starting 5 s after zero time
    frame_times = 5.0 + np.arange(n_frames) / fps
    # 4 sources: 2 Hz each in [20, 40) s, 0.5 Hz elsewhere
    rate = np.where((frame_times >= 20) & (frame_times < 40), 2.0, 0.5)
    fires = rng.random((4, n_frames)) < rate / fps
    comp, frame = np.nonzero(fires)
    events = pd.DataFrame({"component": comp, "frame": frame, "time_s": frame / fps})
    periods = LinePeriods(
        (
            Period("baseline", -60.0, 0.0),  # before the recording: no frames, no rate
            Period("high_slow_wave", 20.0, 40.0),
            Period("control", 60.0, 80.0),
            Period("control", 95.0, 130.0),  # ends after the recording: 10 s covered
        ),
        zero,
    )
    res = _results(
        periods=periods, n_sources=5, rejected_ids=[4], events=events, frame_times_s=frame_times
    )
    got = calcium_measures(res)
    assert got["n_sources_kept"] == 4 and got["event_clock"] == "ephys"
    assert got["period_s_control"] == pytest.approx(30.0)
    assert np.isnan(got["event_rate_hz_baseline"]) and got["period_s_baseline"] == 0.0
    in_high = fires[:, (frame_times >= 20) & (frame_times < 40)].sum()
    assert got["event_rate_hz_high_slow_wave"] == pytest.approx(in_high / (4 * 20.0))
    assert got["event_rate_hz_high_slow_wave"] == pytest.approx(2.0, rel=0.15)
    assert got["event_rate_hz_control"] == pytest.approx(0.5, rel=0.25)
    # without the ephys clock, the camera's: frame 0 at 0 s, minus zero time
    camera = calcium_measures(
        _results(periods=periods, n_sources=4, events=events, n_frames=n_frames, fps=fps)
    )
    assert camera["event_clock"] == "camera" and camera["period_s_all"] == pytest.approx(100.0)
    # the recording spans [-30, 70) s there: control covers only [60, 70)
    assert camera["period_s_control"] == pytest.approx(10.0)
    in_control = events["time_s"].between(90, 100, inclusive="left").sum()
    assert camera["event_rate_hz_control"] == pytest.approx(in_control / (4 * 10.0))


def test_band_power_per_period_uses_windows_centred_in_it() -> None:
    zero = 10.0
    centres = np.arange(0.0, 60.0, 1.0)  # ephys clock
    power = np.where((centres >= 20) & (centres < 30), 4e-12, 1e-12)[:, None] * [1.0, 2.0]
    masked = np.zeros(centres.size, bool)
    masked[25] = True
    power[25] = 1.0  # a masked window never counts
    periods = LinePeriods(
        (Period("high_slow_wave", 10.0, 20.0), Period("control", 30.0, 40.0)), zero
    )
    got = power_measures(
        _results(
            periods=periods,
            band_power={"power": power, "times_s": centres, "masked": masked},
            channels=["LFP", "EEG"],
            band_hz=[0.5, 4],
        )
    )
    assert band_label([0.5, 4]) == "0.5-4Hz"
    assert got["band_power_uV2_LFP_0.5-4Hz_high_slow_wave"] == pytest.approx(4.0)
    assert got["band_power_uV2_EEG_0.5-4Hz_high_slow_wave"] == pytest.approx(8.0)
    assert got["band_power_uV2_LFP_0.5-4Hz_control"] == pytest.approx(1.0)
    assert "band_power_uV2_LFP_0.5-4Hz_baseline" not in got


def test_frame_puts_catalog_and_status_first() -> None:
    rows = [
        line_row(
            Experiment(2, 3, animal_id="B"), _results(line=2, updated_at={"calcium_events": 1.0})
        ),
        line_row(Experiment(1, 2, animal_id="A"), None),
    ]
    frame = cohort_frame(rows)
    assert list(frame["line_number"]) == [1, 2]
    assert list(frame.columns[:2]) == ["line_number", "animal_id"]
    assert frame.columns.get_loc("status") < frame.columns.get_loc("note")


def test_unreadable_line_keeps_its_catalog_cells() -> None:
    from ace_assets.cohort.table import unreadable_row

    row = unreadable_row(Experiment(7, 8, animal_id="R7"), "JSONDecodeError: line 1")
    assert (row["line_number"], row["animal_id"], row["status"]) == (7, "R7", "unreadable")
    assert "JSONDecodeError" in row["note"]
