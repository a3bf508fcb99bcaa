"""Read a line's channels as volts on one sample grid, a bounded block at a time.

Each column comes from a source that writes what it has into the block and says where it
had a sample: :class:`~ace_assets.io.neuralynx_records.ChannelRecords` (a channel recorded
at the grid's rate, placed by record timestamp) or :class:`ResampledSource` (a channel of
another rate, anti-alias filtered and evaluated at the grid's sample times: polyphase
decimation). Samples a source lacks are filled (:mod:`neuralynx_fill`: linear prediction
from both sides) when other samples of that channel lie in the same segment, else NaN: the
grid's cut
rules (see :mod:`ace_assets.io.neuralynx_grid`) make that the same as its filled / NaN
tables. Blocks never reach across a segment boundary, so nothing is interpolated across a
long pause.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
from scipy import signal

from ace_assets.io.neuralynx_fill import CONTEXT, fill_missing
from ace_assets.io.neuralynx_grid import SampleClock, SampleGrid


class Source(Protocol):
    def place(self, a: int, b: int, out: np.ndarray, present: np.ndarray) -> None: ...


class GridReader:
    """Volts ``(n, n_sources)`` for grid indices, filled / NaN per the grid's rules."""

    def __init__(self, grid: SampleGrid, sources: list[Source], max_fill: int) -> None:
        self.grid = grid
        self.sources = sources
        # a fill needs its run and the context each side; nothing is filled when max_fill is 0
        self.margin = int(max_fill) + CONTEXT + 1 if max_fill > 0 else 0
        self._seg_starts = np.array([a for a, _ in grid.segments], dtype=np.int64)
        self._scaled: np.ndarray | None = None  # read_into's float64 buffer, reused

    @property
    def n_samples(self) -> int:
        return self.grid.n_samples

    def segment_of(self, index: int) -> tuple[int, int]:
        k = int(np.searchsorted(self._seg_starts, index, side="right") - 1)
        return self.grid.segments[k]

    def read(self, a: int, b: int) -> np.ndarray:
        """Grid samples ``a:b`` (may span segments)."""
        if not 0 <= a <= b <= self.n_samples:
            raise ValueError(f"range {a}:{b} outside 0:{self.n_samples}")
        out = np.empty((b - a, len(self.sources)))
        pos = a
        while pos < b:
            s0, s1 = self.segment_of(pos)
            end = min(b, s1)
            out[pos - a : end - a] = self._read_in_segment(pos, end, s0, s1)
            pos = end
        self._release()
        return out

    def read_into(self, a: int, b: int, out: np.ndarray) -> None:
        """Grid samples ``a:b`` into ``out`` (``(b - a, n_sources)``, any float dtype).

        Where every source is a channel whose full records cover ``a:b`` back to back, the
        int16 counts go straight from the memmap into ``out`` (scaled in float64 and cast
        on assignment: the same values as :meth:`read`, without its per-block buffers);
        anything else (pauses, partial records, fills, resampled channels) takes
        :meth:`read`."""
        views = self._contiguous(a, b)
        if views is None:
            out[...] = self.read(a, b)
            return
        scales = [source.volts_per_count for source in self.sources]  # type: ignore[attr-defined]
        for k, (scale, (samples, offset)) in enumerate(zip(scales, views, strict=True)):
            column = out[:, k]
            if offset == 0 and samples.size == b - a:  # the block is whole records
                by_record = column.view()
                by_record.shape = samples.shape  # a view, or an error: never a copy
                # float64 product, cast to the store's dtype on the way out
                np.multiply(samples, scale, out=by_record, casting="unsafe")
                continue
            if self._scaled is None or self._scaled.size < samples.size:
                self._scaled = np.empty(samples.size)
            scaled = self._scaled[: samples.size]
            np.multiply(samples, scale, out=scaled.reshape(samples.shape))
            column[:] = scaled[offset : offset + b - a]
        self._release()

    def _contiguous(self, a: int, b: int) -> list[tuple[np.ndarray, int]] | None:
        """Each column's full records covering ``a:b`` back to back (int16 view, offset of
        ``a`` in it), or None when any column has no such cover."""
        views = []
        for source in self.sources:
            fast = getattr(source, "contiguous_records", None)
            got = fast(a, b) if fast is not None else None
            if got is None:
                return None
            views.append(got)
        return views

    @property
    def scales(self) -> list[float] | None:
        """Volts per count of every column, or None when a column is not a channel's counts
        (a resampled channel): then there is no int16 form of the grid."""
        scales = [getattr(source, "volts_per_count", None) for source in self.sources]
        return None if any(v is None for v in scales) else [float(v) for v in scales]

    def counts_into(self, a: int, b: int, out: np.ndarray) -> bool:
        """The int16 counts of grid samples ``a:b`` into ``out`` where every column is a
        channel whose full records cover ``a:b`` back to back (the common case); False, and
        ``out`` untouched, otherwise (then :meth:`read_into` gives the volts)."""
        views = self._contiguous(a, b)
        if views is None:
            return False
        for k, (samples, offset) in enumerate(views):
            column = out[:, k]
            if offset == 0 and samples.size == b - a:  # the block is whole records
                by_record = column.view()
                by_record.shape = samples.shape  # a view, or an error: never a copy
                by_record[...] = samples
            else:
                column[:] = samples.reshape(-1)[offset : offset + b - a]
        self._release()
        return True

    def _release(self) -> None:
        """Unmap the channel files' pages this block touched (see :mod:`ace_assets.io.pages`)."""
        for source in self.sources:
            release = getattr(source, "release", None)
            if release is not None:
                release()

    def _read_in_segment(self, a: int, b: int, s0: int, s1: int) -> np.ndarray:
        lo, hi = max(s0, a - self.margin), min(s1, b + self.margin)
        buf = np.zeros((hi - lo, len(self.sources)))
        present = np.zeros(buf.shape, dtype=bool)
        for k, source in enumerate(self.sources):
            source.place(lo, hi, buf[:, k], present[:, k])
        for k in range(buf.shape[1]):
            have = present[:, k]
            if have.all():
                continue
            if not have.any():
                buf[:, k] = np.nan
                continue
            fill_missing(buf[:, k], have)
        return buf[a - lo : b - lo]


