"""Volts kept as the recording's int16 counts and one scale per channel: half the bytes.

Why: the session store of an hour of 8 channels at 32 kHz is 3.7 GB of float32, which this
machine's disk takes 11 s to write (343 MB/s), more than reading and filtering cost. A
Neuralynx sample is an int16 count times the channel's ``ADBitVolts``; the float32 store held
``float32(count * scale)`` computed in float64, and :meth:`ScaledDecoder.decode` computes the
same, so every read gives the same values bit for bit. Samples that are not a count times the
scale are kept exactly: NaN (a channel with nothing in a segment) as runs ``(channel, start,
stop)``, any other value (filled across a short pause, interpolated) as a patch row (its
index and the float32 row). Patches are streamed to files while writing: memory stays flat.

Files beside ``data-int16.npy``: ``patch-rows.npy`` (int64, sorted), ``patch-values.npy``
(float32 ``(rows, channels)``), ``nan-runs.npy`` (int64 ``(k, 3)``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCALED = "data-int16.npy"
PATCH_ROWS = "patch-rows.npy"
PATCH_VALUES = "patch-values.npy"
NAN_RUNS = "nan-runs.npy"
COUNT_MAX = 32767


class NanRuns:
    """``(channel, start, stop)`` runs of NaN samples, gathered block by block (in any order);
    runs that touch or overlap are merged."""

    def __init__(self) -> None:
        self._runs: list[tuple[int, int, int]] = []

    def add(self, start: int, nan: np.ndarray) -> None:
        """The NaN mask ``(rows, channels)`` of rows ``start : start + rows``."""
        for c in range(nan.shape[1]):
            edges = np.flatnonzero(np.diff(np.concatenate(([0], nan[:, c].astype(np.int8), [0]))))
            self._runs += [
                (c, start + s, start + e)
                for s, e in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True)
            ]

    def array(self) -> np.ndarray:
        merged: list[list[int]] = []
        for c, s, e in sorted(self._runs):
            if merged and merged[-1][0] == c and merged[-1][2] >= s:
                merged[-1][2] = max(merged[-1][2], e)
            else:
                merged.append([c, s, e])
        return np.asarray(merged, dtype=np.int64).reshape(-1, 3)


def put_nan_runs(out: np.ndarray, runs: np.ndarray, start: int, column: int | None = None) -> None:
    """NaN into ``out`` (rows ``start : start + len(out)``, all columns or one) where the
    ``(channel, start, stop)`` runs (:meth:`NanRuns.array`) reach."""
    stop = start + out.shape[0]
    hit = runs[(runs[:, 1] < stop) & (runs[:, 2] > start)]
    for c, r0, r1 in hit.tolist():
        rows = slice(max(r0, start) - start, min(r1, stop) - start)
        if column is None:
            out[rows, c] = np.nan
        elif c == column:
            out[rows] = np.nan


class ScaledDecoder:
    """Counts to float32 volts, with the stored exceptions put back."""

    def __init__(self, path: Path, scale: list[float]) -> None:
        self.scale = np.asarray(scale, dtype=np.float64)
        self.patch_rows = np.load(path / PATCH_ROWS)
        self.patch_values = np.load(path / PATCH_VALUES, mmap_mode="r")
        self.nan_runs = np.load(path / NAN_RUNS).reshape(-1, 3)

    def exact(self, start: int, stop: int) -> bool:
        """Whether rows ``start:stop`` are all a count times the scale (no exception)."""
        i, j = np.searchsorted(self.patch_rows, [start, stop])
        runs = self.nan_runs
        return j == i and not bool(np.any((runs[:, 1] < stop) & (runs[:, 2] > start)))

    def decode(self, counts: np.ndarray, start: int, column: int | None = None) -> np.ndarray:
        """Rows ``start : start + len(counts)`` (all columns, or one) as float32."""
        scale = self.scale if column is None else self.scale[column]
        out = np.empty(counts.shape, dtype=np.float32)
        np.multiply(counts, scale, out=out, casting="unsafe")  # float64 product, then cast
        stop = start + counts.shape[0]
        i, j = np.searchsorted(self.patch_rows, [start, stop])
        if j > i:
            values = np.asarray(self.patch_values[i:j])
            out[self.patch_rows[i:j] - start] = values if column is None else values[:, column]
        put_nan_runs(out, self.nan_runs, start, column)
        return out


class ScaledEncoder:
    """Float blocks to counts, writing what counts cannot hold to the exception files."""

    def __init__(self, folder: Path, scale: list[float]) -> None:
        self.folder = folder
        self.scale = np.asarray(scale, dtype=np.float64)
        self._rows = open(folder / "patch-rows.part", "wb")  # noqa: SIM115 - closed in save
        self._values = open(folder / "patch-values.part", "wb")  # noqa: SIM115
        self.n_patch = 0
        self._nans = NanRuns()

    def encode(self, start: int, block: np.ndarray) -> np.ndarray:
        """The counts of rows ``start : start + len(block)`` (a new int16 array)."""
        block = np.asarray(block, dtype=np.float32).reshape(block.shape[0], -1)
        nan = np.isnan(block)
        with np.errstate(invalid="ignore"):
            q = np.rint(block / self.scale)
            q[nan | ~(np.abs(q) <= COUNT_MAX)] = 0
        counts = q.astype(np.int16)
        back = np.empty(block.shape, dtype=np.float32)
        np.multiply(counts, self.scale, out=back, casting="unsafe")
        inexact = np.flatnonzero(((back != block) & ~nan).any(axis=1))
        if inexact.size:
            self._rows.write((inexact + start).astype(np.int64).tobytes())
            self._values.write(np.ascontiguousarray(block[inexact]).tobytes())
            self.n_patch += inexact.size
        if nan.any():
            self._nans.add(start, nan)
        return counts

    def save(self) -> dict[str, int]:
        """Write the exception files into the folder; what they hold."""
        self._rows.close()
        self._values.close()
        n_ch = self.scale.size
        rows = np.fromfile(self.folder / "patch-rows.part", dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        np.save(self.folder / PATCH_ROWS, rows[order])
        raw = np.memmap(
            self.folder / "patch-values.part", dtype=np.float32, mode="r", shape=(rows.size, n_ch)
        ) if rows.size else np.zeros((0, n_ch), dtype=np.float32)  # fmt: skip
        values = np.lib.format.open_memmap(
            self.folder / PATCH_VALUES, mode="w+", dtype=np.float32, shape=(rows.size, n_ch)
        )
        step = 1 << 16
        for a in range(0, rows.size, step):
            values[a : a + step] = raw[order[a : a + step]]
        values.flush()
        del values, raw
        (self.folder / "patch-rows.part").unlink()
        (self.folder / "patch-values.part").unlink()
        runs = self._nans.array()
        np.save(self.folder / NAN_RUNS, runs)
        return {"patched_rows": int(rows.size), "nan_runs": int(runs.shape[0])}

    def discard(self) -> None:
        self._rows.close()
        self._values.close()
