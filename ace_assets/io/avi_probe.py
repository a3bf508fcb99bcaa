"""Is an AVI file whole? Decided from its RIFF structure and index, without decoding.

A copier writes an AVI front to back, so the header (frame count, RIFF size) arrives
first and announces what the finished file will hold; the index (``idx1``, or the
OpenDML super index of files over 1 GB) arrives last. A file is whole when every RIFF
chunk the header announces fits in the file and the index lists as many video frames
as the header promises. Reading it costs a few small reads at known offsets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_CHUNK = struct.Struct("<4sI")
_SUPER_ENTRY = struct.Struct("<QII")
#: dwTotalFrames is the 5th field of the main AVI header (avih).
_AVIH_TOTAL_FRAMES = 16
#: dwLength (stream length in frames) of a stream header (strh).
_STRH_LENGTH = 32


@dataclass(frozen=True)
class AviProbe:
    """``frames`` is the header's frame count when the file is whole, else ``problem`` says
    what is missing."""

    frames: int | None
    problem: str | None = None

    @property
    def whole(self) -> bool:
        return self.problem is None


def probe_avi(path: str | Path) -> AviProbe:
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            return _probe(fh, size)
    except OSError as exc:
        return AviProbe(None, f"cannot be read ({exc.strerror or exc})")
    except struct.error:  # shorter than it was a moment ago
        return AviProbe(None, "changed while being read: still copying")


def _probe(fh: BinaryIO, size: int) -> AviProbe:
    if size < 12:
        return AviProbe(None, f"{size} bytes: the AVI header has not arrived")
    riffs = []
    pos = 0
    while pos + 12 <= size:
        fh.seek(pos)
        cid, length = _CHUNK.unpack(fh.read(8))
        form = fh.read(4)
        if cid != b"RIFF" or form not in (b"AVI ", b"AVIX") or (pos == 0) != (form == b"AVI "):
            return AviProbe(None, f"not an AVI RIFF chunk at byte {pos} ({cid!r} {form!r})")
        end = pos + 8 + length + (length & 1)
        if end > size + (length & 1):
            return AviProbe(
                None,
                f"{size} of the {end} bytes its RIFF header announces: still copying, or cut off",
            )
        riffs.append((pos, min(end, size)))
        pos = end
    if pos < size:
        return AviProbe(
            None, f"{size - pos} bytes after the last RIFF chunk: the next one still copying"
        )
    first_start, first_end = riffs[0]
    header = _read_header(fh, first_start + 12, first_end)
    if header is None:
        return AviProbe(None, "no complete 'hdrl' header list")
    promised, video, super_index = header
    if promised <= 0:
        return AviProbe(None, f"the header promises {promised} frames: an empty or unfinished AVI")
    if super_index:
        indexed = 0
        for offset, length, duration in super_index:
            if offset + length > size:
                return AviProbe(
                    None,
                    f"{size} bytes, but its index points to byte {offset + length}: "
                    "still copying, or cut off",
                )
            indexed += duration
    else:
        found = _idx1_frames(fh, first_start + 12, first_end, video)
        if found is None:
            return AviProbe(None, "no idx1 index at the end: still copying, or cut off")
        indexed = found
    if indexed != promised:
        return AviProbe(
            None, f"the header promises {promised} frames but the index lists {indexed}"
        )
    return AviProbe(promised)


def _chunks(fh: BinaryIO, start: int, end: int):
    """(id, data offset, data length, list type or b'') of the chunks in [start, end)."""
    pos = start
    while pos + 8 <= end:
        fh.seek(pos)
        cid, length = _CHUNK.unpack(fh.read(8))
        kind = fh.read(4) if cid == b"LIST" else b""
        yield cid, pos + 8, length, kind
        pos += 8 + length + (length & 1)


def _read_header(
    fh: BinaryIO, start: int, end: int
) -> tuple[int, int, list[tuple[int, int, int]]] | None:
    """(promised frames, video stream number, OpenDML super-index entries) from 'hdrl'."""
    for cid, data, length, kind in _chunks(fh, start, end):
        if cid == b"LIST" and kind == b"hdrl" and data + length <= end:
            break
    else:
        return None
    total = streams = 0
    video: int | None = None
    video_length = 0
    odml_total: int | None = None
    super_index: list[tuple[int, int, int]] = []
    for cid, sub, sub_length, sub_kind in _chunks(fh, data + 4, data + length):
        if cid == b"avih" and sub_length >= _AVIH_TOTAL_FRAMES + 4:
            fh.seek(sub + _AVIH_TOTAL_FRAMES)
            (total,) = struct.unpack("<I", fh.read(4))
        elif cid == b"LIST" and sub_kind == b"strl":
            stream_type, length_frames, index = _stream(fh, sub + 4, sub + sub_length)
            if stream_type == b"vids" and video is None:
                video, video_length, super_index = streams, length_frames, index
            streams += 1
        elif cid == b"LIST" and sub_kind == b"odml":
            for odml_id, odml_data, odml_length, _ in _chunks(fh, sub + 4, sub + sub_length):
                if odml_id == b"dmlh" and odml_length >= 4:
                    fh.seek(odml_data)
                    (odml_total,) = struct.unpack("<I", fh.read(4))
    if video is None:
        return None
    promised = odml_total if odml_total is not None else (video_length or total)
    return promised, video, super_index


def _stream(fh: BinaryIO, start: int, end: int) -> tuple[bytes, int, list[tuple[int, int, int]]]:
    stream_type, length_frames = b"", 0
    entries: list[tuple[int, int, int]] = []
    for cid, data, length, _ in _chunks(fh, start, end):
        if cid == b"strh" and length >= _STRH_LENGTH + 4:
            fh.seek(data)
            stream_type = fh.read(4)
            fh.seek(data + _STRH_LENGTH)
            (length_frames,) = struct.unpack("<I", fh.read(4))
        elif cid == b"indx" and length >= 24:
            fh.seek(data)
            _longs, _sub, index_type, in_use = struct.unpack("<HBBI", fh.read(8))
            if index_type == 0:  # AVI_INDEX_OF_INDEXES
                fh.seek(data + 24)
                raw = fh.read(min(in_use, (length - 24) // _SUPER_ENTRY.size) * _SUPER_ENTRY.size)
                entries = [e for e in _SUPER_ENTRY.iter_unpack(raw)]
    return stream_type, length_frames, entries


def _idx1_frames(fh: BinaryIO, start: int, end: int, video: int) -> int | None:
    """Video frames listed in the legacy idx1 index (entries ``NNdc`` / ``NNdb``)."""
    for cid, data, length, _ in _chunks(fh, start, end):
        if cid == b"idx1":
            if data + length > end:
                return None
            fh.seek(data)
            raw = fh.read(length - length % 16)
            wanted = (f"{video:02d}dc".encode(), f"{video:02d}db".encode())
            return sum(1 for i in range(0, len(raw), 16) if raw[i : i + 4] in wanted)
    return None