def decimation_taps(fs_in: float, fs_out: float) -> np.ndarray:
    """The anti-alias FIR ``scipy.signal.resample_poly`` designs for ``fs_in -> fs_out``."""
    ratio = max(1, math.ceil(fs_in / fs_out - 1e-9))
    half = 10 * ratio
    return signal.firwin(2 * half + 1, fs_out / 2, window=("kaiser", 5.0), fs=fs_in)


def _mirror(idx: np.ndarray, a: int, b: int) -> np.ndarray:
    """Indices reflected into ``[a, b)`` (mirror about the edge samples, repeated)."""
    n = b - a
    if n == 1:
        return np.full(idx.shape, a)
    period = 2 * (n - 1)
    k = np.mod(idx - a, period)
    return a + np.where(k < n, k, period - k)


class ResampledSource:
    """A channel of another rate, on this grid: FIR low-pass evaluated at the nearest native
    sample to each grid time (polyphase decimation; time error under half a native sample)."""

    def __init__(
        self,
        native: GridReader,
        column: int,
        native_clock: SampleClock,
        grid_clock: SampleClock,
        coverage: tuple[np.ndarray, np.ndarray],
    ) -> None:
        self.native = native
        self.column = column
        self.native_clock = native_clock
        self.grid_clock = grid_clock
        self.cov_start, self.cov_stop = coverage
        self.taps = decimation_taps(native_clock.fs, grid_clock.fs)
        self.half = (self.taps.size - 1) // 2
        self.max_offset_us = 0.0

    def place(self, a: int, b: int, out: np.ndarray, present: np.ndarray) -> None:
        k0 = max(0, int(np.searchsorted(self.cov_stop, a, side="right")))
        k1 = int(np.searchsorted(self.cov_start, b, side="left"))
        for s, e in zip(self.cov_start[k0:k1].tolist(), self.cov_stop[k0:k1].tolist(), strict=True):
            lo, hi = max(a, s), min(b, e)
            if hi <= lo:
                continue
            t = self.grid_clock.times(lo, hi)
            pos = self.native_clock.position(t)
            ok = np.isfinite(pos)
            if not ok.any():
                continue
            near = np.rint(pos[ok]).astype(np.int64)
            self.max_offset_us = max(
                self.max_offset_us, float(np.abs(pos[ok] - near).max() * 1e6 / self.native_clock.fs)
            )
            values = self._filtered_at(near)
            where = np.flatnonzero(ok) + (lo - a)
            out[where] = values
            present[where] = np.isfinite(values)

    def _filtered_at(self, near: np.ndarray) -> np.ndarray:
        out = np.empty(near.size)
        seg_a, seg_b = self.native.segment_of(int(near[0]))
        if near[-1] >= seg_b:  # spans native segments: one evaluation per segment
            cut = int(np.searchsorted(near, seg_b))
            out[:cut] = self._filtered_at(near[:cut])
            out[cut:] = self._filtered_at(near[cut:])
            return out
        lo, hi = int(near[0]) - self.half, int(near[-1]) + self.half + 1
        want = _mirror(np.arange(lo, hi), seg_a, seg_b)
        r0, r1 = int(want.min()), int(want.max()) + 1
        block = self.native.read(r0, r1)[:, self.column][want - r0]
        smooth = signal.oaconvolve(block, self.taps, mode="valid")
        return smooth[near - int(near[0])]
