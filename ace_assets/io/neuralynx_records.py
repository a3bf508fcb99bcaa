"""One ``.ncs`` file's records: the per-record index, and its samples read a block at a time.

The body after the 16384-byte header is a fixed array of 1044-byte records, so it is read
as one ``np.memmap`` with the structured record dtype (:data:`NCS_DTYPE`): no parsing, no
per-record Python, and a block of records is a strided view. The header stays neo's and
:func:`~ace_assets.io.neuralynx.read_ncs_header`'s business; the tests cross-check these
samples and timestamps against neo. The mapped pages of the records a block read are released
after it (:func:`~ace_assets.io.page_range.release_rows`), so a long read never grows the
resident set.
Counts are scaled by the header's signed ``ADBitVolts`` (negated for inverted inputs),
exactly as the vendor's ``Nlx2MatCSC`` counts times the header scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ace_assets.errors import AceInputError
from ace_assets.io.neuralynx_format import HEADER_SIZE, NCS_DTYPE
from ace_assets.io.neuralynx_format import SAMPLES_PER_RECORD as REC
from ace_assets.io.page_range import release_rows
from ace_assets.io.pages import release_pages

_NONE = 1 << 62  # no record read since the last release


def map_records(path, n_records: int) -> np.ndarray:
    """The file's records as a read-only structured memmap (``n_records`` of NCS_DTYPE)."""
    if n_records == 0:
        return np.zeros(0, dtype=NCS_DTYPE)
    return np.memmap(path, dtype=NCS_DTYPE, mode="r", offset=HEADER_SIZE, shape=(n_records,))


def record_index(path, n_records: int, block: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps and valid-sample counts of every record, read in blocks of the memmap."""
    ts = np.empty(n_records, dtype=np.int64)
    nv = np.empty(n_records, dtype=np.int16)  # at most 512: a quarter of int64's memory
    records = map_records(path, n_records)
    for a in range(0, n_records, block):
        rec = records[a : a + block]
        counts = rec["nb_valid"]
        bad = np.flatnonzero(counts > REC)
        if bad.size:
            r = a + int(bad[0])
            raise AceInputError(
                f"record {r} claims {int(counts[bad[0]])} valid samples (max {REC})",
                file=path,
            )
        ts[a : a + rec.size] = rec["timestamp"]
        nv[a : a + rec.size] = counts
        release_pages(records)
    del records
    return ts, nv


@dataclass
class ChannelRecords:
    """Record table of one channel file and where each record lands on a sample grid.

    ``grid_start[r]`` is the grid index of record r's first sample (set by
    :class:`ace_assets.io.neuralynx_grid.SampleGrid`).
    """

    path: object
    fs: float
    volts_per_count: float
    timestamps_us: np.ndarray
    nb_valid: np.ndarray
    grid_start: np.ndarray | None = None
    _mapped: np.ndarray | None = field(default=None, repr=False, compare=False)
    _read: tuple[int, int] = field(default=(_NONE, 0), repr=False, compare=False)

    @classmethod
    def scan(cls, path, fs: float, volts_per_count: float, n_records: int) -> ChannelRecords:
        ts, nv = record_index(path, n_records)
        back = np.flatnonzero(np.diff(ts) <= 0)
        if back.size:
            r = int(back[0]) + 1
            raise AceInputError(
                f"record {r} has timestamp {int(ts[r])} µs, not after record {r - 1}'s "
                f"{int(ts[r - 1])} µs; records must be in time order",
                file=path,
            )
        return cls(path, float(fs), float(volts_per_count), ts, nv)

    @property
    def n_records(self) -> int:
        return int(self.timestamps_us.size)

    def records(self) -> np.ndarray:
        """The structured memmap of this file's records, opened on first use."""
        if self._mapped is None:
            self._mapped = map_records(self.path, self.n_records)
        return self._mapped

    def read_records(self, r0: int, r1: int) -> np.ndarray:
        """Raw records ``r0:r1`` (structured, a view of the memmap)."""
        self._read = (min(r0, self._read[0]), max(r1, self._read[1]))
        return self.records()[r0:r1]

    def release(self) -> None:
        """Drop this process's mapped pages of the records read since the last release (they
        stay in the page cache); only those, see :mod:`ace_assets.io.page_range`."""
        if self._mapped is not None and self._read[1] > self._read[0]:
            release_rows(self._mapped, *self._read)
        self._read = (_NONE, 0)

    def contiguous_records(self, a: int, b: int) -> tuple[np.ndarray, int] | None:
        """Where full, back-to-back records cover grid ``a:b`` (the common case): their
        ``(records, 512)`` int16 samples (a strided view of the memmap) and the offset of
        grid sample ``a`` in them. None otherwise (gaps, partial records, or samples
        missing in the range: :meth:`place` handles those)."""
        starts = self.grid_start
        assert starts is not None, "grid_start is set by SampleGrid"
        r0 = int(np.searchsorted(starts, a, side="right")) - 1
        r1 = int(np.searchsorted(starts, b, side="left"))
        if r0 < 0 or r1 <= r0:
            return None
        g = starts[r0:r1]
        if int(g[-1]) + REC < b or np.any(self.nb_valid[r0:r1] != REC):
            return None
        if r1 - r0 > 1 and np.any(np.diff(g) != REC):
            return None
        return self.read_records(r0, r1)["samples"], a - int(g[0])

    def place(self, a: int, b: int, out: np.ndarray, present: np.ndarray) -> None:
        """Write this channel's volts for grid indices ``a:b`` into ``out`` (length b - a),
        and set ``present`` where a recorded sample landed."""
        starts = self.grid_start
        assert starts is not None, "grid_start is set by SampleGrid"
        r0 = max(0, int(np.searchsorted(starts, a, side="right")) - 1)
        r1 = int(np.searchsorted(starts, b, side="left"))
        if r1 <= r0:
            return
        rec = self.read_records(r0, r1)
        g = starts[r0:r1]
        nv = self.nb_valid[r0:r1]
        samples = rec["samples"]
        if np.all(nv == REC) and np.all(np.diff(g) == REC):  # contiguous full records
            flat = samples.reshape(-1)
            lo, hi = max(a, int(g[0])), min(b, int(g[0]) + flat.size)
            if hi > lo:
                out[lo - a : hi - a] = flat[lo - g[0] : hi - g[0]] * self.volts_per_count
                present[lo - a : hi - a] = True
            return
        pos = g[:, None] + np.arange(REC)[None, :]
        keep = (np.arange(REC)[None, :] < nv[:, None]) & (pos >= a) & (pos < b)
        idx = pos[keep] - a
        out[idx] = samples[keep] * self.volts_per_count
        present[idx] = True

    def present_intervals(self) -> tuple[np.ndarray, np.ndarray]:
        """Grid index ranges ``[start, stop)`` holding recorded samples, touching ones merged.

        Built from the breaks only (one temporary per record), so a long recording costs
        little beyond its record table."""
        assert self.grid_start is not None
        g, nv = self.grid_start, self.nb_valid
        if np.any(nv == 0):  # rare: records without samples split nothing, drop them
            keep = nv > 0
            g, nv = g[keep], nv[keep]
        if g.size == 0:
            return g.astype(np.int64), g.astype(np.int64)
        ends = g[:-1] + nv[:-1]
        brk = np.flatnonzero(g[1:] > ends) + 1
        del ends
        starts = g[np.concatenate([[0], brk])]
        last = np.concatenate([brk - 1, [g.size - 1]])
        return starts.astype(np.int64), (g[last] + nv[last]).astype(np.int64)
