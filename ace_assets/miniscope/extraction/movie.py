"""Frame access for extraction: streamed float32 blocks, a sanity scan, and the init cache.

Why a reader of our own for stores: ``ArrayStore.read`` slices a memory map, and every page
touched stays resident (and counted in the process RSS) until the kernel needs it, so a
20 GB movie read once through a map looks like a 20 GB process. For ``.npyd`` stores we
read frame ranges with ordinary file reads instead; anything else with ``.shape`` and
``.read(a, b)`` (or a plain ndarray) is used as it is.

The initialisation movie (temporally binned by ``tsub``, spatially by ``ssub``) is written
once to a temporary *tiled* file: tile ``(i, j)`` holds all its frames contiguously, so
reading a spatial patch over all frames or all pixels over a range of frames are both a
few large sequential reads, and neither keeps more than one block in memory.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ace_assets.errors import AceInputError
from ace_assets.io.page_range import release_rows
from ace_assets.io.row_file import pread_into, pwrite_all
from ace_assets.io.threads import MapFn, ordered_map

from .summary_images import cnmfe_filter


class NpyFrames:
    """Read-only frame ranges of a ``.npy`` file by file reads (no memory map)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            self._offset = fh.tell()
        if fortran:
            raise AceInputError("expected a C-ordered movie array", file=self.path)
        self.shape = tuple(int(v) for v in shape)
        self.dtype = np.dtype(dtype)
        self._frame_items = int(np.prod(self.shape[1:]))

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self.shape[0] if stop is None else min(stop, self.shape[0])
        start = max(0, start)
        n = max(0, stop - start)
        with open(self.path, "rb") as fh:
            fh.seek(self._offset + start * self._frame_items * self.dtype.itemsize)
            data = np.fromfile(fh, dtype=self.dtype, count=n * self._frame_items)
        return data.reshape((n, *self.shape[1:]))


class ArrayMovie:
    """An in-memory (T, H, W) array with the store interface."""

    def __init__(self, array: np.ndarray) -> None:
        self._a = array
        self.shape = tuple(array.shape)
        self.dtype = array.dtype

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return np.asarray(self._a[start:stop])


def as_movie(obj: Any) -> Any:
    """Adapt an ndarray, an ArrayStore or any ``.shape``/``.read`` object for streaming."""
    if isinstance(obj, np.ndarray):
        if obj.ndim != 3:
            raise AceInputError(f"expected a (frames, height, width) movie, got shape {obj.shape}")
        return ArrayMovie(obj)
    path = getattr(obj, "path", None)
    if path is not None and (Path(path) / "data.npy").is_file():
        return NpyFrames(Path(path) / "data.npy")
    if not hasattr(obj, "shape") or not hasattr(obj, "read"):
        raise AceInputError(
            f"expected a movie array or store with .shape and .read(a, b), got {type(obj)}"
        )
    if len(obj.shape) != 3:
        raise AceInputError(f"expected a (frames, height, width) movie, got shape {obj.shape}")
    return obj


def movie_fps(obj: Any) -> float | None:
    """Frame rate from store metadata, if it carries one."""
    meta = getattr(obj, "meta", None) or {}
    for key in ("fps", "frame_rate", "frameRate", "sampling_rate"):
        val = meta.get(key)
        if isinstance(val, (int, float)) and val > 0:
            return float(val)
        if isinstance(val, str):
            txt = val.lower().replace("fps", "").strip()
            try:
                f = float(txt)
            except ValueError:
                continue
            if f > 0:
                return f
    return None


class FloatFrames:
    """Float32 frame blocks of a movie, with NaNs optionally replaced by a fill image."""

    def __init__(self, movie: Any, fill: np.ndarray | None = None) -> None:
        self.movie = movie
        self.shape = tuple(int(v) for v in movie.shape)
        self.fill = fill

    @property
    def n_frames(self) -> int:
        return self.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.as_float(self.movie.read(start, stop))

    def as_float(self, raw: Any) -> np.ndarray:
        """A block as the movie returned it, as these frames give it."""
        block = np.asarray(raw, dtype=np.float32)
        if block.ndim == 4:  # (n, H, W, 3) grey stored as colour: use one channel
            block = block[..., 0]
        if self.fill is not None:
            bad = ~np.isfinite(block)
            if bad.any():
                block[bad] = np.broadcast_to(self.fill, block.shape)[bad]
        return block

    def chunks(self, chunk: int) -> Iterator[tuple[int, np.ndarray]]:
        for a in range(0, self.n_frames, chunk):
            yield a, self.read(a, min(a + chunk, self.n_frames))


