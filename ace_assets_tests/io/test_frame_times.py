"""Camera timestamp diagnosis: order faults named as what they are, repaired or refused."""

from __future__ import annotations

import numpy as np
import pytest

from ace_assets.catalog.parameter_specs import SPECS
from ace_assets.errors import AceInputError
from ace_assets.io.frame_times import (
    FrameTimingParams,
    diagnose_timestamps,
    resolve_timestamps,
)

FPS = 30.0
N = 600


def _clock(n: int = N, seed: int = 0) -> np.ndarray:
    """V4-like times: whole milliseconds at 30 fps with sub-ms jitter before rounding."""
    rng = np.random.default_rng(seed)
    return np.round(250.0 + np.arange(n) * 1000 / FPS + rng.uniform(-0.4, 0.4, n))


def _numbers(n: int = N) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


def test_clean_clock_has_no_faults() -> None:
    report = diagnose_timestamps(_numbers(), _clock())
    assert not report.any_faults
    assert report.dropped.estimated_missing == 0
    assert report.nominal_interval_ms == pytest.approx(1000 / FPS, abs=1)


def test_clock_step_back_of_5s_is_one_backward_jump_not_dropped_frames() -> None:
    truth = _clock()
    times = truth.copy()
    times[300:] -= 5000.0
    report = diagnose_timestamps(_numbers(), times)
    assert report.dropped.estimated_missing == 0
    assert report.count("backward") == 1 and report.frames("backward") == [300]
    assert report.count("duplicated") == report.count("swapped") == 0
    repaired = report.repaired_times_ms
    assert np.all(np.diff(repaired) > 0)
    # the step is taken out: every interval is a frame interval again
    assert np.abs(np.diff(repaired) - 1000 / FPS).max() < 2.0


def test_one_time_5s_back_is_a_backward_jump_and_is_re_timed() -> None:
    truth = _clock()
    times = truth.copy()
    times[300] -= 5000.0  # the next interval reads +5 s: formerly ~150 "dropped" frames
    report = diagnose_timestamps(_numbers(), times)
    assert report.dropped.estimated_missing == 0
    assert report.frames("backward") == [300] and report.repaired_frames == [300]
    assert np.abs(report.repaired_times_ms - truth).max() <= 1.0


def test_one_time_run_ahead_is_reported_where_the_clock_comes_back() -> None:
    truth = _clock()
    times = truth.copy()
    times[300] += 5000.0
    report = diagnose_timestamps(_numbers(), times)
    assert report.dropped.estimated_missing == 0
    assert report.frames("backward") == [301] and report.repaired_frames == [300]
    assert np.abs(report.repaired_times_ms - truth).max() <= 1.0


def test_duplicated_times_and_rows() -> None:
    truth = _clock()
    times = truth.copy()
    times[120] = times[119]
    times[400:403] = times[399]
    report = diagnose_timestamps(_numbers(), times)
    assert report.count("duplicated") == 2
    assert report.frames("duplicated") == [120, 400, 401, 402]
    assert report.count("backward") == 0 and report.dropped.estimated_missing == 0
    assert np.abs(report.repaired_times_ms - truth).max() <= 1.0
    # a whole row written twice over the next one: its frame number repeats as well
    numbers = _numbers()
    numbers[200] = numbers[199]
    times = truth.copy()
    times[200] = times[199]
    report = diagnose_timestamps(numbers, times)
    assert report.frames("duplicated") == [200]
    assert report.frames("frame_number_order") == [200]


def test_two_row_swap_is_detected_with_both_frames_and_repaired() -> None:
    truth = _clock()
    times, numbers = truth.copy(), _numbers()
    times[[250, 251]] = times[[251, 250]]
    numbers[[250, 251]] = numbers[[251, 250]]
    report = diagnose_timestamps(numbers, times)
    assert report.count("swapped") == 1 and report.frames("swapped") == [250, 251]
    assert report.count("frame_number_order") == 0  # the whole rows swapped: one fault
    np.testing.assert_array_equal(report.repaired_times_ms, truth)
    np.testing.assert_array_equal(report.repaired_frame_numbers, _numbers())
    assert report.dropped.estimated_missing == 0
    # rows three apart
    times = truth.copy()
    times[[100, 103]] = times[[103, 100]]
    report = diagnose_timestamps(_numbers(), times)
    assert report.frames("swapped") == [100, 103]
    np.testing.assert_array_equal(report.repaired_times_ms, truth)


def test_frame_number_column_out_of_order() -> None:
    numbers = _numbers()
    numbers[[40, 41]] = numbers[[41, 40]]
    report = diagnose_timestamps(numbers, _clock())
    assert report.frames("frame_number_order") == [40, 41]
    np.testing.assert_array_equal(report.repaired_frame_numbers, _numbers())
    # the counter's gap-and-back is not read as a dropped frame
    assert report.dropped.estimated_missing == 0


