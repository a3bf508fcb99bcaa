"""Miniscope V4/V3 folder reader: order, chunking, timing, and every bad-input case."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ace_assets.catalog.parameter_specs import SPECS
from ace_assets.errors import AceInputError
from ace_assets.io.miniscope import open_miniscope, parse_frame_rate

H, W = 24, 32


def frame_for(index: int) -> np.ndarray:
    """A frame whose content identifies its global index."""
    yy, xx = np.mgrid[:H, :W]
    return ((index * 7 + yy + 2 * xx) % 256).astype(np.uint8)


def write_avi(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> None:
    h, w = frames[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (w, h), False)
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()


def make_v4(
    root: Path,
    n_files: int = 11,
    per_file: int = 3,
    *,
    frame_numbers: list[int] | None = None,
    times: list[float] | None = None,
    meta: dict | None = None,
) -> Path:
    session = root / "session"
    scope = session / "Miniscope"
    scope.mkdir(parents=True)
    n = n_files * per_file
    for i in range(n_files):
        write_avi(scope / f"{i}.avi", [frame_for(i * per_file + j) for j in range(per_file)])
    meta = (
        meta
        if meta is not None
        else {
            "ROI": {"height": H, "width": W, "leftEdge": 0, "topEdge": 0},
            "frameRate": "30FPS",
            "framesPerFile": per_file,
            "deviceType": "Miniscope_V4_BNO",
        }
    )
    (scope / "metaData.json").write_text(json.dumps(meta))
    frame_numbers = frame_numbers if frame_numbers is not None else list(range(n))
    times = times if times is not None else [1000.0 + 33.3 * i for i in range(n)]
    rows = ["Frame Number,Time Stamp (ms),Buffer Index"]
    rows += [f"{fn},{t:.1f},0" for fn, t in zip(frame_numbers, times, strict=True)]
    (scope / "timeStamps.csv").write_text("\n".join(rows) + "\n")
    return session


def test_v4_numeric_file_order_and_metadata(tmp_path: Path) -> None:
    rec = open_miniscope(make_v4(tmp_path))
    assert rec.version == "V4"
    assert [p.name for p in rec.files][-3:] == ["8.avi", "9.avi", "10.avi"]
    assert rec.frames_per_file == (3,) * 11
    assert rec.n_frames == 33 and rec.frame_shape == (H, W) and rec.frame_rate == 30.0
    movie = rec.read()
    assert movie.dtype == np.uint8 and movie.shape == (33, H, W)
    for i in range(33):
        np.testing.assert_array_equal(movie[i], frame_for(i))
    assert not rec.dropped.any and rec.issues == []
    assert rec.timestamps_ms.shape == (33,)


def test_chunk_iteration_equals_frames(tmp_path: Path) -> None:
    rec = open_miniscope(make_v4(tmp_path, n_files=4, per_file=5))
    expected = np.stack([frame_for(i) for i in range(20)])
    for chunk in (1, 4, 7, 100):
        for prefetch in (False, True):
            starts, blocks = zip(*rec.iter_chunks(chunk, prefetch=prefetch), strict=True)
            assert list(starts) == list(range(0, 20, chunk))
            np.testing.assert_array_equal(np.concatenate(blocks), expected)
    np.testing.assert_array_equal(rec.read(3, 12), expected[3:12])
    parts = list(rec.iter_chunks(4, start=6, stop=17))
    assert [s for s, _ in parts] == [6, 10, 14]
    np.testing.assert_array_equal(np.concatenate([b for _, b in parts]), expected[6:17])


def test_session_folder_or_miniscope_subfolder(tmp_path: Path) -> None:
    session = make_v4(tmp_path, n_files=2)
    assert open_miniscope(session).n_frames == open_miniscope(session / "Miniscope").n_frames


def test_dropped_frames_detected(tmp_path: Path) -> None:
    n = 12
    numbers = list(range(5)) + [x + 2 for x in range(5, n)]  # numbers 5 and 6 missing
    times = [33.0 * i for i in range(n)]
    times = times[:9] + [t + 100.0 for t in times[9:]]  # ~3 frames of silence before 9
    rec = open_miniscope(
        make_v4(tmp_path, n_files=4, per_file=3, frame_numbers=numbers, times=times)
    )
    assert rec.dropped.missing_frame_numbers.tolist() == [5, 6]
    assert rec.dropped.long_interval_frames.tolist() == [9]
    assert rec.dropped.estimated_missing == 3
    assert rec.summary()["dropped_frames"]["n_long_intervals"] == 1


def test_truncated_avi_names_file(tmp_path: Path) -> None:
    session = make_v4(tmp_path, n_files=3, per_file=40)
    bad = session / "Miniscope" / "1.avi"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(AceInputError) as err:
        open_miniscope(session)
    assert "1.avi" in str(err.value) and "truncated" in str(err.value)
    # Without the up-front check the run goes on: the frames that cannot be decoded come
    # out black and are named (file and frame), for the denoise stage to repair and count.
    rec = open_miniscope(session, verify=False)
    movie = np.concatenate([b for _, b in rec.iter_chunks(16)])
    assert movie.shape == (120, H, W)
    lost = sorted(rec.decode_errors)
    assert lost and lost == list(range(lost[0], 80)) and lost[0] > 40
    assert all(rec.decode_errors[t] == {"file": "1.avi", "file_frame": t - 40} for t in lost)
    assert not movie[lost].any()
    for t in [*range(lost[0]), *range(80, 120)]:
        np.testing.assert_array_equal(movie[t], frame_for(t))


def avi_chunks(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of each frame chunk in an AVI's movi list."""
    pos = data.find(b"movi") + 4
    chunks = []
    while pos < len(data) - 8:
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"idx1":
            break
        if cid == b"LIST":
            pos += 12
            continue
        chunks.append((pos + 8, size))
        pos += 8 + size + (size & 1)
    return chunks


