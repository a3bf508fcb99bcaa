"""Streamed CNMF-E updates: one pass over the frames feeds both the A and the C update.

A pass reads the movie in chunks of frames (all pixels x one chunk in memory). For each
chunk with the previous traces ``C``:

- background ``B = b0 + W (Y - A C - b0)`` (ring model), data ``R = Y - B``, never formed:
  the products are taken with ``Y - b0`` and the ring's share is subtracted through
  per-component box sums (:mod:`.pass_terms`);
- ``U_c[:, chunk] = A^T R`` — the temporal update needs only this (N x T, the size of the
  output traces) and ``A^T A``;
- for each spatial tile, ``U_a += R_tile^T C_local^T`` for the components allowed in the
  tile — the spatial (HALS) update of a pixel needs only its row of ``R C^T`` and
  ``C C^T``, so footprints are updated tile by tile, dense inside a tile;
- optionally the mean of ``R`` over each component's active frames (for ``r_values``).

Temporal update: block-coordinate over components (CaImAn's ``update_temporal``): the raw
trace ``c_k + (U_k - (A^T A)_k C) / ||a_k||^2`` is deconvolved (OASIS) into the new ``c_k``.
Spatial update: HALS (Cichocki; CNMF-E) restricted to a dilated neighbourhood of each
footprint and to ``gSiz`` around its centre.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np
import scipy.sparse as sp
from scipy import ndimage

from ace_assets.io.prefetch import prefetched
from ace_assets.io.threads import MapFn, frame_pool

from .background import RingModel
from .deconvolution import deconvolve
from .movie import block_reduce_mean
from .pass_terms import PassTerms

# ------------------------------------------------------------------ footprints


def footprint_centers(a: sp.csc_matrix, dims: tuple[int, int]) -> np.ndarray:
    """Centres of mass (y, x) of each column of a (pixels x N) footprint matrix."""
    h, w = dims
    n = a.shape[1]
    out = np.zeros((n, 2), dtype=np.float64)
    a = sp.csc_matrix(a)
    for k in range(n):
        rows = a.indices[a.indptr[k] : a.indptr[k + 1]]
        vals = a.data[a.indptr[k] : a.indptr[k + 1]].astype(np.float64)
        tot = vals.sum()
        if tot <= 0:
            out[k] = np.nan
            continue
        out[k, 0] = (rows // w * vals).sum() / tot
        out[k, 1] = (rows % w * vals).sum() / tot
    return out


def _column_image(a: sp.csc_matrix, k: int, dims: tuple[int, int]):
    """Column ``k`` as a small dense image: (image, y0, x0)."""
    h, w = dims
    rows = a.indices[a.indptr[k] : a.indptr[k + 1]]
    vals = a.data[a.indptr[k] : a.indptr[k + 1]]
    if len(rows) == 0:
        return None, 0, 0
    ys, xs = rows // w, rows % w
    y0, x0 = int(ys.min()), int(xs.min())
    img = np.zeros((int(ys.max()) - y0 + 1, int(xs.max()) - x0 + 1), dtype=np.float32)
    img[ys - y0, xs - x0] = vals
    return img, y0, x0


def allowed_masks(
    a: sp.csc_matrix,
    dims: tuple[int, int],
    centers: np.ndarray,
    *,
    dilate: int,
    max_radius: tuple[float, float],
) -> sp.csc_matrix:
    """Pixels each footprint may occupy next: its support dilated by ``dilate`` px, within an
    ellipse of semi-axes ``max_radius`` around its centre (pixels x N boolean)."""
    h, w = dims
    a = sp.csc_matrix(a)
    rows_all, cols_all = [], []
    se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
    ry, rx = max_radius
    for k in range(a.shape[1]):
        img, y0, x0 = _column_image(a, k, dims)
        if img is None:
            continue
        pad = dilate
        big = np.zeros((img.shape[0] + 2 * pad, img.shape[1] + 2 * pad), np.uint8)
        big[pad : pad + img.shape[0], pad : pad + img.shape[1]] = img > 0
        big = cv2.dilate(big, se)
        ys, xs = np.nonzero(big)
        ys = ys + y0 - pad
        xs = xs + x0 - pad
        cy, cx = centers[k]
        ok = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        ok &= ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1.0
        rows_all.append(ys[ok] * w + xs[ok])
        cols_all.append(np.full(int(ok.sum()), k))
    if rows_all:
        rows = np.concatenate(rows_all)
        cols = np.concatenate(cols_all)
    else:
        rows = cols = np.zeros(0, dtype=np.int64)
    m = sp.csc_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(h * w, a.shape[1]))
    return m


def clean_footprints(a: sp.csc_matrix, dims: tuple[int, int], energy: float = 0.99):
    """Keep each footprint's pixels holding ``energy`` of its squared mass, connected to
    the peak; returns the cleaned matrix (columns may become empty)."""
    a = sp.csc_matrix(a)
    h, w = dims
    rows_all, cols_all, vals_all = [], [], []
    for k in range(a.shape[1]):
        img, y0, x0 = _column_image(a, k, dims)
        if img is None or not np.any(img > 0):
            continue
        v = np.sort(img[img > 0].ravel())[::-1]
        cum = np.cumsum(v * v)
        thr_idx = int(np.searchsorted(cum, energy * cum[-1]))
        thr = v[min(thr_idx, len(v) - 1)]
        mask = img >= thr
        labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
        if n > 1:
            peak = np.unravel_index(int(np.argmax(img)), img.shape)
            mask = labels == labels[peak]
        ys, xs = np.nonzero(mask)
        rows_all.append((ys + y0) * w + xs + x0)
        cols_all.append(np.full(len(ys), k))
        vals_all.append(img[ys, xs])
    if rows_all:
        rows, cols, vals = (np.concatenate(x) for x in (rows_all, cols_all, vals_all))
    else:
        rows = cols = np.zeros(0, dtype=np.int64)
        vals = np.zeros(0, dtype=np.float32)
    return sp.csc_matrix((vals.astype(np.float32), (rows, cols)), shape=a.shape)


# ------------------------------------------------------------------ tiles


@dataclass
class Tile:
    y0: int
    y1: int
    x0: int
    x1: int
    comps: np.ndarray  # component indices allowed somewhere in the tile

    def pixels(self, w: int) -> np.ndarray:
        ys, xs = np.mgrid[self.y0 : self.y1, self.x0 : self.x1]
        return (ys * w + xs).ravel()


def make_tiles(mask: sp.csc_matrix, dims: tuple[int, int], size: int) -> list[Tile]:
    """Tiles of ``size`` pixels and the components whose allowed region touches each."""
    h, w = dims
    mask = sp.csr_matrix(mask)
    tiles = []
    for y0 in range(0, h, size):
        for x0 in range(0, w, size):
            y1, x1 = min(h, y0 + size), min(w, x0 + size)
            t = Tile(y0, y1, x0, x1, np.zeros(0, dtype=np.int64))
            sub = mask[t.pixels(w)]
            comps = np.unique(sub.indices)
            t.comps = comps.astype(np.int64)
            tiles.append(t)
    return tiles


# ------------------------------------------------------------------ the pass


@dataclass
class PassResult:
    u_c: np.ndarray  # (N, T) A^T (Y - B)
    u_a: list[np.ndarray]  # per tile (n_local, pixels_in_tile): C (Y - B)^T
    r_act: list[np.ndarray] | None  # per tile mean of (Y - B) over each comp's active frames
    background_mean: np.ndarray  # (T,) spatial mean of B per frame
    info: dict = field(default_factory=dict)


def component_regions(
    a: sp.csc_matrix, tiles: list[Tile], dims: tuple[int, int], mask: sp.csc_matrix | None
) -> np.ndarray:
    """(N, 4) full-resolution boxes ``(y0, y1, x0, x1)`` where a pass delivers each
    component's rows of ``C R^T``: its allowed pixels (``mask``) and its support, or, with
    no mask, every tile it is accumulated in."""
    h, w = dims
    n = a.shape[1]
    out = np.zeros((n, 4), dtype=np.int64)
    out[:, 0] = h
    out[:, 2] = w
    if mask is None:
        for t in tiles:
            k = t.comps
            out[k, 0] = np.minimum(out[k, 0], t.y0)
            out[k, 1] = np.maximum(out[k, 1], t.y1)
            out[k, 2] = np.minimum(out[k, 2], t.x0)
            out[k, 3] = np.maximum(out[k, 3], t.x1)
        return out
    both = sp.csc_matrix(sp.csc_matrix(mask, dtype=bool) + sp.csc_matrix(a != 0))
    for k in range(n):
        rows = both.indices[both.indptr[k] : both.indptr[k + 1]]
        if len(rows):
            ys, xs = rows // w, rows % w
            out[k] = (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)
        else:
            out[k] = (0, 0, 0, 0)
    return out


def _tile_covered(a: sp.csc_matrix, tiles: list[Tile], w: int) -> sp.csc_matrix:
    """``a`` without the pixels the tile products never see (outside every tile that lists
    the component), so the background terms subtract exactly what was accumulated."""
    a = sp.csc_matrix(a, dtype=np.float32, copy=True)
    rects: dict[int, list[Tile]] = {}
    for t in tiles:
        for k in t.comps:
            rects.setdefault(int(k), []).append(t)
    for k in range(a.shape[1]):
        lo, hi = a.indptr[k], a.indptr[k + 1]
        ys, xs = a.indices[lo:hi] // w, a.indices[lo:hi] % w
        seen = np.zeros(hi - lo, dtype=bool)
        for t in rects.get(k, []):
            seen |= (ys >= t.y0) & (ys < t.y1) & (xs >= t.x0) & (xs < t.x1)
        a.data[lo:hi][~seen] = 0
    a.eliminate_zeros()
    return a


def run_pass(
    chunks: Iterable[tuple[int, np.ndarray]],
    n_frames: int,
    a: sp.csc_matrix,
    c_prev: np.ndarray,
    ring: RingModel,
    tiles: list[Tile],
    *,
    mask: sp.csc_matrix | None = None,
    active: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> PassResult:
    """Stream the frames once; see the module docstring for what is accumulated.

    The background ``B`` is never formed: the tile products take ``Z = Y - b0`` and the
    ring's share is folded into per-component box sums (:mod:`.pass_terms`), taken on the
    next chunk while this chunk's tile products run; both split into independent parts
    (components, tiles) on a pool of frame threads, and every shared sum is added in one
    order, so the results do not depend on the threads. ``u_a`` and
    ``r_act`` hold each component's rows only inside its region
    (:func:`component_regions`: where it may grow, and its support); elsewhere NaN.
    """
    geom = ring.geometry
    h, w = geom.dims
    n = a.shape[1]
    a = sp.csc_matrix(a, dtype=np.float32)
    a_csr = sp.csr_matrix(a)
    b0 = ring.b0.astype(np.float32)
    b0_ds = block_reduce_mean(b0[None], geom.factor)[0]
    regions = component_regions(a, tiles, (h, w), mask)
    weights_of = [c_prev] + ([active] if active is not None else [])
    with frame_pool() as pool:
        terms = PassTerms(
            ring,
            a,
            regions,
            n_frames,
            len(weights_of),
            a_seen=_tile_covered(a, tiles, w),
            map_fn=pool.map,
        )
        tile_pix = [t.pixels(w) for t in tiles]
        a_tiles = [
            a_csr[pix][:, t.comps].toarray().astype(np.float32) if len(t.comps) else None
            for t, pix in zip(tiles, tile_pix, strict=True)
        ]
        u_c = np.zeros((n, n_frames), dtype=np.float32)
        # accumulators are (local components, tile pixels): C-contiguous GEMMs, few calls
        u_a = [
            np.zeros((len(t.comps), len(pix)), dtype=np.float64)
            for t, pix in zip(tiles, tile_pix, strict=True)
        ]
        r_act = (
            [
                np.zeros((len(t.comps), len(pix)), dtype=np.float64)
                for t, pix in zip(tiles, tile_pix, strict=True)
            ]
            if active is not None
            else None
        )

        def box_sums(item: tuple[int, np.ndarray]) -> tuple[int, np.ndarray]:
            t0, frames = item
            m = frames.shape[0]
            dz = block_reduce_mean(frames, geom.factor, pool.map) - b0_ds
            terms.accumulate(t0, dz, [wm[:, t0 : t0 + m] for wm in weights_of], pool.map)
            return t0, frames

        busy = [ti for ti, tile in enumerate(tiles) if len(tile.comps)]
        scratch = threading.local()

        def tile_products(job: tuple[int, int, np.ndarray]) -> tuple[int, np.ndarray]:
            """One tile's products of a chunk; its own ``u_a`` and ``r_act`` rows are added here,
            the shared ``u_c`` rows by the caller, in tile order (so the sums do not depend on
            the threads)."""
            ti, t0, frames = job
            tile = tiles[ti]
            m = frames.shape[0]
            th, tw = tile.y1 - tile.y0, tile.x1 - tile.x0
            buf = getattr(scratch, "buf", None)
            if buf is None or buf.size < m * th * tw:
                buf = scratch.buf = np.empty(m * th * tw, dtype=np.float32)
            zt = buf[: m * th * tw].reshape(m, th, tw)
            np.subtract(
                frames[:, tile.y0 : tile.y1, tile.x0 : tile.x1],
                b0[tile.y0 : tile.y1, tile.x0 : tile.x1],
                out=zt,
            )
            zt = zt.reshape(m, -1)
            u_a[ti] += np.ascontiguousarray(c_prev[tile.comps, t0 : t0 + m]) @ zt
            if r_act is not None and active is not None:
                r_act[ti] += np.ascontiguousarray(active[tile.comps, t0 : t0 + m]) @ zt
            return ti, (zt @ a_tiles[ti]).T

        for t0, frames in prefetched(map(box_sums, chunks)):
            t1 = t0 + frames.shape[0]
            for ti, prod in pool.map(tile_products, ((ti, t0, frames) for ti in busy)):
                u_c[tiles[ti].comps, t0:t1] += prod
            if progress:
                progress(t1)
        u_c -= terms.trace_terms(c_prev)
        for i, acc in enumerate([u_a] + ([r_act] if r_act is not None else [])):
            _subtract_pixel_terms(acc, terms, i, weights_of[i], c_prev, tiles, regions, pool.map)
        bg_mean = (terms.background_mean(c_prev) + float(b0.mean())).astype(np.float32)
    return PassResult(u_c, u_a, r_act, bg_mean)


def _subtract_pixel_terms(
    acc: list[np.ndarray],
    terms: PassTerms,
    i: int,
    weights: np.ndarray,
    c_prev: np.ndarray,
    tiles: list[Tile],
    regions: np.ndarray,
    map_fn: MapFn = map,
) -> None:
    """``acc`` holds ``W Z^T`` per tile; make it ``W R^T`` inside each region, NaN outside.

    Each component's terms are computed once (through ``map_fn``: they are independent)."""
    cw = c_prev.astype(np.float64) @ weights.T.astype(np.float64)  # (N, N): C w_j^T by column
    needed = sorted({int(k) for tile in tiles for k in tile.comps})
    cache = dict(
        zip(needed, map_fn(lambda k: terms.pixel_terms(i, k, cw[:, k]), needed), strict=True)
    )
    for ti, tile in enumerate(tiles):
        th, tw = tile.y1 - tile.y0, tile.x1 - tile.x0
        for loc, k in enumerate(tile.comps):
            k = int(k)
            ry0, ry1, rx0, rx1 = (int(v) for v in regions[k])
            y0, y1 = max(ry0, tile.y0), min(ry1, tile.y1)
            x0, x1 = max(rx0, tile.x0), min(rx1, tile.x1)
            row = acc[ti][loc].reshape(th, tw)
            out = np.full((th, tw), np.nan)
            if y0 < y1 and x0 < x1:
                ts = (slice(y0 - tile.y0, y1 - tile.y0), slice(x0 - tile.x0, x1 - tile.x0))
                rs = (slice(y0 - ry0, y1 - ry0), slice(x0 - rx0, x1 - rx0))
                out[ts] = row[ts] - cache[k][rs]
            row[:] = out


