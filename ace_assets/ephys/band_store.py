"""A low band kept at its internal rate on disk, read back at the input rate.

Why: a 0.5-30 Hz band of a 32 kHz recording holds nothing that 4 kHz samples do not (see
:mod:`ace_assets.ephys.decimated`: the band is filtered at that rate anyway). Writing it
back at 32 kHz made the filtered store 8x the bytes of what was computed; at an hour of
8 channels that is 3.7 GB of float32 that the disk must take (343 MB/s here: 11 s, more
than the whole filter) and every consumer must read back. Here the store holds the
forward-backward output at the internal rate (float32, each segment with its padding),
the interpolation FIR and the NaN runs of the input; :meth:`BandStore.read` gives any
input-rate range, interpolated by the same polyphase FIR the filter used to write every
sample, so the values equal what the full-rate store held (the same float32 products).

Layout of ``<name>.npyd/``: ``band-low.npy`` ``(rows, channels)`` float32, the segments'
low-rate samples one after another; ``band-taps.npy`` the FIR; ``band-nan.npy`` int64
``(k, 3)`` rows ``(channel, start, stop)`` of input samples that were NaN (NaN again on
read); ``meta.json`` as any store, with ``encoding`` saying all this. :class:`ArrayStore`
refuses such a store with a pointer here; :func:`open_signal_store` opens either kind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ace_assets.ephys.decimated import (
    BLOCK_BYTES,
    DecimationPlan,
    PolyphaseKernels,
    filtfilt_low,
    low_length,
)
from ace_assets.ephys.sidecars import copy_sidecars
from ace_assets.io.jsonio import read_json
from ace_assets.io.page_range import release_rows
from ace_assets.io.row_file import RowFile
from ace_assets.io.scaled_store import NanRuns, put_nan_runs
from ace_assets.io.store import BAND_KIND, ArrayStore, ArrayStoreWriter
from ace_assets.io.threads import one_blas_thread

LOW = "band-low.npy"
TAPS = "band-taps.npy"
NANS = "band-nan.npy"

Reader = Callable[[int, int], np.ndarray]


def open_signal_store(path: str | Path) -> ArrayStore:
    """The store at ``path``: a :class:`BandStore` if it keeps a band at a lower rate."""
    meta_file = Path(path) / "meta.json"
    if (
        meta_file.is_file()
        and (read_json(meta_file).get("encoding") or {}).get("kind") == BAND_KIND
    ):
        return BandStore(path)
    return ArrayStore(path)


class BandStore(ArrayStore):
    """Read-only view of a band store at the input rate (``shape``, ``read`` as any store).

    There is no input-rate memory map (``mmap`` raises): read ranges with :meth:`read`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.meta: dict[str, Any] = read_json(self.path / "meta.json")
        enc = self.meta.get("encoding") or {}
        if enc.get("kind") != BAND_KIND:
            raise ValueError(f"{self.path}: not a band store (meta 'encoding' kind)")
        self.compact = False
        self.file = self.path / enc["file"]
        if not self.file.is_file():
            raise FileNotFoundError(f"{self.path}: not a finished band store (no {LOW})")
        self._low = np.load(self.file, mmap_mode="r")
        self._data = self._low  # what ArrayStore's stored_dtype reports
        self.factor = int(enc["factor"])
        self.pad = int(enc["pad_samples"])
        self._shape = tuple(int(v) for v in enc["shape"])
        self._segments = [tuple(int(v) for v in s) for s in enc["segments"]]
        self._nan = np.load(self.path / enc["nan_runs"]).reshape(-1, 3)
        self._taps = np.load(self.path / enc["taps"])
        self._local = threading.local()

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def n_frames(self) -> int:
        return self._shape[0]

    @property
    def mmap(self) -> np.ndarray:
        raise TypeError(
            f"{self.path} keeps its band at {self.meta['encoding']['internal_rate_hz']:g} Hz: "
            "read input-rate samples with read(start, stop)"
        )

    def _kernels(self) -> PolyphaseKernels:
        ker = getattr(self._local, "ker", None)
        if ker is None:
            ker = self._local.ker = PolyphaseKernels(self._taps, self.factor)
        return ker

    def read(
        self, start: int = 0, stop: int | None = None, column: int | None = None
    ) -> np.ndarray:
        """Input-rate samples ``start:stop`` (of one ``column``, if given; float32, a new
        array)."""
        n = self._shape[0]
        a, b, _ = slice(start, stop).indices(n)
        b = max(a, b)
        n_ch = self._low.shape[1]
        out = np.empty((b - a, n_ch), dtype=np.float32)
        # the products are small: BLAS threads spin more than they help (3-4x the CPU here)
        with one_blas_thread():
            self._interpolate_into(out, a, b)
        put_nan_runs(out, self._nan, a)
        if column is not None:
            return out[:, column].copy()
        return out if len(self._shape) > 1 else out[:, 0]

    def _interpolate_into(self, out: np.ndarray, a: int, b: int) -> None:
        ker = self._kernels()
        d = self.factor
        n_ch = self._low.shape[1]
        step = max(1, BLOCK_BYTES // (4 * d * n_ch))  # low-rate samples per piece
        for s0, s1, row0, n_low in self._segments:
            lo_abs, hi_abs = max(a, s0), min(b, s1)
            if hi_abs <= lo_abs:
                continue
            i0, i1 = lo_abs - s0, hi_abs - s0  # segment positions
            q_first, q_last = (i0 + self.pad) // d, (i1 - 1 + self.pad) // d
            for qa in range(q_first, q_last + 1, step):
                qz = min(q_last + 1, qa + step)
                lo, hi = qa + ker.u_lo, qz + ker.u_hi
                if 0 <= lo and hi <= n_low:
                    y = self._low[row0 + lo : row0 + hi]
                else:  # as the filter wrote it: hold the end values
                    y = self._low[row0 + np.clip(np.arange(lo, hi), 0, n_low - 1)]
                full = ker.interpolate(y, qz - qa)
                p0 = -self.pad + qa * d  # segment position of full[0]
                p_a, p_b = max(i0, p0), min(i1, p0 + full.shape[0])
                out[s0 + p_a - a : s0 + p_b - a] = full[p_a - p0 : p_b - p0]
            release_rows(self._low, row0 + max(0, q_first + ker.u_lo), row0 + q_last + ker.u_hi + 1)

    @property
    def nbytes(self) -> int:
        return int(self.file.stat().st_size)


def write_band_store(
    plan: DecimationPlan,
    read: Reader,
    n: int,
    n_ch: int,
    bounds: list[tuple[int, int]],
    dst_path: str | Path,
    meta: dict[str, Any],
    *,
    pad: int,
    one_d: bool,
    chunk_samples: int,
    sidecars_from: Path | None = None,
    unit: np.ndarray | None = None,
) -> BandStore:
    """Filter each segment at ``plan``'s rate (:func:`filtfilt_low`) into a band store.

    ``read(a, b)`` gives input samples ``(b - a, n_ch)`` (may be called from worker
    threads); ``bounds`` are the segments, each filtered on its own, mirror-padded by
    ``pad`` input samples. ``unit``: what one unit of ``read``'s samples is worth, per
    channel (int16 counts of a scaled store: its scale); the band is stored in its units.
    Written atomically, as every store.
    """
    lengths = [low_length(s1 - s0, pad, plan.factor) for s0, s1 in bounds]
    rows = [0, *np.cumsum(lengths).tolist()]
    encoding = {
        "kind": BAND_KIND,
        "file": LOW,
        "taps": TAPS,
        "nan_runs": NANS,
        "factor": plan.factor,
        "internal_rate_hz": plan.fs_low,
        "pad_samples": pad,
        "shape": [n, n_ch] if not one_d else [n],
        "segments": [[s0, s1, rows[i], lengths[i]] for i, (s0, s1) in enumerate(bounds)],
        "read_as": "float32 at the input rate, interpolated by the FIR in band-taps.npy",
    }
    with ArrayStoreWriter(dst_path, (rows[-1], n_ch), np.float32, meta, data_file=LOW) as w:
        w.meta["encoding"] = encoding
        scratch_path = w.tmp / "forward.scratch"
        longest = max(lengths)
        scratch = np.lib.format.open_memmap(
            scratch_path, mode="w+", dtype=np.float64, shape=(longest, n_ch)
        )
        nan_ranges: list[tuple[int, int]] = []
        with RowFile(w.array, writeback=True, background=True) as low_rows:
            for (s0, s1), row0 in zip(bounds, rows, strict=False):

                def low_out(k: int, block: np.ndarray, row0: int = row0) -> None:
                    low_rows.write(row0 + k, block if unit is None else block * unit)

                nan_ranges += filtfilt_low(
                    plan, read, s0, s1, scratch, low_out,
                    pad=pad, chunk_samples=chunk_samples,
                )  # fmt: skip
        del scratch
        scratch_path.unlink()
        np.save(w.tmp / TAPS, plan.taps)
        np.save(w.tmp / NANS, _nan_runs(read, nan_ranges, n_ch))
        if sidecars_from is not None:
            copy_sidecars(sidecars_from, w.tmp)
        return BandStore(w.publish())


def _nan_runs(read: Reader, ranges: list[tuple[int, int]], n_ch: int) -> np.ndarray:
    """``(channel, start, stop)`` of the NaN runs of the input within ``ranges``."""
    runs = NanRuns()
    step = max(1, BLOCK_BYTES // (4 * n_ch))
    for a, b in ranges:
        for p in range(a, b, step):
            q = min(b, p + step)
            runs.add(p, np.isnan(np.asarray(read(p, q)).reshape(q - p, n_ch)))
    return runs.array()