def test_undecodable_frame_is_named_and_reading_goes_on(tmp_path: Path) -> None:
    """A frame the decoder rejects (a garbled MJPEG packet) does not end the run."""
    session = make_v4(tmp_path, n_files=2, per_file=8)
    bad = session / "Miniscope" / "1.avi"
    writer = cv2.VideoWriter(str(bad), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (W, H), False)
    for j in range(8):
        writer.write(frame_for(8 + j))
    writer.release()
    data = bytearray(bad.read_bytes())
    offset, size = avi_chunks(bytes(data))[5]
    data[offset : offset + size] = bytes(size)  # the JPEG of frame 5 is gone
    bad.write_bytes(bytes(data))
    rec = open_miniscope(session)
    movie = np.concatenate([b for _, b in rec.iter_chunks(5, prefetch=True)])
    assert rec.decode_errors == {13: {"file": "1.avi", "file_frame": 5}}
    assert not movie[13].any()
    for t in (12, 14, 15):  # its neighbours decode (MJPEG is lossy: close, not equal)
        assert np.abs(movie[t].astype(int) - frame_for(t)).mean() < 8


def test_unopenable_avi(tmp_path: Path) -> None:
    session = make_v4(tmp_path, n_files=2)
    (session / "Miniscope" / "0.avi").write_bytes(b"not a movie" * 50)
    with pytest.raises(AceInputError, match=r"0\.avi.*cannot open"):
        open_miniscope(session)


def test_metadata_missing_or_malformed(tmp_path: Path) -> None:
    session = make_v4(tmp_path, n_files=2)
    meta = session / "Miniscope" / "metaData.json"
    meta.write_text('{"frameRate": "30FPS",\n "ROI": {"width": 32,,}}')
    with pytest.raises(AceInputError) as err:
        open_miniscope(session)
    assert "metaData.json" in str(err.value) and "malformed JSON" in str(err.value)
    assert err.value.line == 2
    meta.write_text('{"frameRate": "fast"}')
    with pytest.raises(AceInputError, match="frameRate"):
        open_miniscope(session)
    meta.unlink()
    with pytest.raises(AceInputError, match="metaData.json missing"):
        open_miniscope(session)


def test_short_timestamp_table(tmp_path: Path) -> None:
    session = make_v4(
        tmp_path, n_files=2, per_file=3, frame_numbers=list(range(4)), times=[0, 33, 66, 99]
    )
    with pytest.raises(
        AceInputError, match=r"timeStamps\.csv.*4 timestamp rows for 6 frames"
    ) as err:
        open_miniscope(session)
    # the hint names a setting that exists, in the CSV and in the run config
    assert err.value.column == "timestamp_rows"
    assert "ops.analysis_parameters.config.overrides.timestamp_rows" in str(err.value)
    assert "timestamp_rows" in SPECS and "fit" in SPECS["timestamp_rows"].choices
    rec = open_miniscope(session, strict=False)  # timestamp_rows = fit
    assert rec.n_frames == 6
    np.testing.assert_allclose(rec.timestamps_ms, [0, 33, 66, 99, 132, 165])  # never NaN
    assert any("4 timestamp rows for 6 frames" in msg for msg in rec.issues)
    longer = make_v4(
        tmp_path / "long", n_files=1, per_file=3, frame_numbers=list(range(5)),
        times=[0, 33, 66, 99, 132],
    )  # fmt: skip
    rec = open_miniscope(longer, strict=False)
    np.testing.assert_allclose(rec.timestamps_ms, [0, 33, 66])
    assert any("the last 2 rows were ignored" in msg for msg in rec.issues)


def test_bad_timestamp_cell_names_line(tmp_path: Path) -> None:
    session = make_v4(tmp_path, n_files=1, per_file=3)
    ts = session / "Miniscope" / "timeStamps.csv"
    lines = ts.read_text().splitlines()
    lines[2] = "1,abc,0"
    ts.write_text("\n".join(lines))
    with pytest.raises(AceInputError) as err:
        open_miniscope(session)
    assert err.value.line == 3 and err.value.column == "Time Stamp (ms)"


