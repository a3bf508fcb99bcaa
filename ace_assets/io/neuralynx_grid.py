"""One sample grid for the channels of a line, built from their record timestamps.

Why: real sessions have pauses (Cheetah stopped, dropped buffers, records with fewer valid
samples) and channels whose pauses differ. Filtering each piece with a short pad rings after
every pause, and refusing channels with different structures loses the session. So:

- Records of same-rate channels that start within half a sample of each other are one grid
  record (channels of one acquisition system share record timestamps); the grid record is as
  long as the longest of them. Consecutive grid records are contiguous when the next one
  starts within ``tolerance_us`` (default one sample, neo's rule) of where the previous ends.
- A pause up to ``max_fill_s`` becomes grid samples (a fill piece, its time continuing at the
  nominal rate); a longer one is a segment boundary: nothing crosses it.
- Per channel, grid samples without a recorded sample are *missing*. A missing run up to
  ``max_fill_s`` is filled by linear interpolation (held flat at a segment edge) and listed;
  a longer run becomes a segment of its own, NaN for that channel (cut at both ends, so a
  filter never sees a step).

Times: :class:`SampleClock` gives every grid sample's time from the record timestamps
(exact: the small drift between nominal rate and acquisition clock is honoured).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ace_assets.errors import AceInputError
from ace_assets.io.neuralynx_records import ChannelRecords


@dataclass
class SampleClock:
    """Time of every sample from per-record timestamps (compact: one entry per record).

    ``record_first_index[r]`` is the global sample index of record r's first sample;
    ``record_timestamp_us[r]`` its timestamp. Seconds are relative to ``origin_us``.
    """

    fs: float
    origin_us: int
    record_first_index: np.ndarray  # int64, increasing
    record_timestamp_us: np.ndarray  # int64
    n_samples: int

    def times(self, start: int, stop: int) -> np.ndarray:
        """Seconds (from ``origin_us``) of global samples ``start:stop``."""
        return self.times_of(np.arange(start, stop, dtype=np.int64))

    def times_of(self, idx: np.ndarray) -> np.ndarray:
        """Seconds of arbitrary sample indices."""
        idx = np.asarray(idx, dtype=np.int64)
        rec = np.searchsorted(self.record_first_index, idx, side="right") - 1
        rec = np.clip(rec, 0, None)
        offset = (idx - self.record_first_index[rec]) * (1e6 / self.fs)
        return ((self.record_timestamp_us[rec] - self.origin_us) + offset) / 1e6

    def position(self, times_s: np.ndarray) -> np.ndarray:
        """Fractional sample index of each time; NaN outside the recording or in a gap
        (more than one sample period after the last sample of a record)."""
        t_us = np.asarray(times_s, dtype=np.float64) * 1e6 + self.origin_us
        rec = np.searchsorted(self.record_timestamp_us, t_us, side="right") - 1
        ok = rec >= 0
        rec = np.clip(rec, 0, None)
        first = self.record_first_index[rec]
        stops = np.append(self.record_first_index[1:], self.n_samples)[rec]
        frac = first + (t_us - self.record_timestamp_us[rec]) * (self.fs / 1e6)
        ok &= (frac <= stops) & (frac <= self.n_samples - 1)
        return np.where(ok, frac, np.nan)

    def index_at_or_after(self, times_s: np.ndarray) -> np.ndarray:
        """First sample index whose time is >= each time (``n_samples`` if none)."""
        t = np.atleast_1d(np.asarray(times_s, dtype=np.float64))
        rec_t = (self.record_timestamp_us - self.origin_us) / 1e6
        rec = np.clip(np.searchsorted(rec_t, t, side="right") - 1, 0, None)
        stops = np.append(self.record_first_index[1:], self.n_samples)
        k = np.ceil((t - rec_t[rec]) * self.fs - 1e-9).astype(np.int64)
        idx = self.record_first_index[rec] + np.clip(k, 0, None)
        # past this record's end: the next record's first sample
        return np.where(idx < stops[rec], idx, stops[rec])

    def save(self, path: str | Path) -> None:
        np.savez(
            path,
            fs=np.float64(self.fs),
            origin_us=np.int64(self.origin_us),
            record_first_index=self.record_first_index,
            record_timestamp_us=self.record_timestamp_us,
            n_samples=np.int64(self.n_samples),
        )


def load_clock(store_path: str | Path) -> SampleClock:
    """The sample clock saved beside a store (``clock.npz``)."""
    with np.load(Path(store_path) / "clock.npz", allow_pickle=False) as z:
        return SampleClock(
            fs=float(z["fs"]),
            origin_us=int(z["origin_us"]),
            record_first_index=z["record_first_index"],
            record_timestamp_us=z["record_timestamp_us"],
            n_samples=int(z["n_samples"]),
        )


def _complement(starts: np.ndarray, stops: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Ranges of ``[0, n)`` not covered by sorted, disjoint ``[starts, stops)``."""
    s = np.concatenate([[0], stops]).astype(np.int64)
    e = np.concatenate([starts, [n]]).astype(np.int64)
    keep = e > s
    return s[keep], e[keep]