@dataclass
class MovieStats:
    """One streamed pass over the movie: what extraction must know before it starts."""

    n_frames: int
    dims: tuple[int, int]
    mean: np.ndarray  # (H, W) float64, NaN-aware
    frame_mean: np.ndarray  # (T,) float64
    vmin: float
    vmax: float
    nan_frames: np.ndarray  # indices of frames holding any NaN/inf
    warnings: list[str] = field(default_factory=list)

    @property
    def constant(self) -> bool:
        return not (self.vmax > self.vmin)


@dataclass
class _ChunkStats:
    """One chunk's share of :class:`MovieStats`, summed in chunk order by :func:`scan_movie`."""

    start: int
    total: np.ndarray
    count: np.ndarray | int
    frame_mean: np.ndarray
    vmin: float
    vmax: float
    bad: np.ndarray


def _scan_chunk(
    movie: Any, dims: tuple[int, int], source: str | None, a: int, b: int
) -> _ChunkStats:
    return chunk_stats(np.asarray(movie.read(a, b)), dims, source, a, b)


def chunk_stats(
    block: np.ndarray, dims: tuple[int, int], source: str | None, a: int, b: int
) -> _ChunkStats:
    """The :class:`MovieStats` share of frames ``a:b``, given as read from the movie."""
    h, w = dims
    if block.ndim == 4:
        block = block[..., 0]
    if block.shape[1:] != (h, w) or block.shape[0] != b - a:
        raise AceInputError(
            f"frames {a}..{b} came back with shape {block.shape}, expected ({b - a}, {h}, {w})",
            file=source,
        )
    if np.issubdtype(block.dtype, np.floating):
        finite = np.isfinite(block)
        bad = ~finite.all(axis=(1, 2))
        if bad.any():
            vals = np.where(finite, block, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                means = vals.sum(axis=(1, 2), dtype=np.float64) / np.maximum(
                    finite.sum(axis=(1, 2)), 1
                )
            lo, hi = (
                (float(block[finite].min()), float(block[finite].max()))
                if finite.any()
                else (np.inf, -np.inf)
            )
            return _ChunkStats(
                a,
                vals.sum(axis=0, dtype=np.float64),  # float64 as below (np.where kept float32)
                finite.sum(axis=0),
                means,
                lo,
                hi,
                a + np.flatnonzero(bad),
            )
    return _ChunkStats(
        a,
        block.sum(axis=0, dtype=np.float64),
        b - a,
        block.reshape(b - a, -1).mean(axis=1, dtype=np.float64),
        float(block.min()),
        float(block.max()),
        np.zeros(0, dtype=np.int64),
    )


class StatsSum:
    """Chunk statistics added in frame order, so the sums do not depend on the threads."""

    def __init__(self, t: int, dims: tuple[int, int], source: str | None = None) -> None:
        if t < 1:
            raise AceInputError("the movie has no frames", file=source)
        self.t, self.dims = t, dims
        self.total = np.zeros(dims, dtype=np.float64)
        self.count = np.zeros(dims, dtype=np.float64)
        self.frame_mean = np.zeros(t, dtype=np.float64)
        self.vmin, self.vmax = np.inf, -np.inf
        self.nan_frames: list[np.ndarray] = []

    def add(self, part: _ChunkStats) -> None:
        self.total += part.total
        self.count += part.count
        self.frame_mean[part.start : part.start + len(part.frame_mean)] = part.frame_mean
        self.vmin, self.vmax = min(self.vmin, part.vmin), max(self.vmax, part.vmax)
        if len(part.bad):
            self.nan_frames.append(part.bad)

    def result(self) -> MovieStats:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self.count > 0, self.total / np.maximum(self.count, 1), np.nan)
        if not np.isfinite(mean).all():
            fallback = float(np.nanmean(mean)) if np.isfinite(mean).any() else 0.0
            mean = np.where(np.isfinite(mean), mean, fallback)
        nan_idx = (
            np.concatenate(self.nan_frames) if self.nan_frames else np.zeros(0, dtype=np.int64)
        )
        return MovieStats(
            n_frames=self.t,
            dims=self.dims,
            mean=mean,
            frame_mean=self.frame_mean,
            vmin=float(self.vmin) if np.isfinite(self.vmin) else 0.0,
            vmax=float(self.vmax) if np.isfinite(self.vmax) else 0.0,
            nan_frames=nan_idx.astype(np.int64),
        )


