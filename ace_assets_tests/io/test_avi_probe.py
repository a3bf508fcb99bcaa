"""The AVI probe on an OpenDML (AVI 2.0) file, the layout of movies over 1 GB.

Writing a real one takes a gigabyte, so the RIFF structure is built here chunk by chunk
as FFmpeg lays it out: a first ``RIFF AVI`` with the header (``odml``/``dmlh`` total and a
super index ``indx`` in the stream list), then a ``RIFF AVIX`` continuation.
"""

from __future__ import annotations

import struct
from pathlib import Path

from ace_assets.io.avi_probe import probe_avi


def _chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b"")


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _riff(form: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"RIFF", form + b"".join(chunks))


def _movi(n_frames: int) -> tuple[bytes, int]:
    """A movi list of ``n_frames`` frames and its standard index; the offset of the index
    inside the returned bytes."""
    frames = b"".join(_chunk(b"00dc", bytes([i]) * 7) for i in range(n_frames))
    index_at = 12 + len(frames)
    return _list(b"movi", frames, _chunk(b"ix00", b"\0" * 32)), index_at


def opendml(first: int, second: int, promised: int) -> bytes:
    """First RIFF with ``first`` frames, AVIX with ``second``; dmlh promises ``promised``."""

    def header(entries: list[tuple[int, int, int]]) -> bytes:
        avih = struct.pack("<10I", 33333, 0, 0, 0, first, 0, 1, 0, 8, 8) + b"\0" * 16
        strh = b"vidsFFV1" + struct.pack("<IHHIIIII", 0, 0, 0, 0, 1, 30, 0, first + second)
        strh += b"\0" * (56 - len(strh))
        indx = struct.pack("<HBBI", 4, 0, 0, len(entries)) + b"00dc" + b"\0" * 12
        indx += b"".join(struct.pack("<QII", *e) for e in entries)
        strl = _list(
            b"strl", _chunk(b"strh", strh), _chunk(b"strf", b"\0" * 40), _chunk(b"indx", indx)
        )
        odml = _list(b"odml", _chunk(b"dmlh", struct.pack("<I", promised) + b"\0" * 244))
        return _list(b"hdrl", _chunk(b"avih", avih), strl, odml)

    movi1, at1 = _movi(first)
    movi2, at2 = _movi(second)
    idx1 = _chunk(b"idx1", b"".join(b"00dc" + struct.pack("<III", 16, 0, 7) for _ in range(first)))
    placeholder = [(0, 40, first), (0, 40, second)]
    head = 12 + len(header(placeholder))
    riff1_len = head + len(movi1) + len(idx1)
    entries = [(head + at1, 40, first), (riff1_len + 12 + at2, 40, second)]
    return _riff(b"AVI ", header(entries), movi1, idx1) + _riff(b"AVIX", movi2)


def test_opendml_frames_come_from_the_super_index(tmp_path: Path) -> None:
    avi = tmp_path / "0.avi"
    avi.write_bytes(opendml(3, 2, promised=5))
    assert probe_avi(avi).frames == 5 and probe_avi(avi).whole


def test_opendml_copy_stopped_between_riff_chunks_is_not_whole(tmp_path: Path) -> None:
    """Cut exactly after the first RIFF: every chunk present fits, but the index points on."""
    raw = opendml(3, 2, promised=5)
    first_len = 8 + struct.unpack_from("<I", raw, 4)[0]
    avi = tmp_path / "0.avi"
    avi.write_bytes(raw[:first_len])
    problem = probe_avi(avi).problem
    assert problem is not None and problem.startswith(f"{first_len} bytes, but its index points")


def test_opendml_header_promising_more_than_indexed(tmp_path: Path) -> None:
    avi = tmp_path / "0.avi"
    avi.write_bytes(opendml(3, 2, promised=6))
    assert probe_avi(avi).problem == "the header promises 6 frames but the index lists 5"


def test_bytes_after_the_last_riff_are_a_copy_in_progress(tmp_path: Path) -> None:
    avi = tmp_path / "0.avi"
    avi.write_bytes(opendml(3, 2, promised=5) + b"RIFF")
    assert probe_avi(avi).problem == "4 bytes after the last RIFF chunk: the next one still copying"
