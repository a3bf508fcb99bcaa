"""A session split across Miniscope folders (``a;b``): one movie, pauses that are not drops,
each part aligned on its own TTL pulses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope
from ace_assets.demo.miniscope_writer import write_v3_session, write_v4_session
from ace_assets.errors import AceInputError
from ace_assets.io.miniscope import open_session
from ace_assets.multimodal.alignment import align_frames_to_ttl

START = dt.datetime(2022, 10, 31, 14, 42, 17)


def _part(root: Path, name: str, start: dt.datetime, seed: int, **kw) -> SyntheticMiniscope:
    synth = SyntheticMiniscope(
        MiniscopeSynthConfig(
            height=kw.pop("height", 40),
            width=48,
            n_frames=90,
            n_neurons=4,
            neuron_radius=2.0,
            seed=seed,
        )
    )
    write_v4_session(root / name, synth, frames_per_file=40, recording_start=start, **kw)
    return synth


@pytest.mark.parametrize("listed", [("a", "b"), ("b", "a")])
def test_parts_play_back_to_back_in_recording_order(tmp_path: Path, listed) -> None:
    first = _part(tmp_path, "a", START, 1, dropped_frames=[20, 21])
    second = _part(tmp_path, "b", START + dt.timedelta(minutes=72, seconds=3), 2)
    rec = open_session([tmp_path / name for name in listed])
    assert rec.n_frames == 88 + 90 and len(rec.files) == 3 + 3
    assert [Path(s.folder).parent.name for s in rec.segments] == ["a", "b"]  # by start time
    assert [s.first_frame for s in rec.segments] == [0, 88]
    # the pause is the recordings' own start difference, and never counted as dropped frames
    gap_ms = rec.segments[1].start_ms - rec.segments[0].start_ms
    assert gap_ms == pytest.approx((72 * 60 + 3) * 1000, abs=50)
    assert rec.dropped.estimated_missing == 2 and rec.dropped.long_interval_frames.tolist() == [20]
    assert np.all(np.diff(rec.timestamps_ms) > 0) and np.all(np.diff(rec.frame_numbers) > 0)
    # frames across the boundary are the last of the first part, then the first of the next
    np.testing.assert_array_equal(rec.read(87, 89)[0], first.frames(89, 90)[0])
    np.testing.assert_array_equal(rec.read(87, 89)[1], second.frames(0, 1)[0])
    assert rec.summary()["segments"][1]["start_source"] == "recordingStartTime"


def test_parts_that_differ_or_overlap_are_refused_naming_the_folders(tmp_path: Path) -> None:
    _part(tmp_path, "a", START, 1)
    _part(tmp_path, "small", START + dt.timedelta(hours=1), 2, height=32)
    with pytest.raises(AceInputError) as err:
        open_session([tmp_path / "a", tmp_path / "small"])
    assert "differ in frame size" in str(err.value) and "small" in str(err.value)
    _part(tmp_path, "early", START + dt.timedelta(seconds=1), 3)
    with pytest.raises(AceInputError) as err:
        open_session([tmp_path / "a", tmp_path / "early"])
    assert "overlap in time" in str(err.value) and "calcium imaging directory" in str(err.value)


def test_v3_parts_without_start_times_follow_each_other_and_say_so(tmp_path: Path) -> None:
    for name, seed in (("a", 1), ("b", 2)):
        synth = SyntheticMiniscope(
            MiniscopeSynthConfig(
                height=40, width=48, n_frames=60, n_neurons=4, neuron_radius=2.0, seed=seed
            )
        )
        write_v3_session(tmp_path / name, synth, frames_per_file=30)
    rec = open_session([tmp_path / "a", tmp_path / "b"], v3_cam_num=1)
    assert rec.n_frames == 120 and rec.dropped.estimated_missing == 0
    assert any("pause before it is unknown" in issue for issue in rec.issues)


def _split_recording(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """True ephys times and camera stamps of two parts 40 min apart; each camera clock restarts
    at 0 and the recorded start of the second is 0.8 s off the truth (a PC clock)."""
    n1, n2 = 600, 450
    t1 = 5.0 + np.arange(n1) / 30.0 * (1 + 4e-5)
    t2 = 2405.0 + np.arange(n2) / 30.0 * (1 + 4e-5)
    cam1 = np.round(np.arange(n1) * 1000 / 30 + rng.uniform(-0.4, 0.4, n1))
    cam2 = np.round(np.arange(n2) * 1000 / 30 + rng.uniform(-0.4, 0.4, n2))
    cam = np.r_[cam1, cam2 + (2405.0 - 5.0 + 0.8) * 1000]
    return np.r_[t1, t2], cam, [0, n1]


def test_each_part_is_aligned_on_its_own_pulses() -> None:
    true_t, cam, starts = _split_recording(np.random.default_rng(4))
    ttl = np.delete(true_t, [100, 700])  # one lost pulse in each part
    # one camera clock over both parts: the PC clock's error breaks the pulse matching
    with pytest.raises(AceInputError, match="matches no run of camera frame intervals"):
        align_frames_to_ttl(ttl, true_t.size, cam, [], 0.0)
    times, report = align_frames_to_ttl(ttl, true_t.size, cam, [], 0.0, segment_starts=starts)
    assert report.method == "repaired" and report.repaired_frames == [100, 700]
    assert np.abs(times - true_t).max() < 2e-3
    assert report.max_frame_residual_ms < report.tolerance_ms


def test_a_split_movie_without_a_pause_in_the_pulses_is_refused() -> None:
    rng = np.random.default_rng(5)
    true_t = 5.0 + np.arange(900) / 30.0
    cam = np.round(np.arange(900) * 1000 / 30 + rng.uniform(-0.4, 0.4, 900))
    with pytest.raises(AceInputError) as err:
        align_frames_to_ttl(true_t, 900, cam, [], 0.0, segment_starts=[0, 500])
    assert "no pause between them" in str(err.value)
    assert "calcium imaging directory" in str(err.value)
