"""Early writeback: batched ranges reach sync_file_range; the bytes written are unchanged."""

from __future__ import annotations

import numpy as np

from ace_assets.io import writeback
from ace_assets.io.row_file import RowFile
from ace_assets.io.store import ArrayStoreWriter


def test_writeback_batches_ranges_and_flushes_the_rest(monkeypatch):
    calls: list[tuple[int, int, int]] = []
    monkeypatch.setattr(
        writeback, "_sync_file_range", lambda fd, off, n, flags: calls.append((off, n, flags)) or 0
    )
    wb = writeback.Writeback(7, batch_bytes=100)
    wb.wrote(0, 60)
    assert calls == []
    wb.wrote(60, 60)  # 120 pending >= 100: started
    assert calls == [(0, 120, 2)]
    wb.wrote(500, 10)
    wb.start()  # the remainder, as RowFile.close does
    assert calls[-1] == (500, 10, 2)
    wb.start()  # nothing pending: no call
    assert len(calls) == 2


def test_row_file_with_writeback_writes_the_same_rows(tmp_path, monkeypatch):
    seen: list[int] = []
    real = writeback._sync_file_range

    def spy(fd: int, off: int, n: int, flags: int) -> int:
        seen.append(n)
        return real(fd, off, n, flags) if real is not None else 0

    monkeypatch.setattr(writeback, "_sync_file_range", spy)
    rng = np.random.default_rng(1)
    data = rng.standard_normal((50_000, 8)).astype(np.float32)  # 1.6 MB
    with ArrayStoreWriter(tmp_path / "x.npyd", data.shape, np.float32) as w:
        with RowFile(w.array, writeback=True) as rows:
            rows._writeback.batch = 1 << 18  # several batches in this small store
            for a in range(0, data.shape[0], 7_000):
                rows.write(a, data[a : a + 7_000])
        store = w.commit()
    np.testing.assert_array_equal(store.read(0, data.shape[0]), data)
    assert sum(seen) == data.nbytes and len(seen) > 1
