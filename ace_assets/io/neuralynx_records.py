"""One ``.ncs`` file's records: the per-record index, and its samples read a block at a time.

Samples are read with plain file reads of whole records (no memory map), so a long read
never grows the resident set and no page-release tricks are needed. Counts are scaled by
the header's signed ``ADBitVolts`` (negated for inverted inputs), exactly as the vendor's
``Nlx2MatCSC`` counts times the header scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ace_assets.errors import AceInputError
from ace_assets.io.neuralynx_format import HEADER_SIZE, NCS_DTYPE, NCS_RECORD_SIZE
from ace_assets.io.neuralynx_format import SAMPLES_PER_RECORD as REC


def record_index(path, n_records: int, block: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps and valid-sample counts of every record, read in blocks."""
    ts = np.empty(n_records, dtype=np.int64)
    nv = np.empty(n_records, dtype=np.int16)  # at most 512: a quarter of int64's memory
    with open(path, "rb") as fh:
        fh.seek(HEADER_SIZE)
        for a in range(0, n_records, block):
            rec = np.fromfile(fh, dtype=NCS_DTYPE, count=min(block, n_records - a))
            bad = np.flatnonzero(rec["nb_valid"] > REC)
            if bad.size:
                r = a + int(bad[0])
                raise AceInputError(
                    f"record {r} claims {int(rec['nb_valid'][bad[0]])} valid samples (max {REC})",
                    file=path,
                )
            ts[a : a + rec.size] = rec["timestamp"]
            nv[a : a + rec.size] = rec["nb_valid"]
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

    def read_records(self, r0: int, r1: int) -> np.ndarray:
        """Raw records ``r0:r1`` (structured array)."""
        with open(self.path, "rb") as fh:
            fh.seek(HEADER_SIZE + r0 * NCS_RECORD_SIZE)
            return np.fromfile(fh, dtype=NCS_DTYPE, count=r1 - r0)

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