def test_frame_size_mismatch_across_files(tmp_path: Path) -> None:
    session = make_v4(tmp_path, n_files=3)
    write_avi(session / "Miniscope" / "2.avi", [np.zeros((H + 2, W), np.uint8)] * 3)
    with pytest.raises(AceInputError, match=r"2\.avi.*one frame size"):
        open_miniscope(session)


def test_gap_in_file_numbers(tmp_path: Path) -> None:
    session = make_v4(tmp_path, n_files=4)
    (session / "Miniscope" / "2.avi").unlink()
    with pytest.raises(AceInputError, match=r"missing numbers \[2\]"):
        open_miniscope(session)


def test_no_movie(tmp_path: Path) -> None:
    with pytest.raises(AceInputError, match="no Miniscope movie"):
        open_miniscope(tmp_path)


def test_v3_folder_picks_miniscope_camera(tmp_path: Path) -> None:
    folder = tmp_path / "H10_M5_S3"
    folder.mkdir()
    write_avi(folder / "msCam1.avi", [frame_for(i) for i in range(4)])
    write_avi(folder / "msCam2.avi", [frame_for(i) for i in range(4, 7)])
    write_avi(folder / "behavCam1.avi", [frame_for(0)] * 5)
    rows = ["camNum\tframeNum\tsysClock\tbuffer"]
    # camera 0 = behaviour (5 frames at 30 Hz), camera 1 = Miniscope (7 frames at 20 Hz)
    events = [(0, i, 33.3 * i) for i in range(5)] + [(1, i, 50.0 * i) for i in range(7)]
    for cam, fn, t in sorted(events, key=lambda e: e[2]):
        rows.append(f"{cam}\t{fn + 1}\t{t:.0f}\t1")
    (folder / "timestamp.dat").write_text("\n".join(rows) + "\n")
    rec = open_miniscope(folder)
    assert rec.version == "V3" and rec.metadata["camNum"] == 1
    assert rec.n_frames == 7 and rec.frame_rate == pytest.approx(20.0)
    np.testing.assert_array_equal(rec.read(3, 5), np.stack([frame_for(3), frame_for(4)]))


@pytest.mark.parametrize(
    ("value", "rate"), [("30FPS", 30.0), ("20 fps", 20.0), ("30.0", 30.0), (15, 15.0)]
)
def test_parse_frame_rate(value: object, rate: float) -> None:
    assert parse_frame_rate(value) == rate


@pytest.mark.parametrize("value", ["", "FPS", "-3", 0, None, True])
def test_parse_frame_rate_rejects(value: object) -> None:
    with pytest.raises(AceInputError, match="frameRate"):
        parse_frame_rate(value)


def test_reads_demo_writer_sessions_with_drops(tmp_path: Path) -> None:
    """Round trip through the demo V4/V3 writers (the layouts the pipeline will meet)."""
    from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope
    from ace_assets.demo.miniscope_writer import write_v3_session, write_v4_session

    synth = SyntheticMiniscope(
        MiniscopeSynthConfig(height=40, width=48, n_frames=120, n_neurons=5, neuron_radius=2.0)
    )
    info = write_v4_session(
        tmp_path / "v4",
        synth,
        frames_per_file=10,
        dropped_frames=[30, 31, 77],
        number_dropped_frames=True,
    )
    rec = open_miniscope(tmp_path / "v4")
    assert rec.n_frames == 117 and len(rec.files) == 12 and rec.files[-1].name == "11.avi"
    assert rec.frame_rate == pytest.approx(synth.fps)
    assert rec.dropped.missing_frame_numbers.tolist() == [30, 31, 77]
    assert rec.dropped.long_interval_frames.tolist() == [30, 75]
    assert rec.dropped.estimated_missing == 3
    kept = info.frame_indices
    for start, block in rec.iter_chunks(16, prefetch=True):
        expected = np.stack([synth.frames(i, i + 1)[0] for i in kept[start : start + len(block)]])
        np.testing.assert_array_equal(block, expected)

    write_v3_session(tmp_path / "v3", synth, frames_per_file=50, dropped_frames=[5])
    # the behaviour camera (camNum 0) also has 119 rows here: a reported tie
    tied = open_miniscope(tmp_path / "v3")
    assert any("all have 119 rows" in msg for msg in tied.issues)
    rec3 = open_miniscope(tmp_path / "v3", v3_cam_num=1)
    assert rec3.version == "V3" and rec3.metadata["camNum"] == 1 and rec3.n_frames == 119
    assert rec3.dropped.long_interval_frames.tolist() == [5]
    assert rec3.frame_rate == pytest.approx(synth.fps, rel=0.05)
    np.testing.assert_array_equal(rec3.read(4, 6), synth.frames(4, 7)[[0, 2]])
