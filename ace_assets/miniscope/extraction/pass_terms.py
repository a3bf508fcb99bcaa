"""The ring background of a pass, folded into per-component sums on small boxes.

A pass needs the data minus the background, ``R = Z - U F X``, only through ``A^T R``
(traces), ``C R^T`` and ``Act R^T`` where each footprint may grow (footprints, r-values)
and the background's mean per frame. Here ``Z = Y - b0``, ``X = D Z - A_ds C`` is the
residual on the background grid (``D`` the block mean, ``A_ds = D A``), ``F`` the fitted
ring map there and ``U`` the bilinear upsampling. ``F`` and ``U`` are linear, so

* ``A^T U F X = G^T X`` with ``G = F^T U^T A``: one image per component, non-zero only
  within the ring radius of its footprint;
* ``C (U F X)^T = U F (X C^T)``: ``X C^T`` is one background-grid image per component,
  needed only within the ring radius of where its footprint may grow.

Both are sums of products over a component's box of a few thousand background pixels, so
a pass costs one box gather per component and chunk of frames instead of a forward and
five inverse full-frame FFTs per frame (the ring features), an upsampling and a
subtraction. The ring map is applied once per component and pass, on its box. The sums
equal those of the explicit background (``RingModel.fluctuation``) to float32 rounding
(``test_pass_terms.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import scipy.fft as sfft
import scipy.sparse as sp

from ace_assets.io.threads import MapFn

from .background import RingModel, decimation_matrix, ring_kernels

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open


def upsample_matrices(bg_dims: tuple[int, int], dims: tuple[int, int]):
    """``(Uy, Ux)`` with ``background.upsample(x) == Uy @ x @ Ux.T`` for one frame: OpenCV's
    bilinear resize is separable, so resizing an identity gives each axis' weights."""
    (hb, wb), (h, w) = bg_dims, dims
    uy = cv2.resize(np.eye(hb, dtype=np.float32), (hb, h), interpolation=cv2.INTER_LINEAR)
    ux = cv2.resize(np.eye(wb, dtype=np.float32), (wb, w), interpolation=cv2.INTER_LINEAR)
    return uy.astype(np.float64), ux.astype(np.float64)


def _nonzero_span(m: np.ndarray) -> tuple[int, int]:
    cols = np.flatnonzero(np.any(m != 0, axis=0))
    return (int(cols[0]), int(cols[-1]) + 1) if len(cols) else (0, 0)


class BoxRing:
    """The ring map ``F`` (and its adjoint) on a box of the background grid.

    Outputs are exact wherever the ring around them lies inside the box or outside the
    frame (zero there, as in :class:`~.background.RingFeatures`).
    """

    def __init__(self, ring: RingModel) -> None:
        g = ring.geometry
        self.kernels = ring_kernels(g.radius, g.harmonics).astype(np.float64)
        self.half = self.kernels.shape[-1] // 2
        self.weights = ring.weights.astype(np.float64)
        self._kernel_fft: dict[tuple[tuple[int, int], bool], np.ndarray] = {}

    def _shape(self, bh: int, bw: int) -> tuple[int, int]:
        return (
            sfft.next_fast_len(bh + self.half, real=False),
            sfft.next_fast_len(bw + self.half, real=False),
        )

    def _kf(self, shape: tuple[int, int], flipped: bool) -> np.ndarray:
        key = (shape, flipped)
        if key not in self._kernel_fft:
            k = self.kernels[:, ::-1, ::-1] if flipped else self.kernels
            self._kernel_fft[key] = sfft.rfft2(k, s=shape, axes=(-2, -1))
        return self._kernel_fft[key]

    def _crop(self, full: np.ndarray, bh: int, bw: int) -> np.ndarray:
        h0 = self.half
        return full[..., h0 : h0 + bh, h0 : h0 + bw]

    def forward(self, x: np.ndarray, box: Box) -> np.ndarray:
        """``(F x)`` on ``box`` for a background-grid image ``x`` given on that box."""
        y0, y1, x0, x1 = box
        bh, bw = y1 - y0, x1 - x0
        shape = self._shape(bh, bw)
        xf = sfft.rfft2(x, s=shape)
        feats = self._crop(sfft.irfft2(xf[None] * self._kf(shape, False), s=shape), bh, bw)
        return np.einsum("jhw,jhw->hw", feats, self.weights[:, y0:y1, x0:x1])

    def adjoint(self, v: np.ndarray, box: Box) -> np.ndarray:
        """``(F^T v)`` on ``box`` (a correlation with each kernel, summed in frequency)."""
        y0, y1, x0, x1 = box
        bh, bw = y1 - y0, x1 - x0
        shape = self._shape(bh, bw)
        wv = self.weights[:, y0:y1, x0:x1] * v[None]
        spec = (sfft.rfft2(wv, s=shape, axes=(-2, -1)) * self._kf(shape, True)).sum(axis=0)
        return self._crop(sfft.irfft2(spec, s=shape), bh, bw)


