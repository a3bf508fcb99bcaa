"""release_rows: only the rows' whole pages leave the mapping; the data never changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ace_assets.io import page_range
from ace_assets.io.page_range import release_rows


def test_only_the_rows_whole_pages_are_released(tmp_path: Path, monkeypatch) -> None:
    calls: list[tuple[int, int]] = []
    path = tmp_path / "a.npy"
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(10_000, 8))
    arr[:] = np.arange(arr.size, dtype=np.float32).reshape(arr.shape)
    real = arr._mmap.madvise

    class Spy:  # the mmap object's methods cannot be patched: wrap it
        def __init__(self, handle) -> None:  # noqa: ANN001 - an mmap
            self.handle = handle

        def madvise(self, advice: int, start: int, length: int) -> None:
            calls.append((start, length))
            real(advice, start, length)

        def __len__(self) -> int:
            return len(self.handle)

    monkeypatch.setattr(arr, "_mmap", Spy(arr._mmap))
    head = arr.offset  # the .npy header: row 0 starts here in the mapping
    release_rows(arr, 1000, 3000)  # bytes [head + 32000, head + 96000)
    (start, length), page = calls[-1], page_range._PAGE
    assert start % page == 0 and length % page == 0
    assert head + 1000 * 32 <= start and start + length <= head + 3000 * 32
    assert start - (head + 1000 * 32) < page and head + 3000 * 32 - (start + length) < page
    release_rows(arr, 5, 6)  # less than a page: nothing
    release_rows(arr[10:], 0, 100)  # a view: left alone
    assert len(calls) == 1
    expected = np.arange(arr.size, dtype=np.float32).reshape(arr.shape)
    assert np.array_equal(arr, expected)  # dirty pages released, data intact


def test_in_memory_arrays_are_left_alone() -> None:
    x = np.ones((100, 2))
    release_rows(x, 0, 100)
    assert x.sum() == 200