# ------------------------------------------------------------------ temporal update


@dataclass
class TemporalResult:
    c: np.ndarray
    s: np.ndarray
    c_raw: np.ndarray  # raw traces minus baseline (C + residual)
    sn: np.ndarray
    g: np.ndarray  # (N, p)
    baseline: np.ndarray


def update_temporal(
    u_c: np.ndarray,
    a: sp.csc_matrix,
    c_prev: np.ndarray,
    *,
    p: int,
    g: np.ndarray | None,
    s_min: float | None,
    s_min_sd: float,
    sweeps: int = 2,
) -> TemporalResult:
    """Block-coordinate trace update with OASIS deconvolution (CaImAn ``update_temporal``).

    ``g``: fixed AR coefficients for every component (from ``decay_time``) or None to
    estimate per component on the first sweep.
    """
    n, t = u_c.shape
    aa = (a.T @ a).toarray().astype(np.float64)
    diag = np.diag(aa).copy()
    diag[diag <= 0] = 1.0
    c = c_prev.astype(np.float32, copy=True)
    s = np.zeros_like(c)
    sn = np.zeros(n)
    bl = np.zeros(n)
    p_eff = max(p, 0)
    gs = np.zeros((n, max(p_eff, 1)))
    nbrs = [np.flatnonzero(aa[k]) for k in range(n)]
    for sweep in range(sweeps):
        for k in range(n):
            nb = nbrs[k]
            raw = c[k] + (u_c[k] - aa[k, nb] @ c[nb]) / diag[k]
            gk = g if g is not None else (gs[k, :p_eff] if sweep > 0 else None)
            dec = deconvolve(raw, p=p_eff, g=gk, s_min=s_min, s_min_sd=s_min_sd)
            c[k] = dec.c
            s[k] = dec.s
            sn[k] = dec.sn
            bl[k] = dec.baseline
            if p_eff:
                gs[k, : len(dec.g)] = dec.g
    c_raw = np.empty_like(c)
    for k in range(n):
        nb = nbrs[k]
        c_raw[k] = c[k] + (u_c[k] - aa[k, nb] @ c[nb]) / diag[k] - bl[k]
    return TemporalResult(c, s, c_raw, sn, gs[:, :p_eff], bl)


