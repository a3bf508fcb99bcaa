"""Corrupted frames: the screen finds each kind and nothing else; repair interpolates them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ace_assets.demo.families import family_member
from ace_assets.demo.miniscope_synth import SyntheticMiniscope
from ace_assets.miniscope.chunks import ArraySink
from ace_assets.miniscope.corrupt_frames import (
    CorruptFrames,
    FrameScreen,
    classify_frames,
    clean_means,
    outlier_rows,
    repaired_blocks,
)
from ace_assets.miniscope.denoise import DenoiseParams, denoise_movie

H, W, T = 48, 64, 60


def screened(movie: np.ndarray, decode_errors: dict | None = None) -> CorruptFrames:
    screen = FrameScreen(len(movie), movie.shape[1:])
    means = movie.reshape(len(movie), -1).mean(1)
    for t, frame in enumerate(movie):
        screen.push(t, frame, float(means[t]))
    return classify_frames(screen, means, decode_errors)


def quiet_movie(seed: int = 0) -> np.ndarray:
    """Textured background, sensor noise, a cell that switches on and stays on, flicker."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    scene = 70 + 30 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    cell = 40 * np.exp(-((yy - 20) ** 2 + (xx - 30) ** 2) / (2 * 3.0**2))
    gain = 1 + 0.1 * rng.standard_normal(T)
    frames = [
        gain[t] * (scene + (cell if t >= 30 else 0)) + rng.normal(0, 3, (H, W)) for t in range(T)
    ]
    frames[45] = frames[45] * 1.4  # a one-frame brightness jump (the whole frame): flicker
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def test_ordinary_frames_are_not_flagged() -> None:
    assert len(screened(quiet_movie())) == 0


def test_each_kind_found() -> None:
    movie = quiet_movie(1)
    rng = np.random.default_rng(2)
    movie[5] = 0  # black
    movie[12] = 255  # white
    movie[20] = movie[19]  # repeated
    movie[33, 10:22] = rng.integers(0, 256, (12, W))  # garbage rows
    movie[40, 30:44] = np.roll(movie[40, 30:44], 20, axis=1)  # torn rows
    found = screened(movie, {50: {"file": "3.avi", "file_frame": 2}})
    assert dict(zip(found.frames.tolist(), found.kinds.tolist(), strict=True)) == {
        5: "black",
        12: "white",
        20: "duplicate",
        33: "rows",
        40: "rows",
        50: "decode",
    }
    r33, r40 = found.rows_of(33), found.rows_of(40)
    assert r33 is not None and r33[0] <= 10 and r33[1] >= 22 and r33[1] - r33[0] <= 16
    assert r40 is not None and r40[0] <= 30 and r40[1] >= 40
    assert found.rows_of(5) is None
    assert found.counts() == {"decode": 1, "black": 1, "white": 1, "duplicate": 1, "rows": 2}
    assert found.decode_errors == [{"frame": 50, "file": "3.avi", "file_frame": 2}]
    assert found.as_dict()["corrupted_fraction"] == pytest.approx(6 / T)


@pytest.mark.parametrize("name", ["quiet_flat_320", "bands19_240x300", "wireless_200"])
def test_strong_flicker_is_not_corruption(name: str) -> None:
    cfg = replace(family_member(name, n_frames=200), flicker_sd=0.15, seed=11)
    syn = SyntheticMiniscope(cfg)
    found = screened(syn.frames(0, cfg.n_frames))
    assert found.frames.tolist() == syn.corrupt_frames.tolist()


def test_outlier_rows_needs_a_block_and_grows_it() -> None:
    ratio = np.ones(40)
    assert outlier_rows(ratio, 2.0) is None
    ratio[10] = 5.0
    assert outlier_rows(ratio, 2.0) is None  # one row is not a block
    ratio[11:14] = [3.0, 1.4, 3.0]
    ratio[9] = 1.3
    assert outlier_rows(ratio, 2.0) == (8, 15)  # grown over rows above 1.25, plus one


