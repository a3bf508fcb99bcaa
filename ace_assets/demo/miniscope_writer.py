"""Write UCLA Miniscope V4 and V3 session folders from any frame source, chunk by chunk.

Why: the readers must be tested on the real on-disk layouts (numeric AVI order, FFV1,
metaData.json, timeStamps.csv / timestamp.dat with a behaviour camera interleaved,
dropped frames), not on arrays handed over in memory.

V4 layout (``write_v4_session``)::

    <session>/metaData.json                 session-level (recordingStartTime, miniscopes)
    <session>/Miniscope/0.avi, 1.avi, ...   FFV1, 8-bit grey, frames_per_file each
    <session>/Miniscope/metaData.json       device-level (frameRate "30FPS", ROI, gain, ...)
    <session>/Miniscope/timeStamps.csv      Frame Number,Time Stamp (ms),Buffer Index

V3 layout (``write_v3_session``)::

    <session>/msCam1.avi, msCam2.avi, ...   1-based
    <session>/timestamp.dat                 camNum<TAB>frameNum<TAB>sysClock<TAB>buffer

Dropped frames are source frames that never reach the disk: the AVIs hold fewer
frames and ``timeStamps.csv`` shows a time gap (and, with
``number_dropped_frames=True``, a gap in ``Frame Number`` too).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ace_assets.io.jsonio import write_json

#: The Miniscope DAQ software (Qt's indented JSON) writes metaData.json with four spaces.
DAQ_JSON_INDENT = 4


class FrameSource(Protocol):
    n_frames: int
    height: int
    width: int
    fps: float

    def frames(self, start: int, stop: int) -> np.ndarray: ...


@dataclass
class MiniscopeSessionInfo:
    """What was written: files in order, and which source frame each written frame is."""

    session_dir: Path
    video_dir: Path
    video_files: list[Path]
    frame_indices: np.ndarray  # source frame index of each written frame
    timestamps_ms: np.ndarray  # camera time stamp of each written frame
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def n_written(self) -> int:
        return int(self.frame_indices.size)


def _open_writer(path: Path, fourcc: str, fps: float, width: int, height: int) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (width, height), isColor=False
    )
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot open a {fourcc!r} AVI writer")
    return writer


def _kept_frames(n_frames: int, dropped: Iterable[int]) -> np.ndarray:
    drop = np.unique(np.asarray(list(dropped), dtype=np.int64))
    if drop.size and (drop.min() < 0 or drop.max() >= n_frames):
        raise ValueError(f"dropped frame indices must lie in [0, {n_frames})")
    return np.setdiff1d(np.arange(n_frames, dtype=np.int64), drop)


def _iter_kept(source: FrameSource, kept: np.ndarray, chunk: int) -> Iterator[np.ndarray]:
    """Kept frames in order, rendering the source in contiguous blocks."""
    for a in range(0, source.n_frames, chunk):
        b = min(a + chunk, source.n_frames)
        sel = kept[(kept >= a) & (kept < b)]
        if sel.size:
            block = np.asarray(source.frames(a, b))
            if block.dtype != np.uint8 or block.shape != (b - a, source.height, source.width):
                raise ValueError(
                    f"frame source must give uint8 (k, {source.height}, {source.width}) blocks"
                )
            yield from block[sel - a]


def _write_avis(
    frames: Iterator[np.ndarray],
    paths: Iterator[Path],
    n_total: int,
    frames_per_file: int,
    fourcc: str,
    fps: float,
    width: int,
    height: int,
) -> list[Path]:
    files: list[Path] = []
    writer: cv2.VideoWriter | None = None
    written = 0
    try:
        for i, frame in enumerate(frames):
            written += 1
            if i % frames_per_file == 0:
                if writer is not None:
                    writer.release()
                files.append(next(paths))
                writer = _open_writer(files[-1], fourcc, fps, width, height)
            assert writer is not None
            writer.write(np.ascontiguousarray(frame))
        if written != n_total:
            raise RuntimeError(f"frame source gave {written} frames, expected {n_total}")
    finally:
        if writer is not None:
            writer.release()
    return files


def read_avi(path: str | Path) -> Iterator[np.ndarray]:
    """Frames of an 8-bit grey AVI as 2-D uint8 (OpenCV returns 3 equal channels)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise RuntimeError(f"{path}: cannot open video")
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame[..., 0] if frame.ndim == 3 else frame
    finally:
        cap.release()