# ------------------------------------------------------------------ spatial update


def update_spatial(
    a: sp.csc_matrix,
    c_prev: np.ndarray,
    pass_result: PassResult,
    tiles: list[Tile],
    mask: sp.csc_matrix,
    dims: tuple[int, int],
    *,
    sweeps: int = 3,
) -> sp.csc_matrix:
    """HALS footprint update per tile from ``U_a = (Y-B) C^T`` and ``V = C C^T``."""
    h, w = dims
    v = c_prev.astype(np.float64) @ c_prev.T.astype(np.float64)
    a_csr = sp.csr_matrix(a)
    m_csr = sp.csr_matrix(mask)
    rows_all, cols_all, vals_all = [], [], []
    for ti, tile in enumerate(tiles):
        comps = tile.comps
        if len(comps) == 0:
            continue
        pix = tile.pixels(w)
        # rows = local components, so every update touches contiguous memory
        at = np.ascontiguousarray(a_csr[pix][:, comps].toarray().T, dtype=np.float64)
        mt = m_csr[pix][:, comps].toarray().T
        allowed = [np.flatnonzero(mt[j]) for j in range(len(comps))]
        at *= mt
        vt = v[np.ix_(comps, comps)]
        ut = pass_result.u_a[ti]
        for _ in range(sweeps):
            for j, idx in enumerate(allowed):
                if vt[j, j] <= 0 or len(idx) == 0:
                    at[j] = 0
                    continue
                upd = at[j, idx] + (ut[j, idx] - vt[j] @ at[:, idx]) / vt[j, j]
                at[j, idx] = np.maximum(upd, 0.0)
        at = at.T
        nzr, nzc = np.nonzero(at)
        rows_all.append(pix[nzr])
        cols_all.append(comps[nzc])
        vals_all.append(at[nzr, nzc])
    if rows_all:
        rows, cols, vals = (np.concatenate(x) for x in (rows_all, cols_all, vals_all))
    else:
        rows = cols = np.zeros(0, dtype=np.int64)
        vals = np.zeros(0)
    return sp.csc_matrix((vals.astype(np.float32), (rows, cols)), shape=a.shape)


