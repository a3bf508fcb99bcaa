"""Periods a line cannot mean are refused where they are parsed, naming file, row, line and
column; periods sticking out of the recording are named with their column."""

from __future__ import annotations

import pytest

from ace_assets.catalog.periods import (
    LinePeriods,
    Period,
    beyond_recording,
    line_periods,
    period_rows,
)
from ace_assets.errors import AceInputError
from ace_assets_tests.helpers.periods import CONTROL, HIGH, period_values


def _refused(**cells: object) -> AceInputError:
    with pytest.raises(AceInputError) as info:
        line_periods(period_values(**cells), file="analysis_parameters.csv", row=4, line=3)
    err = info.value
    assert (err.file, err.row, err.line) == ("analysis_parameters.csv", 4, 3)
    return err


def test_an_interval_before_zero_time_is_refused_with_the_baseline_as_hint() -> None:
    err = _refused(**{HIGH: [[5.0, 10.0], [-20.0, -5.0]]})
    assert err.column == HIGH
    assert "[-20.0, -5.0]" in str(err) and "baseline period (min)" in str(err)


def test_high_and_control_periods_sharing_time_are_refused() -> None:
    err = _refused(**{HIGH: [[0.0, 10.0], [30.0, 40.0]], CONTROL: [[20.0, 35.0]]})
    assert err.column == CONTROL
    assert "[20, 35]" in str(err) and "[30, 40]" in str(err) and HIGH in str(err)


@pytest.mark.parametrize(
    ("cells", "column", "said"),
    [
        ({CONTROL: [[10.0, 5.0]]}, CONTROL, "start < end"),  # reversed
        ({HIGH: [[1.0, 2.0, 3.0]]}, HIGH, "[[start, end], ...]"),  # malformed
        ({HIGH: [[0.0, float("nan")]]}, HIGH, "finite"),
    ],
)
def test_reversed_and_malformed_intervals_are_refused(cells, column, said) -> None:
    err = _refused(**cells)
    assert err.column == column and said in str(err)


def test_touching_periods_and_overlaps_within_one_column_are_accepted() -> None:
    periods = line_periods(period_values(**{HIGH: [[0, 10], [5, 12]], CONTROL: [[12, 20]]}))
    assert periods.duration_s("high_slow_wave") == 12.0
    assert periods.duration_s("control") == 8.0


def test_beyond_recording_names_each_column_sticking_out() -> None:
    periods = LinePeriods(
        (
            Period("baseline", -60.0, 0.0),
            Period("high_slow_wave", 5.0, 15.0),
            Period("control", 18.0, 30.0),
            Period("control", 40.0, 50.0),
        ),
        zero_time_s=10.0,
    )
    said = beyond_recording(periods, (-10.0, 25.0))
    assert len(said) == 3  # the high slow-wave interval is inside
    baseline, partly, wholly = said
    assert baseline.startswith("'baseline period (min)'") and "partly outside" in baseline
    assert partly.startswith(f"'{CONTROL}'") and "[18, 30]" in partly and "partly" in partly
    assert wholly.startswith(f"'{CONTROL}'") and "wholly outside" in wholly
    assert beyond_recording(periods, (-60.0, 50.0)) == []


def test_period_rows_give_both_clocks() -> None:
    periods = line_periods(
        period_values(**{"zero time (s)": 100.0, "baseline period (min)": 1.0, CONTROL: [[0, 30]]})
    )
    rows = {r["period"]: r for r in period_rows(periods)}
    assert rows["baseline"]["column"] == "baseline period (min)"
    assert (rows["baseline"]["ephys_start_s"], rows["baseline"]["ephys_end_s"]) == (40.0, 100.0)
    assert rows["control"]["column"] == CONTROL
    assert (rows["control"]["start_s"], rows["control"]["ephys_end_s"]) == (0.0, 130.0)
    assert rows["control"]["duration_s"] == 30.0
