"""The cohort table names periods that stick out of a line's recording, with their column:
the length of a recording is known only once its results are read."""

from __future__ import annotations

import numpy as np

from ace_assets.catalog.periods import LinePeriods, Period
from ace_assets.cohort.table import LineResults, line_row, periods_outside

EXPECTED = ("ephys_results",)


def _ephys_only(periods: LinePeriods, seconds: float = 25.0) -> LineResults:
    """An ephys-only line: 5 s band-power windows every second over ``seconds`` of recording."""
    centres = np.arange(2.5, seconds - 2.5 + 1e-9, 1.0) + periods.zero_time_s
    return LineResults(
        line=6,
        expected=EXPECTED,
        updated_at={"ephys_results": 200.0},
        inputs_at=100.0,
        periods=periods,
        band_power={
            "power": np.full((centres.size, 1), 1e-9),
            "times_s": centres,
            "masked": np.zeros(centres.size, bool),
        },
        band_window_s=5.0,
        band_hz=[5, 9],
        channels=["LFP"],
    )


def test_a_period_past_the_end_of_an_ephys_recording_is_named_with_its_column() -> None:
    periods = LinePeriods(
        (Period("high_slow_wave", 0.0, 10.0), Period("control", 20.0, 40.0)), zero_time_s=0.0
    )
    row = line_row(None, _ephys_only(periods))
    assert row["status"] == "ok"  # the line's results are fine: the catalog cell is not
    said = row["periods_outside_recording"]
    assert said.startswith("'control periods (s)'") and "[20, 40]" in said
    assert "partly outside" in said and "high slow wave" not in said
    assert said in row["note"]
    # the measured part of the period is what was recorded
    assert np.isfinite(row["band_power_uV2_LFP_5-9Hz_control"])


def test_periods_inside_the_recording_say_nothing() -> None:
    periods = LinePeriods(
        (Period("high_slow_wave", 0.0, 10.0), Period("control", 10.0, 25.0)), zero_time_s=3.0
    )
    results = _ephys_only(periods, seconds=28.0)  # ephys clock [0, 28): session [-3, 25)
    assert periods_outside(results) == []
    assert "periods_outside_recording" not in line_row(None, results)


def test_a_movie_span_counts_when_there_is_no_ephys() -> None:
    periods = LinePeriods((Period("baseline", -120.0, 0.0),), zero_time_s=30.0)
    results = LineResults(line=2, periods=periods, n_frames=600, fps=30.0)  # camera: [-30, -10)
    (said,) = periods_outside(results)
    assert said.startswith("'baseline period (min)'") and "partly outside" in said
