"""Periods parsed once from the catalog, and mapped onto the frame and ephys clocks."""

from __future__ import annotations

import numpy as np
import pytest

from ace_assets.catalog.parameters import read_parameter_table, resolve_parameters
from ace_assets.catalog.periods import (
    LinePeriods,
    Period,
    frame_mask,
    line_periods,
    merge_intervals,
    sample_mask,
    sample_ranges,
    to_ephys_clock,
)
from ace_assets.errors import AceInputError
from ace_assets_tests.helpers.periods import CONTROL, HIGH, period_values


def test_periods_from_a_catalog_row(tmp_path) -> None:
    csv = tmp_path / "analysis_parameters.csv"
    csv.write_text(
        "line number,zero time (s),baseline period (min),"
        "periods of high slow wave power (s),control periods (s)\n"
        '4,100,2,"[[30, 40], [10, 20], [15, 25]]","[5, 10]"\n'
    )
    params = resolve_parameters(read_parameter_table(csv), 4)
    periods = line_periods(params, file=csv, line=4)
    assert periods.zero_time_s == 100.0
    assert periods.names == ("baseline", "high_slow_wave", "control")
    assert periods.named("baseline") == (Period("baseline", -120.0, 0.0),)
    assert [(p.start_s, p.end_s) for p in periods.named("high_slow_wave")] == [
        (30.0, 40.0),
        (10.0, 20.0),
        (15.0, 25.0),
    ]
    np.testing.assert_array_equal(periods.intervals("high_slow_wave"), [[10, 25], [30, 40]])
    assert periods.duration_s("high_slow_wave") == 25.0
    assert periods.duration_s("control") == 5.0


def test_no_periods_by_default() -> None:
    periods = line_periods(resolve_parameters(None, 1))
    assert periods.names == () and periods.intervals("control").shape == (0, 2)


@pytest.mark.parametrize(
    ("cells", "column", "said"),
    [
        ({HIGH: [[5.0, 1.0]]}, HIGH, "start < end"),
        ({CONTROL: [[0.0, float("inf")]]}, CONTROL, "finite"),
        ({CONTROL: [[1.0, 1.0]]}, CONTROL, "start < end"),
        ({"baseline period (min)": -3.0}, "baseline period (min)", "positive number of minutes"),
        ({"zero time (s)": "soon"}, "zero time (s)", "number of seconds"),
    ],
)
def test_bad_periods_name_file_row_line_and_column(cells, column, said) -> None:
    with pytest.raises(AceInputError) as info:
        line_periods(period_values(**cells), file="analysis_parameters.csv", row=7, line=3)
    err = info.value
    assert (err.file, err.row, err.line, err.column) == ("analysis_parameters.csv", 7, 3, column)
    assert said in str(err)


def test_frame_clock_mapping_is_half_open() -> None:
    periods = line_periods(period_values(**{HIGH: [[1.0, 2.0]], CONTROL: [[2.0, 3.0]]}))
    frames = np.arange(0, 4, 0.5)  # 0, 0.5, ..., 3.5 s on the session clock
    high = frame_mask(periods, frames, "high_slow_wave")
    control = frame_mask(periods, frames, "control")
    np.testing.assert_array_equal(np.flatnonzero(high), [2, 3])
    np.testing.assert_array_equal(np.flatnonzero(control), [4, 5])
    assert not (high & control).any()  # touching periods share no frame


def test_ephys_clock_mapping_adds_zero_time() -> None:
    zero = 100.0
    periods = line_periods(period_values(**{"zero time (s)": zero, "baseline period (min)": 0.5}))
    fs = 10.0
    samples = np.arange(0, 200, 1 / fs)  # ephys clock: seconds from the first sample's origin
    mask = sample_mask(periods, samples, name="baseline")
    inside = samples[mask]
    assert inside.min() == pytest.approx(70.0) and inside.max() == pytest.approx(99.9)
    assert mask.sum() == 300
    ((lo, hi),) = sample_ranges(periods, samples, name="baseline")
    np.testing.assert_array_equal(np.flatnonzero(mask), np.arange(lo, hi))
    assert to_ephys_clock(-30.0, zero) == 70.0
    # bare periods need the zero time said explicitly
    bare = (Period("control", 0.0, 1.0),)
    with pytest.raises(TypeError):
        sample_mask(bare, samples)
    assert sample_mask(bare, samples, zero_time_s=zero).sum() == 10


def test_same_period_same_frames_and_samples() -> None:
    """A frame and a sample at the same instant fall in the same period."""
    zero = 12.5
    periods = LinePeriods((Period("control", 3.0, 7.0),), zero)
    t_session = np.linspace(0, 10, 101)
    np.testing.assert_array_equal(
        frame_mask(periods, t_session, "control"),
        sample_mask(periods, to_ephys_clock(t_session, zero), name="control"),
    )


def test_merge_intervals_shapes() -> None:
    assert merge_intervals(None).shape == (0, 2)
    np.testing.assert_array_equal(merge_intervals([3, 4]), [[3, 4]])
    with pytest.raises(ValueError, match=r"\[start, end\]"):
        merge_intervals([1, 2, 3])
    with pytest.raises(KeyError):
        LinePeriods(()).named("sleep")