def verify_session(info: MiniscopeSessionInfo, source: FrameSource, chunk: int = 100) -> None:
    """Decode every written file and check it equals the source frames bit for bit."""
    expected = _iter_kept(source, info.frame_indices, chunk)
    for path in info.video_files:
        for got in read_avi(path):
            want = next(expected, None)
            if want is None or not np.array_equal(got, want):
                raise RuntimeError(f"{path}: decoded frames differ from the source (lossy codec?)")
    if next(expected, None) is not None:
        raise RuntimeError(f"{info.video_dir}: fewer frames decoded than written")


def _check_empty(directory: Path, overwrite: bool) -> None:
    if directory.exists() and any(directory.iterdir()) and not overwrite:
        raise FileExistsError(f"{directory} is not empty; raw data are written once")
    directory.mkdir(parents=True, exist_ok=True)


def _frame_times(source: FrameSource, frame_times_s: np.ndarray | None) -> np.ndarray:
    if frame_times_s is None:
        return np.arange(source.n_frames) / float(source.fps)
    t = np.asarray(frame_times_s, dtype=np.float64)
    if t.shape != (source.n_frames,):
        raise ValueError(f"frame_times_s must have shape ({source.n_frames},), got {t.shape}")
    return t


def _fps_text(fps: float) -> str:
    return f"{int(round(fps))}FPS" if abs(fps - round(fps)) < 1e-9 else f"{fps:g}FPS"


def _start_dict(start: _dt.datetime) -> dict[str, int]:
    epoch_ms = int(start.replace(tzinfo=_dt.timezone.utc).timestamp() * 1000)
    return {
        "year": start.year,
        "month": start.month,
        "day": start.day,
        "hour": start.hour,
        "minute": start.minute,
        "second": start.second,
        "msec": start.microsecond // 1000,
        "msecSinceEpoch": epoch_ms,
    }


def write_v4_session(
    session_dir: str | Path,
    source: FrameSource,
    *,
    frames_per_file: int = 1000,
    frame_times_s: np.ndarray | None = None,
    dropped_frames: Sequence[int] = (),
    number_dropped_frames: bool = False,
    device_name: str = "Miniscope",
    gain: str = "High",
    led0: int = 12,
    ewl: int = 50,
    recording_start: _dt.datetime | None = None,
    chunk: int = 100,
    verify: bool = False,
    overwrite: bool = False,
) -> MiniscopeSessionInfo:
    """Write a UCLA Miniscope V4 session; ``frame_times_s`` are camera times (default i/fps).

    ``number_dropped_frames``: False numbers written frames 0, 1, 2, ... (as the V4
    software does, so drops show only as time gaps); True keeps the source frame
    numbers, so drops also show as gaps in ``Frame Number``.
    """
    if frames_per_file <= 0:
        raise ValueError("frames_per_file must be positive")
    session = Path(session_dir)
    video_dir = session / device_name
    _check_empty(video_dir, overwrite)
    times = _frame_times(source, frame_times_s)
    kept = _kept_frames(source.n_frames, dropped_frames)
    paths = (video_dir / f"{i}.avi" for i in range(10**9))
    files = _write_avis(
        _iter_kept(source, kept, chunk),
        paths,
        kept.size,
        frames_per_file,
        "FFV1",
        source.fps,
        source.width,
        source.height,
    )
    stamps = np.rint(1000.0 * (times[kept] - times[0])).astype(np.int64)
    numbers = kept if number_dropped_frames else np.arange(kept.size)
    lines = ["Frame Number,Time Stamp (ms),Buffer Index"]
    lines += [f"{n},{s},{n % 10}" for n, s in zip(numbers, stamps, strict=True)]
    (video_dir / "timeStamps.csv").write_text("\n".join(lines) + "\n")
    device_meta = {
        "ROI": {"height": source.height, "leftEdge": 0, "topEdge": 0, "width": source.width},
        "compression": "FFV1",
        "deviceDirectory": str(video_dir),
        "deviceID": 0,
        "deviceName": device_name,
        "deviceType": "Miniscope_V4_BNO",
        "ewl": int(ewl),
        "frameRate": _fps_text(source.fps),
        "framesPerFile": int(frames_per_file),
        "gain": gain,
        "led0": int(led0),
    }
    write_json(video_dir / "metaData.json", device_meta, indent=DAQ_JSON_INDENT)
    start = recording_start or _dt.datetime(2024, 1, 1, 12, 0, 0)
    session_meta = {
        "animalName": "",
        "baseDirectory": str(session),
        "cameras": [],
        "experimentName": "",
        "miniscopes": [device_name],
        "recordingStartTime": _start_dict(start),
        "researcherName": "",
    }
    write_json(session / "metaData.json", session_meta, indent=DAQ_JSON_INDENT)
    info = MiniscopeSessionInfo(session, video_dir, files, kept, stamps)
    if verify:
        verify_session(info, source, chunk)
    return info