def test_clean_means_interpolates_corrupted() -> None:
    means = np.array([10.0, 11.0, 250.0, 13.0, 0.0, 0.0, 16.0])
    corrupt = CorruptFrames(7, np.array([2, 4, 5]), np.array(["white", "black", "black"]))
    np.testing.assert_allclose(clean_means(means, corrupt), [10, 11, 12, 13, 14, 15, 16])


def test_repair_across_block_edges_and_at_the_ends() -> None:
    n = 23
    movie = np.stack([np.full((4, 5), 10.0 * t, np.float32) for t in range(n)])
    frames = np.array([0, 1, 7, 8, 9, 12, 15, 22])
    kinds = np.array(["black"] * 5 + ["rows", "white", "white"])
    rows = np.full((8, 2), -1)
    rows[5] = (1, 3)
    corrupt = CorruptFrames(n, frames, kinds, rows)
    damaged = movie.copy()
    damaged[frames[frames != 12]] = 999.0
    damaged[12, 1:3] = 999.0  # only its bad rows
    expected = movie.copy()
    expected[[0, 1]] = movie[2]  # the start: held from the first intact frame
    expected[22] = movie[21]  # the end: held from the last
    for chunk in (1, 4, 8, 100):
        blocks = ((s, damaged[s : s + chunk]) for s in range(0, n, chunk))
        parts = list(repaired_blocks(blocks, corrupt))
        starts = [s for s, _ in parts]
        assert starts == sorted(starts) and starts[0] == 0
        out = np.concatenate([b for _, b in parts])
        assert out.shape == movie.shape
        np.testing.assert_allclose(out, expected, err_msg=f"chunk {chunk}")
    # a rows frame keeps its intact rows
    damaged[12] = movie[12] + 1.0
    damaged[12, 1:3] = 999.0
    out = np.concatenate([b for _, b in repaired_blocks([(0, damaged)], corrupt)])
    np.testing.assert_allclose(out[12, [0, 3]], movie[12, [0, 3]] + 1.0)
    np.testing.assert_allclose(out[12, 1:3], movie[12, 1:3])


def test_long_runs_hold_the_last_intact_frame() -> None:
    n = 30
    movie = np.stack([np.full((3, 3), float(t), np.float32) for t in range(n)])
    frames = np.arange(5, 25)
    corrupt = CorruptFrames(n, frames, np.array(["decode"] * len(frames)))
    out = np.concatenate([b for _, b in repaired_blocks([(0, movie)], corrupt, max_gap=8)])
    assert out.shape == movie.shape
    assert (out[5:12] == 4.0).all()  # held: the next intact frame is too far to wait for
    np.testing.assert_array_equal(out[25:], movie[25:])


def test_denoise_repairs_and_names_undecodable_frames() -> None:
    """A source reporting decode errors (as MiniscopeRecording does) gets them repaired."""
    syn = SyntheticMiniscope(family_member("wireless_200", n_frames=120))
    raw = syn.frames(0, 120)
    raw[60] = 0

    class Recording:
        decode_errors = {60: {"file": "0.avi", "file_frame": 60}}

        def iter_chunks(self, chunk_frames: int = 16):
            return ((s, raw[s : s + chunk_frames]) for s in range(0, 120, chunk_frames))

    shape = (syn.height, syn.width)
    sink = ArraySink((120, *shape), np.uint8)
    report = denoise_movie(Recording(), 120, shape, syn.fps, None, sink)
    assert 60 in report.corrupted_frames
    assert report.corrupted_kinds[report.corrupted_frames.index(60)] == "decode"
    assert report.decode_errors == [{"frame": 60, "file": "0.avi", "file_frame": 60}]
    neighbours = sink.array[[59, 61]].astype(np.float32).mean(0)
    assert np.abs(sink.array[60] - neighbours).mean() < 6.0  # not black any more
    # repair switched off: reported, left as it was
    kept = ArraySink((120, *shape), np.uint8)
    off = DenoiseParams(repair_corrupted_frames=False)
    report = denoise_movie(Recording(), 120, shape, syn.fps, off, kept)
    assert 60 in report.corrupted_frames and not kept.array[60].any()
