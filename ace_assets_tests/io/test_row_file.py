"""RowFile: rows written through the file land in the store's mapping, cast like assignment."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ace_assets.io.row_file import RowFile
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