def test_real_drops_are_still_counted_exactly_beside_faults() -> None:
    full = _clock(N + 7)
    lost = [50, 51, 52, 300, 451, 452, 453]
    times = np.delete(full, lost)
    report = diagnose_timestamps(_numbers(times.size), times)
    assert not report.any_faults
    assert report.dropped.estimated_missing == 7
    assert report.dropped.long_interval_frames.tolist() == [50, 297, 447]
    # the same drops, plus a swap (one row of it right after a drop), a step back and a
    # time 10 s back elsewhere: still exactly 7, and the drops after the same frames
    truth = times.copy()
    times[[100, 101]] = times[[101, 100]]
    times[[297, 298]] = times[[298, 297]]
    times[500:] -= 5000.0
    times[550] -= 10_000.0
    report = diagnose_timestamps(_numbers(times.size), times)
    assert report.dropped.estimated_missing == 7
    assert report.dropped.long_interval_frames.tolist() == [50, 297, 447]
    assert report.frames("swapped") == [100, 101, 297, 298]
    assert report.frames("backward") == [500, 550]
    np.testing.assert_array_equal(report.repaired_times_ms[:500], truth[:500])


def test_fail_mode_names_the_file_frames_and_parameter() -> None:
    times = _clock()
    times[[250, 251]] = times[[251, 250]]
    times[400] = times[399]
    with pytest.raises(AceInputError) as err:
        resolve_timestamps(_numbers(), times, policy="fail", file="rec/timeStamps.csv")
    text = str(err.value)
    assert "rec/timeStamps.csv" in text and "Time Stamp (ms)" in text
    assert "[250, 251]" in text and "[400]" in text
    assert "ops.analysis_parameters.config.overrides.timestamp_faults" in text
    assert "33." in text  # what was expected: the frame interval
    # repair mode returns the repaired series and lists the repairs
    report = resolve_timestamps(_numbers(), times, policy="repair")
    assert {r["kind"] for r in report.summary()["repairs"]} == {"swapped", "duplicated"}
    assert report.summary()["swapped"] == {"count": 1, "frames": [250, 251]}
    # a clean table never fails
    assert not resolve_timestamps(_numbers(), _clock(), policy="fail").any_faults
    with pytest.raises(AceInputError, match="timestamp_faults"):
        resolve_timestamps(_numbers(), times, policy="ignore")


def test_trailing_rows_without_times_are_left_alone() -> None:
    times = _clock()
    times[-5:] = np.nan
    times[[10, 11]] = times[[11, 10]]
    report = diagnose_timestamps(_numbers(), times)
    assert report.frames("swapped") == [10, 11]
    assert np.isnan(report.repaired_times_ms[-5:]).all()


def test_parameters_come_from_the_specs() -> None:
    params = FrameTimingParams.from_mapping({})
    assert params.timestamp_faults == SPECS["timestamp_faults"].default == "repair"
    assert FrameTimingParams.from_mapping({"timestamp_faults": "fail"}).timestamp_faults == "fail"
    with pytest.raises(AceInputError, match="timestamp_faults"):
        FrameTimingParams.from_mapping({"timestamp_faults": "ignore"})
    with pytest.raises(AceInputError, match="alignment_tolerance_ms"):
        FrameTimingParams.from_mapping({"alignment_tolerance_ms": -1})


def test_open_miniscope_reports_repairs_or_refuses(tmp_path) -> None:
    """Through the V4 reader: a time 5 s back and a swap beside real (numbered) drops."""
    from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope
    from ace_assets.demo.miniscope_writer import write_v4_session
    from ace_assets.io.miniscope import open_miniscope

    synth = SyntheticMiniscope(
        MiniscopeSynthConfig(height=24, width=32, n_frames=90, n_neurons=2, neuron_radius=2.0)
    )
    camera = np.arange(90) / synth.fps
    camera[60] -= 5.0
    camera[[20, 21]] = camera[[21, 20]]
    write_v4_session(
        tmp_path,
        synth,
        frames_per_file=30,
        frame_times_s=camera,
        dropped_frames=[40, 41],
        number_dropped_frames=True,
    )
    rec = open_miniscope(tmp_path)
    assert rec.dropped.estimated_missing == 2  # the drops, not the 5 s, not the swap
    assert rec.dropped.missing_frame_numbers.tolist() == [40, 41]
    assert rec.timing is not None
    assert rec.timing.frames("swapped") == [20, 21]
    assert rec.timing.frames("backward") == [58]  # frame 60 of the source, after 2 drops
    assert np.all(np.diff(rec.timestamps_ms) > 0)
    assert rec.summary()["timestamps"]["backward"] == {"count": 1, "frames": [58]}
    with pytest.raises(AceInputError) as err:
        open_miniscope(tmp_path, timestamp_faults="fail")
    assert "timeStamps.csv" in str(err.value) and "[20, 21]" in str(err.value)
