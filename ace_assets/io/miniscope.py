"""Read UCLA Miniscope V4 and V3 session folders as one streamable movie.

A recording is a list of AVI files played back to back. Frames are decoded
sequentially, a chunk at a time, as single-channel uint8 arrays: the whole
movie is never held in memory. Opening a folder is cheap (headers, a seek to
each file's last frame, the timestamp table); bad input is reported up front
with the file that is wrong.

Timestamp rows are matched to AVI frames in order (row i is frame i). A table
with fewer or more rows than there are frames is an error in ``strict`` mode
(the default; the analysis parameter ``timestamp_rows`` = fail); with ``strict=False``
(``fit``) it becomes an entry in ``issues``: extra rows are ignored and frames without a
row get times extrapolated at the median frame interval, never NaN, never a silent
truncation.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ace_assets.errors import AceInputError
from ace_assets.io.confined import confined_tree
from ace_assets.io.frame_times import (
    DroppedFrames,
    FrameTimingParams,
    TimestampReport,
    resolve_timestamps,
)
from ace_assets.io.jsonio import read_json
from ace_assets.io.miniscope_segments import Segment, join_segments
from ace_assets.io.prefetch import prefetched

V4_AVI = re.compile(r"^(\d+)\.avi$", re.IGNORECASE)
V3_AVI = re.compile(r"^mscam(\d+)\.avi$", re.IGNORECASE)
V4_TIMESTAMPS = "timeStamps.csv"
V3_TIMESTAMPS = "timestamp.dat"
V4_METADATA = "metaData.json"
V4_TS_COLUMNS = ("Frame Number", "Time Stamp (ms)", "Buffer Index")
V3_TS_COLUMNS = ("camNum", "frameNum", "sysClock", "buffer")
_GREY_FOURCCS = {b"Y800", b"GREY", b"Y8  ", b"Y08 "}


@dataclass
class MiniscopeRecording:
    """One Miniscope session: its AVI files, timing and metadata.

    Build it with :func:`open_miniscope`. Frames are indexed 0..n_frames-1 across
    all files in playback order.
    """

    folder: Path
    version: str
    files: tuple[Path, ...]
    frames_per_file: tuple[int, ...]
    frame_rate: float
    frame_shape: tuple[int, int]
    timestamps_ms: np.ndarray
    frame_numbers: np.ndarray
    dropped: DroppedFrames
    metadata: dict[str, Any] = field(default_factory=dict)
    timing: TimestampReport | None = None
    """Order faults of the timestamp table (backward, duplicated, swapped) and their
    repairs; ``timestamps_ms`` and ``frame_numbers`` are the repaired series."""
    issues: list[str] = field(default_factory=list)
    timestamps_file: Path | None = None
    segments: tuple[Segment, ...] = ()
    """Parts of a session split across folders (:mod:`ace_assets.io.miniscope_segments`);
    empty for a session in one folder."""
    decode_errors: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Frames OpenCV could not decode, found while reading: global index ->
    ``{"file": name, "file_frame": index in that file}``. Such a frame is delivered
    black and the reading goes on; the denoise stage repairs it as a corrupted frame."""

    @property
    def n_frames(self) -> int:
        return int(sum(self.frames_per_file))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n_frames, *self.frame_shape)

    @property
    def file_starts(self) -> np.ndarray:
        """Global index of each file's first frame (plus the total at the end)."""
        return np.concatenate([[0], np.cumsum(self.frames_per_file)]).astype(np.int64)

    def __len__(self) -> int:
        return self.n_frames

    def summary(self) -> dict[str, Any]:
        """JSON-ready description for asset metadata and QC."""
        return {
            "folder": str(self.folder),
            "version": self.version,
            "files": [p.name for p in self.files],
            "frames_per_file": list(self.frames_per_file),
            "n_frames": self.n_frames,
            "frame_rate": self.frame_rate,
            "frame_shape": list(self.frame_shape),
            "dropped_frames": self.dropped.as_dict(),
            "timestamps": self.timing.summary() if self.timing else None,
            "issues": list(self.issues),
            "segments": [s.as_dict() for s in self.segments],
        }

    def iter_chunks(
        self,
        chunk_frames: int = 256,
        start: int = 0,
        stop: int | None = None,
        *,
        prefetch: bool = False,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_frame, uint8 (k, H, W))`` blocks decoded sequentially.

        With ``prefetch`` a background thread decodes the next block while the
        caller works on this one (OpenCV releases the GIL while decoding). A frame
        that cannot be decoded comes out black and is listed in :attr:`decode_errors`.
        """
        if chunk_frames < 1:
            raise ValueError("chunk_frames must be >= 1")
        start, stop = self._bounds(start, stop)
        blocks = self._decode_blocks(chunk_frames, start, stop)
        return prefetched(blocks) if prefetch else blocks

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``start:stop`` as one uint8 array (seeks; for short ranges)."""
        start, stop = self._bounds(start, stop)
        out = np.empty((stop - start, *self.frame_shape), np.uint8)
        for first, block in self._decode_blocks(max(stop - start, 1), start, stop):
            out[first - start : first - start + len(block)] = block
        return out

    def _bounds(self, start: int, stop: int | None) -> tuple[int, int]:
        n = self.n_frames
        stop = n if stop is None else min(int(stop), n)
        start = int(start)
        if start < 0 or start > stop:
            raise IndexError(f"frame range {start}:{stop} outside 0:{n}")
        return start, stop

    def _decode_blocks(
        self, chunk_frames: int, start: int, stop: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        starts = self.file_starts
        pos = start
        block = np.empty((min(chunk_frames, stop - start), *self.frame_shape), np.uint8)
        filled = 0
        block_start = start
        while pos < stop:
            i = int(np.searchsorted(starts, pos, side="right") - 1)
            local = pos - int(starts[i])
            take = min(int(starts[i + 1]) - pos, stop - pos)
            with _GreyCapture(self.files[i], self.frame_shape) as cap:
                if local:
                    cap.seek(local)
                for j in range(take):
                    if not cap.read_into(block[filled]):
                        # one undecodable frame must not end a long run: deliver it
                        # black, name it, and let the denoise stage repair it
                        block[filled] = 0
                        self.decode_errors[pos + j] = {
                            "file": self.files[i].name,
                            "file_frame": local + j,
                        }
                    filled += 1
                    if filled == len(block):
                        yield block_start, block
                        block_start += filled
                        filled = 0
                        remaining = stop - block_start
                        if remaining > 0:
                            block = np.empty(
                                (min(chunk_frames, remaining), *self.frame_shape), np.uint8
                            )
            pos += take


class _GreyCapture:
    """An OpenCV capture that returns single-channel frames without a colour round trip."""

    def __init__(self, path: Path, frame_shape: tuple[int, int] | None = None) -> None:
        self.path = path
        self.cap = _open_capture(path)
        self.cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        self.grey = _fourcc_bytes(self.cap.get(cv2.CAP_PROP_CODEC_PIXEL_FORMAT)) in _GREY_FOURCCS
        if not self.grey:
            self.cap.set(cv2.CAP_PROP_CONVERT_RGB, 1)
        self.frame_shape = frame_shape

    def seek(self, frame: int) -> None:
        self.cap.set(cv2.CAP_PROP_POS_FRAMES, float(frame))

    def read_into(self, out: np.ndarray) -> bool:
        if self.grey:
            ok, frame = self.cap.read(out)
            if not ok or frame is None:
                return False
            if frame.shape != out.shape:
                raise AceInputError(
                    f"frame of size {frame.shape[1]}x{frame.shape[0]}, expected "
                    f"{out.shape[1]}x{out.shape[0]}",
                    file=self.path,
                )
            if not np.shares_memory(frame, out):
                out[...] = frame
            return True
        ok, frame = self.cap.read()
        if not ok or frame is None:
            return False
        # OpenCV expands grey video to 3 identical BGR channels; green is what the
        # reference pipeline reads, and also the right channel for colour sources.
        single = frame if frame.ndim == 2 else frame[:, :, 1 if frame.shape[2] > 1 else 0]
        if single.shape != out.shape:
            raise AceInputError(
                f"frame of size {single.shape[1]}x{single.shape[0]}, expected "
                f"{out.shape[1]}x{out.shape[0]}",
                file=self.path,
            )
        out[...] = single
        return True

    def close(self) -> None:
        self.cap.release()

    def __enter__(self) -> _GreyCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------
# Opening a folder


def open_miniscope(
    folder: str | Path,
    *,
    strict: bool = True,
    verify: bool = True,
    v3_cam_num: int | None = None,
    confine_to: str | Path | None = None,
    timestamp_faults: str = "repair",
) -> MiniscopeRecording:
    """Open a Miniscope V4 or V3 session folder (or its ``Miniscope/`` subfolder).

    ``verify`` seeks to each file's last frame so a truncated AVI is reported now
    rather than hours into a run. ``strict`` turns timestamp-table mismatches into
    errors; otherwise they are listed in ``recording.issues``.

    V3's ``timestamp.dat`` mixes cameras: the Miniscope is the ``camNum`` with one
    row per AVI frame. When several cameras qualify (a behaviour camera at the same
    rate without drops) the lowest is taken and the tie listed in ``issues``;
    ``v3_cam_num`` names it explicitly.

    ``confine_to`` (data_path): nothing the reader may look at, the folder and its direct
    subfolders, may lead outside it (see :func:`ace_assets.io.confined.confined_tree`).
    ``timestamp_faults`` (see :mod:`ace_assets.io.frame_times`): ``repair`` backward,
    duplicated and swapped timestamps (listed in ``recording.timing``) or ``fail`` on them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AceInputError("Miniscope folder not found", file=folder)
    if confine_to is not None:
        confined_tree(folder, confine_to, depth=1)
    movie_dir, version = _find_movie_dir(folder)
    if version == "V4":
        return _open_v4(movie_dir, strict=strict, verify=verify, faults=timestamp_faults)
    return _open_v3(
        movie_dir, strict=strict, verify=verify, cam_num=v3_cam_num, faults=timestamp_faults
    )


def open_with_timing(
    folders: str | Path | Sequence[str | Path],
    timing: FrameTimingParams,
    confine_to: str | Path | None,
) -> MiniscopeRecording:
    """Open a session as a line's settings say: its timestamp-fault and row-count policies."""
    return open_session(
        folders,
        timestamp_faults=timing.timestamp_faults,
        strict=timing.strict_rows,
        confine_to=confine_to,
    )


def open_session(folders: str | Path | Sequence[str | Path], **options: Any) -> MiniscopeRecording:
    """One folder, or the folders of a session split by a restart, as one recording."""
    if isinstance(folders, str | Path):
        return open_miniscope(folders, **options)
    parts = [open_miniscope(folder, **options) for folder in folders]
    return parts[0] if len(parts) == 1 else join_segments(parts)


def numbered_avis(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    """AVI files whose names match ``pattern``, in numeric (not lexical) order."""
    found = []
    for p in folder.iterdir():
        m = pattern.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    found.sort()
    return [p for _, p in found]


def _find_movie_dir(folder: Path) -> tuple[Path, str]:
    if numbered_avis(folder, V4_AVI):
        return folder, "V4"
    if numbered_avis(folder, V3_AVI):
        return folder, "V3"
    preferred = folder / "Miniscope"
    candidates = [preferred] if preferred.is_dir() else []
    candidates += sorted(
        p for p in folder.iterdir() if p.is_dir() and p != preferred and _is_miniscope_dir(p)
    )
    for cand in candidates:
        if numbered_avis(cand, V4_AVI):
            return cand, "V4"
    raise AceInputError(
        "no Miniscope movie found: expected 0.avi, 1.avi, ... (V4, here or in a "
        "'Miniscope/' subfolder) or msCam1.avi, ... with timestamp.dat (V3)",
        file=folder,
    )


def _is_miniscope_dir(path: Path) -> bool:
    meta = path / V4_METADATA
    if not meta.is_file():
        return "miniscope" in path.name.lower()
    try:
        data = read_json(meta)
    except (OSError, ValueError):
        return False
    kind = f"{data.get('deviceType', '')} {data.get('deviceName', '')}".lower()
    return "miniscope" in kind


def _open_v4(
    movie_dir: Path, *, strict: bool, verify: bool, faults: str = "repair"
) -> MiniscopeRecording:
    files = numbered_avis(movie_dir, V4_AVI)
    issues: list[str] = []
    _check_contiguous(files, V4_AVI, strict, issues, first=0)
    meta_file = movie_dir / V4_METADATA
    if not meta_file.is_file():
        raise AceInputError(
            "metaData.json missing: the V4 frame rate (frameRate) is read from it",
            file=meta_file,
        )
    metadata = _load_json(meta_file)
    if "frameRate" not in metadata:
        raise AceInputError("no 'frameRate' entry", file=meta_file, column="frameRate")
    frame_rate = parse_frame_rate(metadata["frameRate"], meta_file)
    counts, shape = _probe_files(files, verify)
    _check_roi(metadata, shape, meta_file, issues)
    n_frames = sum(counts)
    ts_file = movie_dir / V4_TIMESTAMPS
    frame_numbers, times = _read_v4_timestamps(ts_file)
    frame_numbers, times = _match_rows(frame_numbers, times, n_frames, ts_file, strict, issues)
    timing = resolve_timestamps(frame_numbers, times, policy=faults, file=ts_file)
    frame_numbers, times = timing.repaired_frame_numbers, timing.repaired_times_ms
    dropped = timing.dropped
    _check_rate(frame_rate, dropped.median_interval_ms, issues)
    return MiniscopeRecording(
        folder=movie_dir,
        version="V4",
        files=tuple(files),
        frames_per_file=tuple(counts),
        frame_rate=frame_rate,
        frame_shape=shape,
        timestamps_ms=times,
        frame_numbers=frame_numbers,
        dropped=dropped,
        metadata=metadata,
        timing=timing,
        issues=issues,
        timestamps_file=ts_file,
    )


def _open_v3(
    movie_dir: Path, *, strict: bool, verify: bool, cam_num: int | None, faults: str = "repair"
) -> MiniscopeRecording:
    files = numbered_avis(movie_dir, V3_AVI)
    issues: list[str] = []
    _check_contiguous(files, V3_AVI, strict, issues, first=1)
    counts, shape = _probe_files(files, verify)
    n_frames = sum(counts)
    ts_file = movie_dir / V3_TIMESTAMPS
    table = _read_v3_timestamps(ts_file)
    cams = {
        int(c): (table[table[:, 0] == c, 1], table[table[:, 0] == c, 2]) for c in set(table[:, 0])
    }
    exact = sorted(c for c, (fn, _) in cams.items() if len(fn) == n_frames)
    if cam_num is not None:
        if cam_num not in cams:
            raise AceInputError(
                f"v3_cam_num {cam_num} not in the table (cameras {sorted(cams)})",
                file=ts_file,
                column="camNum",
            )
        cam = cam_num
    elif len(exact) >= 1:
        cam = exact[0]
        if len(exact) > 1:
            issues.append(
                f"{ts_file.name}: cameras {sorted(exact)} all have {n_frames} rows; "
                f"using camNum {cam}"
            )
    else:
        cam = min(cams, key=lambda c: abs(len(cams[c][0]) - n_frames))
        msg = (
            f"no camNum has one row per frame ({n_frames} frames in the AVIs; rows per "
            f"camNum: { {c: len(v[0]) for c, v in sorted(cams.items())} })"
        )
        if strict:
            raise AceInputError(msg, file=ts_file, column="camNum")
        issues.append(f"{ts_file.name}: {msg}; using camNum {cam}")
    frame_numbers = cams[cam][0].astype(np.int64)
    times = cams[cam][1].astype(np.float64)
    frame_numbers, times = _match_rows(frame_numbers, times, n_frames, ts_file, strict, issues)
    timing = resolve_timestamps(
        frame_numbers,
        times,
        policy=faults,
        file=ts_file,
        columns=(V3_TS_COLUMNS[1], V3_TS_COLUMNS[2]),
    )
    frame_numbers, times = timing.repaired_frame_numbers, timing.repaired_times_ms
    dropped = timing.dropped
    if math.isfinite(dropped.median_interval_ms) and dropped.median_interval_ms > 0:
        frame_rate = 1000.0 / dropped.median_interval_ms
    else:
        frame_rate = _header_fps(files[0])
        issues.append("frame rate taken from the AVI header (timestamps unusable)")
    return MiniscopeRecording(
        folder=movie_dir,
        version="V3",
        files=tuple(files),
        frames_per_file=tuple(counts),
        frame_rate=float(frame_rate),
        frame_shape=shape,
        timestamps_ms=times,
        frame_numbers=frame_numbers,
        dropped=dropped,
        metadata={"camNum": cam},
        timing=timing,
        issues=issues,
        timestamps_file=ts_file,
    )


def _check_contiguous(
    files: list[Path], pattern: re.Pattern[str], strict: bool, issues: list[str], first: int
) -> None:
    numbers = [int(pattern.match(p.name).group(1)) for p in files]  # type: ignore[union-attr]
    expected = list(range(numbers[0], numbers[0] + len(numbers)))
    if numbers != expected or numbers[0] != first:
        missing = sorted(set(range(first, numbers[-1] + 1)) - set(numbers))
        msg = f"movie files are not numbered contiguously from {first}; missing numbers {missing}"
        if strict:
            raise AceInputError(msg, file=files[0].parent)
        issues.append(msg)


def parse_frame_rate(value: Any, source: Path | None = None) -> float:
    """``"30FPS"``, ``"30 fps"``, ``"30.0"`` or ``30`` -> 30.0."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, (int, float)):
        rate = float(value)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(fps)?\s*", str(value), re.IGNORECASE)
        rate = float(m.group(1)) if m else float("nan")
    if not math.isfinite(rate) or rate <= 0:
        raise AceInputError(
            f"frameRate {value!r} is not a positive rate like '30FPS' or 30.0",
            file=source,
            column="frameRate",
        )
    return rate


def _load_json(path: Path) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise AceInputError("expected a JSON object at top level", file=path)
    return data


def _open_capture(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise AceInputError("movie file missing", file=path)
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise AceInputError("cannot open as a video (corrupt or not an AVI)", file=path)
    return cap


def _fourcc_bytes(code: float) -> bytes:
    return int(code).to_bytes(4, "little", signed=False) if code > 0 else b""


def _header_fps(path: Path) -> float:
    cap = _open_capture(path)
    try:
        return float(cap.get(cv2.CAP_PROP_FPS))
    finally:
        cap.release()


def _probe_files(files: list[Path], verify: bool) -> tuple[list[int], tuple[int, int]]:
    counts: list[int] = []
    shape: tuple[int, int] | None = None
    for path in files:
        cap = _open_capture(path)
        try:
            n = int(round(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
            h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            if n <= 0 or h <= 0 or w <= 0:
                raise AceInputError(
                    f"header reports {n} frames of {w}x{h}: empty or corrupt AVI", file=path
                )
            if shape is None:
                shape = (h, w)
            elif shape != (h, w):
                raise AceInputError(
                    f"frames are {w}x{h} but {files[0].name} has {shape[1]}x{shape[0]}; "
                    "all files of a recording must share one frame size",
                    file=path,
                )
            if verify:
                cap.set(cv2.CAP_PROP_POS_FRAMES, float(n - 1))
                ok = cap.grab()
                if not ok:
                    raise AceInputError(
                        f"the header claims {n} frames but frame {n - 1} cannot be decoded "
                        "(truncated or corrupt AVI)",
                        file=path,
                    )
        finally:
            cap.release()
        counts.append(n)
    assert shape is not None
    return counts, shape


def _check_roi(
    metadata: dict[str, Any], shape: tuple[int, int], meta_file: Path, issues: list[str]
) -> None:
    roi = metadata.get("ROI")
    if not isinstance(roi, dict):
        return
    try:
        h, w = int(roi.get("height", shape[0])), int(roi.get("width", shape[1]))
    except (TypeError, ValueError):
        issues.append(f"{meta_file.name}: ROI {roi!r} is not numeric")
        return
    if (h, w) != shape:
        issues.append(
            f"{meta_file.name}: ROI {w}x{h} differs from the AVI frame size {shape[1]}x{shape[0]}"
        )


def _check_rate(frame_rate: float, median_ms: float, issues: list[str]) -> None:
    if math.isfinite(median_ms) and median_ms > 0:
        measured = 1000.0 / median_ms
        if abs(measured - frame_rate) > 0.1 * frame_rate:
            issues.append(
                f"metadata frame rate {frame_rate:g} Hz but timestamps give {measured:.3g} Hz"
            )


def _read_v4_timestamps(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise AceInputError("timeStamps.csv missing (per-frame times)", file=path)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        cols = _column_indices(header, V4_TS_COLUMNS[:2], path)
        numbers: list[int] = []
        times: list[float] = []
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            numbers.append(int(_number(row, cols[0], path, line, V4_TS_COLUMNS[0])))
            times.append(_number(row, cols[1], path, line, V4_TS_COLUMNS[1]))
    return np.asarray(numbers, np.int64), np.asarray(times, np.float64)


def _read_v3_timestamps(path: Path) -> np.ndarray:
    if not path.is_file():
        raise AceInputError("timestamp.dat missing (V3 per-frame times)", file=path)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = [h.strip() for h in next(reader, [])]
        cols = _column_indices(header, V3_TS_COLUMNS[:3], path)
        rows: list[tuple[float, float, float]] = []
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            cam, frame, clock = (
                _number(row, c, path, line, n) for c, n in zip(cols, V3_TS_COLUMNS[:3], strict=True)
            )
            rows.append((cam, frame, clock))
    if not rows:
        raise AceInputError("no timestamp rows", file=path)
    return np.asarray(rows, np.float64)


def _column_indices(header: list[str], wanted: tuple[str, ...], path: Path) -> list[int]:
    lowered = [h.lower() for h in header]
    out = []
    for name in wanted:
        if name.lower() not in lowered:
            raise AceInputError(
                f"header {header} lacks column '{name}' (expected {list(wanted)})",
                file=path,
                line=1,
                column=name,
            )
        out.append(lowered.index(name.lower()))
    return out


def _number(row: list[str], col: int, path: Path, line: int, name: str) -> float:
    try:
        value = float(row[col])
    except (IndexError, ValueError):
        cell = row[col] if col < len(row) else "<missing>"
        raise AceInputError(
            f"expected a number, got {cell!r}", file=path, line=line, column=name
        ) from None
    if not math.isfinite(value):
        raise AceInputError(
            f"expected a finite number, got {row[col]!r}", file=path, line=line, column=name
        )
    return value


#: The analysis parameter that decides what a timestamp table of the wrong length does.
TIMESTAMP_ROWS = "timestamp_rows"
TIMESTAMP_ROWS_HINT = (
    f"to go on anyway (extra rows ignored, missing times extrapolated), set the column "
    f"'{TIMESTAMP_ROWS}' of analysis_parameters.csv to fit, or the run config "
    f"ops.analysis_parameters.config.overrides.{TIMESTAMP_ROWS}"
)


def _match_rows(
    frame_numbers: np.ndarray,
    times: np.ndarray,
    n_frames: int,
    path: Path,
    strict: bool,
    issues: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    rows = len(times)
    if rows == n_frames:
        return frame_numbers, times
    msg = f"{rows} timestamp rows for {n_frames} frames in the AVI files"
    if strict:
        raise AceInputError(msg + f"; {TIMESTAMP_ROWS_HINT}", file=path, column=TIMESTAMP_ROWS)
    if rows < n_frames:
        pad = n_frames - rows
        steps = np.diff(times[np.isfinite(times)])
        step = float(np.median(steps)) if steps.size else np.nan
        if not (np.isfinite(step) and step > 0):
            raise AceInputError(
                msg + "; too few valid times to extrapolate the missing ones from",
                file=path,
                column=TIMESTAMP_ROWS,
            )
        issues.append(
            f"{path.name}: {msg}; the times of the last {pad} frames are extrapolated at the "
            f"median frame interval ({step:.3f} ms)"
        )
        times = np.concatenate([times, times[-1] + step * np.arange(1, pad + 1)])
        frame_numbers = np.concatenate([frame_numbers, np.full(pad, -1, np.int64)])
    else:
        issues.append(f"{path.name}: {msg}; the last {rows - n_frames} rows were ignored")
        times, frame_numbers = times[:n_frames], frame_numbers[:n_frames]
    return frame_numbers, times
