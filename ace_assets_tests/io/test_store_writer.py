"""ArrayStoreWriter: rows written through the file on a second thread land exactly, once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ace_assets.io.store import ArrayStore, ArrayStoreWriter


def test_blocks_in_any_order_over_parked_rows_are_what_the_store_reads(tmp_path: Path) -> None:
    """Denoise parks raw frames in ``writer.array`` and later writes the filtered ones over
    them with ``write``: the store holds the last write of every row."""
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 255, (23, 9, 7), dtype=np.uint8)
    final = rng.integers(0, 255, (23, 9, 7), dtype=np.uint8)
    with ArrayStoreWriter(tmp_path / "m.npyd", raw.shape, np.uint8, {"fps": 20.0}) as w:
        w.array[:] = raw
        for s in (15, 0, 5, 10, 20):
            w.write(s, final[s : s + 5])
        store = w.commit()
    np.testing.assert_array_equal(store.read(0, 23), final)
    assert ArrayStore(tmp_path / "m.npyd").meta["fps"] == 20.0


def test_a_failure_after_writes_publishes_nothing_and_keeps_the_last_store(tmp_path: Path) -> None:
    path = tmp_path / "m.npyd"
    good = np.arange(40, dtype=np.float32).reshape(4, 2, 5)
    with ArrayStoreWriter(path, good.shape, np.float32) as w:
        w.write(0, good)
        w.commit()
    with pytest.raises(RuntimeError, match="stage failed"):
        with ArrayStoreWriter(path, good.shape, np.float32) as w:
            w.write(0, -good)
            raise RuntimeError("stage failed")
    np.testing.assert_array_equal(ArrayStore(path).read(0, 4), good)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npyd"]  # no temporary left


def test_blocks_are_cast_as_assignment_casts(tmp_path: Path) -> None:
    block = np.array([[[1.6, 300.0]]], dtype=np.float64)
    with ArrayStoreWriter(tmp_path / "m.npyd", (1, 1, 2), np.float32) as w:
        w.write(0, block)
        store = w.commit()
    np.testing.assert_array_equal(store.read(0, 1), block.astype(np.float32))