class PassTerms:
    """Per-component box sums of one pass, and the background terms they give.

    ``regions[j]`` is the full-resolution box ``(y0, y1, x0, x1)`` where the pass must
    deliver component ``j``'s rows of ``C R^T`` (where its footprint may grow, and its
    support). ``a`` are the footprints of the model (``X = D Z - A_ds C``); ``a_seen`` the
    footprints as the tile products see them (``A^T Z``), if only part of ``a``.
    ``map_fn`` may be a thread pool's map: components are independent (results in order).
    """

    def __init__(
        self,
        ring: RingModel,
        a: sp.csc_matrix,
        regions: np.ndarray,
        n_frames: int,
        n_weights: int,
        a_seen: sp.csc_matrix | None = None,
        map_fn: MapFn = map,
    ) -> None:
        geom = ring.geometry
        self.dims = geom.dims
        self.bg_dims = hb, wb = geom.bg_dims
        h, w = geom.dims
        n = a.shape[1]
        self.ring = BoxRing(ring)
        self.uy, self.ux = upsample_matrices(geom.bg_dims, geom.dims)
        self.regions = np.asarray(regions, dtype=np.int64).reshape(n, 4)
        self.a_ds = sp.csr_matrix(decimation_matrix(geom.dims, geom.factor) @ a, dtype=np.float64)
        hr = self.ring.half + 1  # ring reach, plus the bilinear neighbour
        a = sp.csc_matrix(a if a_seen is None else a_seen)

        def component(j: int) -> tuple[Box, np.ndarray]:
            """Component ``j``'s box on the background grid and ``G_j`` on it."""
            ry0, ry1, rx0, rx1 = (int(v) for v in self.regions[j])
            q0, q1 = _nonzero_span(self.uy[ry0:ry1])
            p0, p1 = _nonzero_span(self.ux[rx0:rx1])
            box = (max(0, q0 - hr), min(hb, q1 + hr), max(0, p0 - hr), min(wb, p1 + hr))
            by0, by1, bx0, bx1 = box
            rows = a.indices[a.indptr[j] : a.indptr[j + 1]]
            vals = a.data[a.indptr[j] : a.indptr[j + 1]].astype(np.float64)
            if not len(rows):
                return box, np.zeros((by1 - by0, bx1 - bx0))
            ys, xs = rows // w, rows % w
            ay0, ax0 = int(ys.min()), int(xs.min())
            img = np.zeros((int(ys.max()) - ay0 + 1, int(xs.max()) - ax0 + 1))
            img[ys - ay0, xs - ax0] = vals
            uta = (
                self.uy[ay0 : ay0 + img.shape[0], by0:by1].T
                @ img
                @ self.ux[ax0 : ax0 + img.shape[1], bx0:bx1]
            )
            return box, self.ring.adjoint(uta, box)

        self.boxes: list[Box] = []
        self.g: list[np.ndarray] = []  # G_j on its box, flattened (float32)
        rows_all, cols_all, vals_all = [], [], []
        for j, (box, gj) in enumerate(map_fn(component, range(n))):
            self.boxes.append(box)
            self.g.append(gj.astype(np.float32).ravel())
            by0, by1, bx0, bx1 = box
            gy, gx = np.mgrid[by0:by1, bx0:bx1]
            rows_all.append((gy * wb + gx).ravel())
            cols_all.append(np.full(gj.size, j))
            vals_all.append(gj.ravel())
        if n:
            g_mat = sp.csr_matrix(
                (np.concatenate(vals_all), (np.concatenate(cols_all), np.concatenate(rows_all))),
                shape=(n, hb * wb),
            )
        else:
            g_mat = sp.csr_matrix((0, hb * wb))
        self.g_a = np.asarray((g_mat @ self.a_ds).todense())  # G^T A_ds, (N, N)
        # the pass reports the mean of the background-grid fluctuation per frame
        full = (0, hb, 0, wb)
        self.g_mean = self.ring.adjoint(np.full((hb, wb), 1.0 / (hb * wb)), full).ravel()
        self.g_mean_a = np.asarray(self.a_ds.T @ self.g_mean).ravel()
        self.g_mean32 = self.g_mean.astype(np.float32)
        self.gx = np.zeros((n, n_frames), dtype=np.float32)  # G^T D Z per frame
        self.mean_x = np.zeros(n_frames, dtype=np.float64)
        self.sums = [
            [np.zeros((b[1] - b[0]) * (b[3] - b[2])) for b in self.boxes] for _ in range(n_weights)
        ]

    def accumulate(
        self,
        t0: int,
        dz: np.ndarray,
        weights: Sequence[np.ndarray],
        map_fn: MapFn = map,
        block: int = 16,
    ) -> None:
        """Add one chunk: ``dz`` (m, hb, wb) = ``D Z``; ``weights[i]`` (N, m) this chunk's
        columns of each weighting (traces, active-frame weights).

        Components are independent, so blocks of ``block`` of them may go through
        ``map_fn`` (a thread pool's map): each writes only its own rows and sums."""
        m = dz.shape[0]
        t1 = t0 + m
        self.mean_x[t0:t1] = dz.reshape(m, -1) @ self.g_mean32

        def add(js: range) -> None:
            for j in js:
                y0, y1, x0, x1 = self.boxes[j]
                blk = dz[:, y0:y1, x0:x1].reshape(m, -1)
                self.gx[j, t0:t1] = blk @ self.g[j]
                for i, wmat in enumerate(weights):
                    self.sums[i][j] += wmat[j] @ blk

        n = len(self.boxes)
        for _ in map_fn(add, (range(a, min(a + block, n)) for a in range(0, n, block))):
            pass

    def trace_terms(self, c: np.ndarray) -> np.ndarray:
        """``A^T U F X`` (N, T) for the pass's traces ``c``: what ``A^T Z`` loses to ``B``."""
        return (self.gx - self.g_a @ c.astype(np.float64)).astype(np.float32)

    def background_mean(self, c: np.ndarray) -> np.ndarray:
        """Mean of ``F X`` over the background grid per frame."""
        return self.mean_x - self.g_mean_a @ c.astype(np.float64)

    def pixel_terms(self, i: int, j: int, v: np.ndarray) -> np.ndarray:
        """``U F (X w_j^T)`` on ``regions[j]``, for weighting ``i`` whose row ``j`` is ``w_j``
        and ``v = C w_j^T`` (N,)."""
        by0, by1, bx0, bx1 = self.boxes[j]
        _, wb = self.bg_dims
        gy, gx = np.mgrid[by0:by1, bx0:bx1]
        a_box = self.a_ds[(gy * wb + gx).ravel()]
        s = (self.sums[i][j] - a_box @ v).reshape(by1 - by0, bx1 - bx0)
        fs = self.ring.forward(s, self.boxes[j])
        ry0, ry1, rx0, rx1 = (int(t) for t in self.regions[j])
        return self.uy[ry0:ry1, by0:by1] @ fs @ self.ux[rx0:rx1, bx0:bx1].T
