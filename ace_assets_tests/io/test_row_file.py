"""RowFile: rows written through the file land in the store's mapping, cast like assignment."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ace_assets.io import row_file
from ace_assets.io.row_file import RowFile, pread_into, pwrite_all
from ace_assets.io.store import ArrayStore, ArrayStoreWriter


def test_rows_written_through_the_file_are_the_stores(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(1000, 3))  # float64, cast to the float32 store on the way
    with ArrayStoreWriter(tmp_path / "s.npyd", data.shape, np.float32) as writer:
        with RowFile(writer.array) as rows:
            for a in (600, 0, 250):  # any order, uneven blocks
                b = {0: 250, 250: 600, 600: 1000}[a]
                rows.write(a, data[a:b])
        assert np.array_equal(writer.array, data.astype(np.float32))  # the mapping sees them
        writer.commit()
    assert np.array_equal(ArrayStore(tmp_path / "s.npyd").read(0, 1000), data.astype(np.float32))


def test_an_array_without_a_file_is_assigned() -> None:
    out = np.zeros((10, 2), dtype=np.float32)
    RowFile(out).write(4, np.ones((3, 2)))
    assert out[4:7].sum() == 6 and out.sum() == 6


def test_a_background_writer_writes_every_row_before_close_returns(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.normal(size=(20_000, 4))
    with ArrayStoreWriter(tmp_path / "s.npyd", data.shape, np.float32) as writer:
        block = np.empty((900, 4))
        with RowFile(writer.array, background=True, writeback=True) as rows:
            for a in range(0, 20_000, 900):  # the caller reuses its block: rows must copy it
                b = min(20_000, a + 900)
                block[: b - a] = data[a:b]
                rows.write(a, block[: b - a])
        writer.commit()
    assert np.array_equal(ArrayStore(tmp_path / "s.npyd").read(0, 20_000), data.astype(np.float32))


def test_a_background_write_failure_is_raised_to_the_caller(tmp_path: Path) -> None:
    import pytest

    with ArrayStoreWriter(tmp_path / "s.npyd", (100, 2), np.float32) as writer:
        with pytest.raises(OSError, match="disk full"):
            with RowFile(writer.array, background=True) as rows:
                rows._pwrite = _failing  # type: ignore[method-assign]
                for _ in range(10):  # the failure surfaces at a later write or at close
                    rows.write(10, np.ones((10, 2)))
        assert rows._fd is None  # closed all the same


def _failing(position: int, data: np.ndarray) -> None:
    raise OSError("disk full")


def test_pread_fills_the_array_in_pieces_and_names_a_short_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads of at most PIECE_BYTES (made tiny here) fill the whole array from its offset;
    a file that ends first raises instead of leaving the rest unread."""
    data = np.arange(1000, dtype=np.float32).reshape(10, 100)
    path = tmp_path / "f.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        pwrite_all(fd, data, 64)
        monkeypatch.setattr(row_file, "PIECE_BYTES", 24)
        out = np.empty((4, 100), np.float32)
        pread_into(fd, out, 64 + 3 * 400)
        np.testing.assert_array_equal(out, data[3:7])
        with pytest.raises(EOFError, match="bytes short"):
            pread_into(fd, np.empty((5, 100), np.float32), 64 + 6 * 400)
    finally:
        os.close(fd)