def scan_movie(movie: Any, chunk: int, *, source: str | None = None) -> MovieStats:
    """Mean image, per-frame means, value range and non-finite frames, in one pass.

    Quarter chunks are read and reduced on threads
    (:func:`~ace_assets.io.threads.ordered_map`) and their sums added here in frame order,
    so the result does not depend on the thread count.
    """
    t, h, w = (int(v) for v in movie.shape[:3])
    stats = StatsSum(t, (h, w), source)
    step = max(1, chunk // 4)  # four pieces in flight hold one chunk
    ranges = [(a, min(a + step, t)) for a in range(0, t, step)]
    for part in ordered_map(lambda r: _scan_chunk(movie, (h, w), source, *r), ranges):
        stats.add(part)
    return stats.result()


def describe_frames(idx: np.ndarray, limit: int = 20) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:limit])
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return f"{shown}{more}"


def block_reduce_mean(
    block: np.ndarray,
    f: int,
    map_fn: MapFn = map,
    group: int = 16,
) -> np.ndarray:
    """Mean-pool the last two axes by ``f`` (edges padded by repetition).

    Frames are pooled in groups of ``group`` through ``map_fn`` (a thread pool's map: each
    group writes only its own frames, so the result does not depend on it)."""
    if f == 1:
        return block
    *lead, h, w = block.shape
    hp, wp = -(-h // f) * f, -(-w // f) * f
    if (hp, wp) != (h, w):
        pad = [(0, 0)] * len(lead) + [(0, hp - h), (0, wp - w)]
        block = np.pad(block, pad, mode="edge")
    flat = np.ascontiguousarray(block, dtype=np.float32).reshape(-1, hp, wp)
    out = np.empty((flat.shape[0], hp // f, wp // f), dtype=np.float32)

    def pool(frames: range) -> None:
        for i in frames:  # INTER_AREA with an integer factor is the block mean
            out[i] = cv2.resize(flat[i], (wp // f, hp // f), interpolation=cv2.INTER_AREA)

    n = flat.shape[0]
    for _ in map_fn(pool, (range(a, min(a + group, n)) for a in range(0, n, group))):
        pass
    return out.reshape(*lead, hp // f, wp // f)


def bin_mean(x: np.ndarray, k: int, axis: int = 0) -> np.ndarray:
    """Means of ``k`` consecutive entries along ``axis`` (the last group may be shorter),
    float32: the initialisation movie's frames, its traces, the ring fit's frames.

    Summed one strided slice at a time into one output, as numpy's mean over that axis sums
    (equal to it bit for bit), without its temporary copies: 2x faster on frames.
    """
    y = np.moveaxis(np.asarray(x), axis, 0)
    n = y.shape[0]
    if n == 0:
        return np.moveaxis(np.zeros((0, *y.shape[1:]), np.float32), 0, axis)
    k = max(int(k), 1)
    groups = -(-n // k)
    # numpy sums float32 in float32 and everything else in float64
    out = np.empty((groups, *y.shape[1:]), np.float32 if y.dtype == np.float32 else np.float64)
    full = n // k
    if full:
        body = out[:full]
        if k == 1:
            np.copyto(body, y[:full])
        else:
            np.add(y[0 : full * k : k], y[1 : full * k : k], out=body, dtype=body.dtype)
            for i in range(2, k):
                body += y[i : full * k : k]
            body /= k
    if n % k:
        out[full] = y[full * k :].mean(axis=0)
    return np.moveaxis(out.astype(np.float32, copy=False), 0, axis)


class TiledCache:
    """A (T, H, W) float32 movie on disk in tiles: fast patch-over-time and frame-range reads.

    Written with file writes. A patch is copied straight out of a read-only mapping of the
    file (one copy, where ``np.fromfile`` copied each tile twice: 1.4-2x faster), whose
    pages are released after each read, so the resident set stays at one read block; a
    range of whole frames is read tile by tile with ``pread`` (see :meth:`read`).
    Memory: one read block; disk: ``T * H * W * 4`` bytes in ``workdir`` (deleted by
    :meth:`close`).
    """

    def __init__(self, shape: tuple[int, int, int], tile: int, workdir: str | Path | None):
        self.shape = tuple(int(v) for v in shape)
        t, h, w = self.shape
        self.tile = int(max(8, min(tile, max(h, w))))
        self.nty = -(-h // self.tile)
        self.ntx = -(-w // self.tile)
        self._dir = tempfile.mkdtemp(prefix="cnmfe-init-", dir=workdir)
        self.path = Path(self._dir) / "init_movie.f32"
        self._tile_items = t * self.tile * self.tile
        with open(self.path, "wb") as fh:
            fh.truncate(self.nty * self.ntx * self._tile_items * 4)
        self._map: np.memmap | None = None
        self._map_lock = threading.Lock()

    @property
    def n_frames(self) -> int:
        return self.shape[0]

    def _tile_offset(self, i: int, j: int, t0: int) -> int:
        base = (i * self.ntx + j) * self._tile_items
        return (base + t0 * self.tile * self.tile) * 4

    def write(self, t0: int, block: np.ndarray) -> None:
        """Store frames ``t0 : t0 + len(block)``.

        The block is copied once, into tile order (the whole tiles in one strided copy, the
        edge tiles zero-padded), and each tile's frames go to the file in one ``pwrite``.
        """
        n, h, w = block.shape
        s = self.tile
        tiles = np.empty((self.nty, self.ntx, n, s, s), dtype=np.float32)
        fy, fx = h // s, w // s  # whole tiles along each axis
        whole = block[:, : fy * s, : fx * s].reshape(n, fy, s, fx, s)
        tiles[:fy, :fx] = whole.transpose(1, 3, 0, 2, 4)
        for i in range(self.nty):
            for j in range(self.ntx):
                if i < fy and j < fx:
                    continue
                tile = tiles[i, j]
                yb, xb = min(s, h - i * s), min(s, w - j * s)
                tile[...] = 0.0
                tile[:, :yb, :xb] = block[:, i * s : i * s + yb, j * s : j * s + xb]
        fd = os.open(self.path, os.O_WRONLY)
        try:
            for i in range(self.nty):
                for j in range(self.ntx):
                    pwrite_all(fd, tiles[i, j], self._tile_offset(i, j, t0))
        finally:
            os.close(fd)

    def _tiles(self) -> np.memmap:
        """The file as (tile, frame, row, column), mapped read-only (tile ``i * ntx + j``)."""
        with self._map_lock:  # patches are read on several threads
            if self._map is None:
                t, s = self.shape[0], self.tile
                self._map = np.memmap(
                    self.path, np.float32, "r", shape=(self.nty * self.ntx, t, s, s)
                )
            return self._map

    def read_patch(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """All frames of the rectangle ``[y0:y1, x0:x1]`` as (T, y1-y0, x1-x0) float32."""
        t = self.shape[0]
        s = self.tile
        tiles = self._tiles()
        out = np.empty((t, y1 - y0, x1 - x0), dtype=np.float32)
        j0, j1 = x0 // s, -(-x1 // s)
        for i in range(y0 // s, -(-y1 // s)):
            for j in range(j0, j1):
                ty0, tx0 = i * s, j * s
                ya, yb = max(y0, ty0), min(y1, ty0 + s)
                xa, xb = max(x0, tx0), min(x1, tx0 + s)
                out[:, ya - y0 : yb - y0, xa - x0 : xb - x0] = tiles[
                    i * self.ntx + j, :, ya - ty0 : yb - ty0, xa - tx0 : xb - tx0
                ]
            release_rows(tiles, i * self.ntx + j0, i * self.ntx + j1)
        return out

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` (all pixels).

        Each tile's frames are one ``pread`` into a small buffer, then copied into place:
        where copying out of the mapping faulted in every page of the range first (2.2x
        the CPU: 166 against 77 ms for 100 frames of 608 x 608 in 20 px tiles)."""
        t, h, w = self.shape
        stop = min(stop, t)
        n = max(stop - start, 0)
        s = self.tile
        out = np.empty((n, h, w), dtype=np.float32)  # contiguous: callers reshape it freely
        if n == 0:
            return out
        buf = np.empty((n, s, s), dtype=np.float32)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for i in range(self.nty):
                for j in range(self.ntx):
                    pread_into(fd, buf, self._tile_offset(i, j, start))
                    yb, xb = min(s, h - i * s), min(s, w - j * s)
                    out[:, i * s : i * s + yb, j * s : j * s + xb] = buf[:, :yb, :xb]
        finally:
            os.close(fd)
        return out

    def chunks(self, chunk: int) -> Iterator[tuple[int, np.ndarray]]:
        for a in range(0, self.n_frames, chunk):
            yield a, self.read(a, min(a + chunk, self.n_frames))

    def close(self) -> None:
        self._map = None  # the mapping closes with its last view
        try:
            os.remove(self.path)
        except OSError:
            pass
        try:
            os.rmdir(self._dir)
        except OSError:
            pass


#: one tile visited (a seek and a read call), in bytes read that take as long
_TILE_VISIT_BYTES = 32768


def patch_cache_tile(
    shape: tuple[int, int, int],
    windows: list[tuple[int, ...]],
    chunk: int,
    largest: int,
    smallest: int = 8,
) -> int:
    """Tile side of the (T, H, W) initialisation cache that reads the seeding patches cheapest.

    A patch read takes every tile it touches whole, so tiles much larger than the patches
    read their data many times over (128 px tiles under 80 px patches: ~10x, 26 GB for a
    608 x 608 x 500 init movie), while tiny tiles cost a visit each, in patch reads and in
    the whole-frame reads of ``chunk`` frames (ring fits, passes). Sides from ``smallest``
    to ``largest`` are tried; ties go to the larger side.
    """
    t, h, w = shape
    best, best_cost = largest, math.inf
    for side in range(max(smallest, 4), max(largest, smallest) + 1):
        cost = 0.0
        for y0, y1, x0, x1, *_ in windows:
            n_tiles = (-(-y1 // side) - y0 // side) * (-(-x1 // side) - x0 // side)
            cost += n_tiles * (side * side * 4 * t + _TILE_VISIT_BYTES)
        cost += -(-h // side) * -(-w // side) * -(-t // chunk) * _TILE_VISIT_BYTES
        if cost <= best_cost:
            best, best_cost = side, cost
    return best


def build_init_cache(
    frames: FloatFrames,
    *,
    tsub: int,
    ssub: int,
    chunk: int,
    tile: int,
    workdir: str | Path | None,
    kernel: np.ndarray | None = None,
    stats: StatsSum | None = None,
    source: str | None = None,
) -> tuple[TiledCache, TiledCache | None]:
    """Bin the movie by ``tsub`` frames and ``ssub`` x ``ssub`` pixels into a TiledCache;
    with ``kernel``, also the binned frames spatially filtered whole (second cache), so
    patches need not filter their overlaps again and see no patch-edge effects.

    ``stats``: also add each block's :func:`chunk_stats` to it, so the movie is read once
    for both (a non-finite value then reaches the caches as it is: see ``stats.nan_frames``).

    Quarter chunks are read, binned, filtered and written to their own places in the
    caches on threads (:func:`~ace_assets.io.threads.ordered_map`); every binned frame is
    the mean of its own ``tsub`` frames, so the caches do not depend on the threads.
    """
    t, h, w = frames.shape
    t_init = -(-t // tsub)
    hs, ws = -(-h // ssub), -(-w // ssub)
    cache = TiledCache((t_init, hs, ws), tile, workdir)
    fcache = TiledCache((t_init, hs, ws), tile, workdir) if kernel is not None else None
    step = max(tsub, (max(1, chunk // 4) // tsub) * tsub)
    smooth = None if kernel is None else cnmfe_filter((hs, ws), kernel)  # one for every part

    def bin_part(a: int) -> _ChunkStats | None:
        b = min(a + step, t)
        part = None
        if stats is None:
            block = frames.read(a, b)
        else:
            raw = np.asarray(frames.movie.read(a, b))
            part = chunk_stats(raw, (h, w), source, a, b)
            block = frames.as_float(raw)
        binned = bin_mean(block_reduce_mean(block, ssub), tsub)
        cache.write(a // tsub, binned)
        if fcache is not None and smooth is not None:
            fcache.write(a // tsub, smooth.apply_frames(binned))
        return part

    try:
        for part in ordered_map(bin_part, range(0, t, step)):
            if stats is not None and part is not None:
                stats.add(part)
    except BaseException:
        close_caches(cache, fcache)
        raise
    return cache, fcache


def close_caches(*caches: TiledCache | None) -> None:
    """Close (delete) each cache given; None stands for one that was not built."""
    for cache in caches:
        if cache is not None:
            cache.close()