def _split(starts: np.ndarray, stops: np.ndarray, cuts: np.ndarray) -> list[tuple[int, int]]:
    """Split ranges at cut indices."""
    out: list[tuple[int, int]] = []
    for s, e in zip(starts.tolist(), stops.tolist(), strict=True):
        inner = cuts[(cuts > s) & (cuts < e)].tolist()
        bounds = [s, *inner, e]
        out.extend(zip(bounds[:-1], bounds[1:], strict=True))
    return out


@dataclass
class SampleGrid:
    """The grid of one rate: pieces, segments, and each channel's filled and NaN runs."""

    fs: float
    clock: SampleClock
    segments: list[tuple[int, int]]
    pauses: list[dict[str, Any]]
    filled: list[list[tuple[int, int]]] = field(default_factory=list)
    masked: list[list[tuple[int, int]]] = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        return self.clock.n_samples

    def segment_bounds(self) -> np.ndarray:
        return np.array([a for a, _ in self.segments[1:]], dtype=np.int64)


def build_grid(
    channels: list[ChannelRecords],
    fs: float,
    *,
    origin_us: int,
    max_fill_s: float,
    tolerance_us: float | None = None,
    extra_coverage: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> SampleGrid:
    """Grid of the record channels (all at ``fs``); sets each channel's ``grid_start``.

    ``extra_coverage``: grid index ranges held by further channels (resampled from another
    rate) that take part in the fill / NaN rules but do not shape the grid.
    """
    period_us = 1e6 / fs
    tol = period_us if tolerance_us is None else float(tolerance_us)
    max_fill = int(np.floor(max_fill_s * fs + 1e-9))
    shared = all(c.timestamps_us is channels[0].timestamps_us for c in channels)
    if shared:  # one record table for all (the usual case): no sorting, one grid_start
        cl_ts = channels[0].timestamps_us
        cl_n = channels[0].nb_valid.astype(np.int64)
        for c in channels[1:]:
            np.maximum(cl_n, c.nb_valid, out=cl_n)
        placed = _place(cl_ts, cl_n, fs, tol, max_fill_s)
        for ch in channels:
            ch.grid_start = placed.first
    else:
        all_ts = np.concatenate([c.timestamps_us for c in channels])
        order = np.argsort(all_ts, kind="stable")
        sts = all_ts[order]
        new = np.concatenate([[True], np.diff(sts) > period_us / 2])
        heads = np.flatnonzero(new)
        cl_ts = sts[heads]
        all_nv = np.concatenate([c.nb_valid for c in channels]).astype(np.int64)
        cl_n = np.maximum.reduceat(all_nv[order], heads)
        del all_nv
        cluster = np.empty(order.size, dtype=np.int64)
        cluster[order] = np.cumsum(new) - 1
        del all_ts, order, sts, new
        placed = _place(cl_ts, cl_n, fs, tol, max_fill_s)
        lo = 0
        for ch in channels:
            ids = cluster[lo : lo + ch.n_records]
            lo += ch.n_records
            if np.any(np.diff(ids) == 0):
                raise AceInputError("two records start within half a sample", file=ch.path)
            ch.grid_start = placed.first[ids]
    first, n_total = placed.first, placed.n_total

    # clock: cluster pieces plus fill pieces (time continuing at the nominal rate); in the
    # usual case (no fill, no empty record) the arrays are the record tables themselves
    has_fill = placed.n_fill > 0
    empty = cl_n == 0
    if has_fill.any() or empty.any():
        piece_first = np.concatenate([first[~empty], placed.end[has_fill]])
        piece_ts = np.concatenate([cl_ts[~empty], np.rint(placed.end_us[has_fill])])
        o = np.argsort(piece_first, kind="stable")
        piece_first, piece_ts = piece_first[o], piece_ts[o].astype(np.int64)
    else:
        piece_first, piece_ts = first, cl_ts
    clock = SampleClock(fs, int(origin_us), piece_first, piece_ts, n_total)
    pauses = [
        {
            "start_s": float((end_us - origin_us) / 1e6),
            "duration_s": float(gap / 1e6),
            "sample_index": int(end + k),
            "filled": bool(k > 0),
            "filled_samples": int(k),
        }
        for end, end_us, gap, k in zip(
            placed.end.tolist(),
            placed.end_us.tolist(),
            placed.gap_us.tolist(),
            placed.n_fill.tolist(),
            strict=True,
        )
    ]
    for p in pauses:  # a filled pause starts where its fill starts
        if p["filled"]:
            p["sample_index"] -= p["filled_samples"]
    stream_cuts = [p["sample_index"] for p in pauses if not p["filled"]]
    coverage = [c.present_intervals() for c in channels] + list(extra_coverage or [])
    cuts = set(stream_cuts)
    for starts, stops in coverage:  # missing runs longer than max_fill become their own segments
        ms, me = _complement(starts, stops, n_total)
        for s, e in _split(ms, me, np.array(sorted(cuts), dtype=np.int64)):
            if e - s > max_fill:
                cuts.update(x for x in (s, e) if 0 < x < n_total)
    bounds = [0, *sorted(cuts), n_total]
    segments = list(zip(bounds[:-1], bounds[1:], strict=True))
    cut_arr = np.array(sorted(cuts), dtype=np.int64)
    seg_set = set(segments)
    filled: list[list[tuple[int, int]]] = []
    masked: list[list[tuple[int, int]]] = []
    for starts, stops in coverage:
        ms, me = _complement(starts, stops, n_total)
        runs = _split(ms, me, cut_arr)
        masked.append([r for r in runs if r in seg_set])
        filled.append([r for r in runs if r not in seg_set])
    return SampleGrid(fs, clock, segments, pauses, filled, masked)


@dataclass
class _Placement:
    """Where each grid record (cluster) starts; the pauses after clusters, sparsely."""

    first: np.ndarray  # grid index of each cluster's first sample
    n_total: int
    after: np.ndarray  # clusters followed by a pause
    end: np.ndarray  # grid index where the coverage ends before that pause
    end_us: np.ndarray  # time (µs) there
    gap_us: np.ndarray  # the pause's length
    n_fill: np.ndarray  # fill samples inserted for it (0: a segment boundary)


def _place(
    cl_ts: np.ndarray, cl_n: np.ndarray, fs: float, tol: float, max_fill_s: float
) -> _Placement:
    """Grid positions of the clusters: contiguous ones follow on, pauses are filled or cut,
    a record starting inside another channel's record lands at its offset in samples.

    Memory is one int64 per record plus per pause: it grows with the recording only as
    its record index does."""
    period = 1e6 / fs
    gap = np.diff(cl_ts) - cl_n[:-1] * period
    if not np.any(gap < -tol):  # the usual case: records of all channels line up
        after = np.flatnonzero(gap > tol)
        gap_us = gap[after]
        del gap
        fill = gap_us <= max_fill_s * 1e6
        n_fill = np.where(fill, np.maximum(np.rint(gap_us / period), 1), 0).astype(np.int64)
        first = np.empty(cl_n.size, dtype=np.int64)
        first[0] = 0
        np.cumsum(cl_n[:-1], out=first[1:])
        for i, k in zip(after.tolist(), n_fill.tolist(), strict=True):
            if k:
                first[i + 1 :] += k
        end = first[after] + cl_n[after]
        end_us = cl_ts[after] + cl_n[after] * period
        return _Placement(first, int(first[-1] + cl_n[-1]), after, end, end_us, gap_us, n_fill)
    n = cl_ts.size
    first = np.zeros(n, dtype=np.int64)
    pauses: list[tuple[int, int, float, float, int]] = []
    cover, cover_us = int(cl_n[0]), float(cl_ts[0] + cl_n[0] * period)
    for i in range(1, n):
        lag = float(cl_ts[i] - cover_us)  # µs after the coverage so far ends
        if lag > tol:
            k = max(1, int(round(lag / period))) if lag <= max_fill_s * 1e6 else 0
            pauses.append((i - 1, cover, cover_us, lag, k))
            first[i] = cover + k
        else:  # contiguous, or inside a record of another channel: its offset in samples
            first[i] = first[i - 1] + int(round((cl_ts[i] - cl_ts[i - 1]) / period))
        if first[i] + cl_n[i] > cover or lag > tol:
            cover = int(first[i] + cl_n[i])
            cover_us = float(cl_ts[i] + cl_n[i] * period)
    cols = list(zip(*pauses, strict=True)) if pauses else [[]] * 5
    return _Placement(
        first,
        int(cover),
        np.array(cols[0], dtype=np.int64),
        np.array(cols[1], dtype=np.int64),
        np.array(cols[2], dtype=np.float64),
        np.array(cols[3], dtype=np.float64),
        np.array(cols[4], dtype=np.int64),
    )


def coverage_from_times(
    clock: SampleClock, spans_s: list[tuple[float, float]], n_samples: int
) -> tuple[np.ndarray, np.ndarray]:
    """Grid index ranges whose sample times fall inside time spans ``[t0, t1]``."""
    if not spans_s:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    t0 = np.array([s for s, _ in spans_s])
    t1 = np.array([e for _, e in spans_s])
    a = clock.index_at_or_after(t0)
    b = clock.index_at_or_after(t1 + 1e-9)
    keep = b > a
    return a[keep].astype(np.int64), np.minimum(b[keep], n_samples).astype(np.int64)