def write_v3_session(
    session_dir: str | Path,
    source: FrameSource,
    *,
    frames_per_file: int = 1000,
    frame_times_s: np.ndarray | None = None,
    dropped_frames: Sequence[int] = (),
    miniscope_cam_num: int = 1,
    behav_cam_num: int = 0,
    behav_fps: float | None = 30.0,
    fourcc: str = "FFV1",
    chunk: int = 100,
    verify: bool = False,
    overwrite: bool = False,
) -> MiniscopeSessionInfo:
    """Write a UCLA Miniscope V3 session; ``behav_fps=None`` leaves out the behaviour camera.

    ``timestamp.dat`` rows are in time order with both cameras interleaved; frameNum
    counts each camera's written frames from 1; sysClock is ms since the first frame.
    Only the miniscope AVIs are written (the behaviour camera appears in the table only).
    """
    if frames_per_file <= 0:
        raise ValueError("frames_per_file must be positive")
    if behav_fps is not None and miniscope_cam_num == behav_cam_num:
        raise ValueError("miniscope and behaviour cameras need different camNum")
    session = Path(session_dir)
    _check_empty(session, overwrite)
    times = _frame_times(source, frame_times_s)
    kept = _kept_frames(source.n_frames, dropped_frames)
    paths = (session / f"msCam{i}.avi" for i in range(1, 10**9))
    files = _write_avis(
        _iter_kept(source, kept, chunk),
        paths,
        kept.size,
        frames_per_file,
        fourcc,
        source.fps,
        source.width,
        source.height,
    )
    t0 = times[0]
    ms_clock = np.rint(1000.0 * (times[kept] - t0)).astype(np.int64)
    rows = [(int(c), miniscope_cam_num, i + 1) for i, c in enumerate(ms_clock)]
    if behav_fps is not None:
        span = times[-1] - t0
        # behaviour frames start 7 ms after the miniscope and run at their own rate
        behav = np.rint(1000.0 * (0.007 + np.arange(0.0, span, 1.0 / behav_fps))).astype(np.int64)
        rows += [(int(c), behav_cam_num, i + 1) for i, c in enumerate(behav)]
    rows.sort(key=lambda r: (r[0], r[1] != miniscope_cam_num))
    lines = ["camNum\tframeNum\tsysClock\tbuffer"]
    lines += [f"{cam}\t{num}\t{clock}\t{num % 4}" for clock, cam, num in rows]
    (session / "timestamp.dat").write_text("\n".join(lines) + "\n")
    info = MiniscopeSessionInfo(
        session,
        session,
        files,
        kept,
        ms_clock,
        extra={"miniscope_cam_num": miniscope_cam_num, "behav_cam_num": behav_cam_num},
    )
    if verify:
        verify_session(info, source, chunk)
    return info