def normalize_footprints(a: sp.csc_matrix, c: np.ndarray, *arrays: np.ndarray):
    """Scale footprints to unit L2 norm and the traces (and ``arrays``) inversely."""
    a = sp.csc_matrix(a, dtype=np.float32)
    norms = np.sqrt(np.asarray(a.multiply(a).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    a = sp.csc_matrix(a @ sp.diags(1.0 / norms).astype(np.float32))
    out = [c * norms[:, None].astype(np.float32)]
    for arr in arrays:
        out.append(arr * norms.reshape((-1,) + (1,) * (arr.ndim - 1)).astype(arr.dtype))
    return a, out, norms


def component_r_values(
    a: sp.csc_matrix,
    c: np.ndarray,
    active: np.ndarray,
    pass_result: PassResult,
    tiles: list[Tile],
    dims: tuple[int, int],
    athresh: float = 0.1,
) -> np.ndarray:
    """Spatial consistency: correlation of each footprint with the background-subtracted
    data averaged over that component's active frames (other components removed)."""
    h, w = dims
    n = a.shape[1]
    out = np.full(n, np.nan)
    if pass_result.r_act is None or n == 0:
        return out
    # mean of every trace over each component's active frames: m[j, k]
    m = c.astype(np.float64) @ active.T.astype(np.float64)
    a = sp.csc_matrix(a)
    a_csr = sp.csr_matrix(a)
    # where each component's rows are: (tile, row of the tile's r_act); tiles are disjoint
    # rectangles, so a pixel's value is found by its offset in the one tile holding it
    held: dict[int, list[tuple[int, int]]] = {}
    for ti, tile in enumerate(tiles):
        for j, k in enumerate(tile.comps):
            held.setdefault(int(k), []).append((ti, j))
    for k in range(n):
        rows = a.indices[a.indptr[k] : a.indptr[k + 1]]
        vals = a.data[a.indptr[k] : a.indptr[k + 1]].astype(np.float64)
        if len(rows) < 3 or k not in held or active[k].sum() == 0:
            continue
        keep = vals >= athresh * vals.max()
        rows, vals = rows[keep], vals[keep]
        ys, xs = rows // w, rows % w
        data = np.full(len(rows), np.nan)
        for ti, j in held[k]:
            t = tiles[ti]
            inside = (ys >= t.y0) & (ys < t.y1) & (xs >= t.x0) & (xs < t.x1)
            at = (ys[inside] - t.y0) * (t.x1 - t.x0) + (xs[inside] - t.x0)
            data[inside] = pass_result.r_act[ti][j, at]
        others = a_csr[rows] @ m[:, k] - vals * m[k, k]
        resid = data - others
        ok = np.isfinite(resid)
        if ok.sum() < 3 or np.std(vals[ok]) == 0 or np.std(resid[ok]) == 0:
            continue
        out[k] = float(np.corrcoef(vals[ok], resid[ok])[0, 1])
    return out


def active_weights(c: np.ndarray, frac: float = 0.3) -> np.ndarray:
    """(N, T) weights averaging over each component's strongly active frames."""
    n, t = c.shape
    out = np.zeros((n, t), dtype=np.float32)
    for k in range(n):
        peak = float(np.max(c[k])) if t else 0.0
        if peak <= 0:
            continue
        act = c[k] >= frac * peak
        cnt = int(act.sum())
        if cnt:
            out[k, act] = 1.0 / cnt
    return out
