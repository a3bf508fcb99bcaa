"""CNMF-E ring-model background with angular-harmonic ring weights, fitted in a stream.

CNMF-E models the 1-photon background at pixel ``i`` as ``B_i(t) = b0_i + sum_j W_ij X_j(t)``
with ``X = Y - A C - b0`` and ``W_ij`` non-zero only on a ring of radius
``ring_size_factor * gSiz`` around ``i`` (outside the neuron, so a neuron cannot explain
itself away), all on a grid downsampled by ``ssub_B``. CaImAn fits the ~100-200 ring
weights of every pixel by least squares on the data held in memory.

Here each pixel's ring weights are restricted to low angular harmonics,
``W_i(theta) = sum_m w_im phi_m(theta)`` with ``phi = 1, cos(theta), sin(theta), cos(2 theta),
sin(2 theta), ...`` (``ring_harmonics`` = highest order). The ring features
``F_m = (phi_m ring) * X`` are a handful of FFT convolutions per frame, and the per-pixel
least-squares fit needs only the accumulated moments ``sum F F^T`` and ``sum F x`` — so the
fit streams over frames in chunks with ``O(pixels x harmonics^2)`` memory, instead of
needing the pixels x frames residual. A smooth out-of-focus background is captured by its
mean, gradient and curvature along the ring, which is what these harmonics represent; the
full per-pixel ring of CaImAn is the limit of many harmonics.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np
import scipy.fft as sfft
import scipy.sparse as sp

from ace_assets.io.threads import MapFn, compute_threads, frame_pool, ordered_map

from .movie import bin_mean, block_reduce_mean


def ring_kernels(radius: int, harmonics: int) -> np.ndarray:
    """(J, k, k) ring kernels: ring pixels weighted by 1, cos(m theta), sin(m theta)."""
    r = max(int(radius), 1)
    yy, xx = np.mgrid[-r - 1 : r + 2, -r - 1 : r + 2]
    d2 = yy**2 + xx**2
    ring = (d2 <= (r + 1) ** 2) & ~(d2 <= r**2)
    theta = np.arctan2(yy, xx)
    n = max(int(ring.sum()), 1)
    out = [ring / n]
    for m in range(1, harmonics + 1):
        out.append(ring * np.cos(m * theta) * 2 / n)
        out.append(ring * np.sin(m * theta) * 2 / n)
    return np.stack(out).astype(np.float32)


@dataclass
class RingGeometry:
    """Where the ring model lives relative to the grid it is applied on."""

    dims: tuple[int, int]  # application grid (H, W)
    factor: int  # block pooling from application grid to background grid
    radius: int  # ring radius in background-grid pixels
    harmonics: int

    @property
    def bg_dims(self) -> tuple[int, int]:
        return (-(-self.dims[0] // self.factor), -(-self.dims[1] // self.factor))

    @property
    def n_features(self) -> int:
        return 1 + 2 * self.harmonics


class RingFeatures:
    """Batched FFT convolution of background-grid frames with the ring kernels."""

    def __init__(self, bg_dims: tuple[int, int], radius: int, harmonics: int) -> None:
        self.bg_dims = bg_dims
        self.kernels = ring_kernels(radius, harmonics)
        k = self.kernels.shape[-1]
        self.half = k // 2
        # outputs [half, half + n) of the linear convolution are alias-free for n + half;
        # pocketfft is fast for 7- and 11-smooth lengths too (real=False admits them:
        # 330 rather than 360 for a 608-px frame's ring, 12 % less per transform)
        self.fft_shape = (
            sfft.next_fast_len(bg_dims[0] + self.half, real=False),
            sfft.next_fast_len(bg_dims[1] + self.half, real=False),
        )
        self.kernel_fft = sfft.rfft2(self.kernels, s=self.fft_shape, axes=(-2, -1))

    def __call__(
        self,
        x: np.ndarray,
        block: int = 8,
        workers: int | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """(n, hb, wb) -> (n, J, hb, wb) float32 ring features (zero outside the frame).

        Each kernel's products of a block go through one batched inverse transform on
        ``workers`` threads (default :func:`~ace_assets.io.threads.compute_threads`), one
        kernel at a time: 2.2x faster than one transform of all J products, whose
        (block, J, ...) spectrum array is too large for the caches. Each frame is
        transformed on its own, so the result depends neither on the threads nor on which
        frames are passed together. ``out``: where to write them.
        """
        hb, wb = self.bg_dims
        h0 = self.half
        workers = compute_threads() if workers is None else workers
        if out is None:
            out = np.empty((x.shape[0], len(self.kernels), hb, wb), dtype=np.float32)
        for a in range(0, x.shape[0], block):
            xf = sfft.rfft2(
                x[a : a + block].astype(np.float32, copy=False),
                s=self.fft_shape,
                axes=(-2, -1),
                workers=workers,
            )
            prod = np.empty_like(xf)
            for j, kf in enumerate(self.kernel_fft):
                np.multiply(xf, kf, out=prod)
                full = sfft.irfft2(
                    prod, s=self.fft_shape, axes=(-2, -1), workers=workers, overwrite_x=True
                )
                out[a : a + block, j] = full[..., h0 : h0 + hb, h0 : h0 + wb]
        return out


def decimation_matrix(dims: tuple[int, int], factor: int) -> sp.csr_matrix:
    """Sparse (bg pixels x pixels) operator equal to :func:`block_reduce_mean` by ``factor``
    (edge blocks count replicated edge pixels, as the padding does)."""
    h, w = dims
    f = factor
    hb, wb = -(-h // f), -(-w // f)
    ys = np.minimum(np.arange(hb * f), h - 1)  # padded row -> source row
    xs = np.minimum(np.arange(wb * f), w - 1)
    py, px = np.meshgrid(np.arange(hb * f), np.arange(wb * f), indexing="ij")
    rows = (py // f) * wb + (px // f)
    cols = ys[py] * w + xs[px]
    data = np.full(rows.size, 1.0 / (f * f), dtype=np.float32)
    return sp.csr_matrix((data, (rows.ravel(), cols.ravel())), shape=(hb * wb, h * w))


def to_frames_major(x_pm: np.ndarray, block: int = 8192) -> np.ndarray:
    """Cache-friendly transpose of a (pixels, frames) array to (frames, pixels)."""
    p, n = x_pm.shape
    out = np.empty((n, p), dtype=np.float32)
    for a in range(0, p, block):
        out[:, a : a + block] = x_pm[a : a + block].T
    return out


@dataclass
class RingModel:
    """Fitted ring weights on the background grid plus the baseline image ``b0``."""

    geometry: RingGeometry
    weights: np.ndarray  # (J, hb, wb) float32
    b0: np.ndarray  # (H, W) float32 on the application grid

    def __post_init__(self) -> None:
        g = self.geometry
        self._features = RingFeatures(g.bg_dims, g.radius, g.harmonics)

    def fluctuation_ds(self, x_ds: np.ndarray) -> np.ndarray:
        """Background fluctuation on the background grid for residuals ``x_ds`` (n, hb, wb)
        = Down(Y - A C - b0)."""
        feats = self._features(x_ds)
        return np.einsum("njhw,jhw->nhw", feats, self.weights, optimize=True)

    def fluctuation(self, x: np.ndarray) -> np.ndarray:
        """Background fluctuation ``W X`` for residual frames ``x = Y - A C - b0`` (n, H, W)."""
        g = self.geometry
        return upsample(self.fluctuation_ds(block_reduce_mean(x, g.factor)), g.dims)

    def rebased(self, dims: tuple[int, int], factor: int, b0: np.ndarray) -> RingModel:
        """The same weights applied on another grid (e.g. full resolution)."""
        g = self.geometry
        geom = RingGeometry(dims, factor, g.radius, g.harmonics)
        if geom.bg_dims != g.bg_dims:
            raise ValueError(f"background grid mismatch {geom.bg_dims} vs {g.bg_dims}")
        return RingModel(geom, self.weights, b0.astype(np.float32))


def upsample(frames: np.ndarray, dims: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of (n, hb, wb) frames to (n, H, W)."""
    n, hb, wb = frames.shape
    if (hb, wb) == dims:
        return frames.astype(np.float32, copy=True)
    out = np.empty((n, *dims), dtype=np.float32)
    for i in range(n):
        out[i] = cv2.resize(
            np.ascontiguousarray(frames[i], dtype=np.float32),
            (dims[1], dims[0]),
            interpolation=cv2.INTER_LINEAR,
        )
    return out


def _add_moments(
    feats: np.ndarray,
    xd: np.ndarray,
    sff: np.ndarray,
    sfx: np.ndarray,
    sf: np.ndarray,
    sx: np.ndarray,
    block: int = 2048,
    map_fn: MapFn | None = None,
) -> None:
    """Add one chunk's per-pixel sums of feature products to the moments, by pixel block.

    A block's features (frames x J x ``block``) stay in the core's cache for all its J^2
    products, and blocks run on threads (``map_fn``, default a pool of its own); each
    pixel's sums run over the frames in the same order whatever the blocks, so the moments
    do not depend on the thread count.
    """
    j, p = feats.shape[1], xd.shape[1]

    def add(a: int) -> None:
        b = min(a + block, p)
        f, x = feats[:, :, a:b], xd[:, a:b]
        for u in range(j):
            fu = f[:, u]
            sf[u, a:b] += fu.sum(axis=0, dtype=np.float64)
            sfx[u, a:b] += np.einsum("tp,tp->p", fu, x)
            for v in range(u, j):
                val = np.einsum("tp,tp->p", fu, f[:, v])
                sff[u, v, a:b] += val
                if v != u:
                    sff[v, u, a:b] += val
        sx[a:b] += x.sum(axis=0, dtype=np.float64)

    for _ in (map_fn or ordered_map)(add, range(0, p, block)):
        pass


def _residuals_and_features(
    frames: np.ndarray,
    c: np.ndarray,
    k: int,
    factor: int,
    a_ds: sp.csr_matrix,
    feats_of: RingFeatures,
    xd: np.ndarray,
    feats: np.ndarray,
    groups: range,
) -> None:
    """Into ``xd`` and ``feats``: binned frames ``groups`` of a chunk (means of ``k``
    frames, traces ``c`` alike), their residuals ``Down(Y - A C)`` and ring features. Each
    frame is computed on its own, so parts of a chunk may run on threads."""
    f0, f1 = groups.start * k, min(groups.stop * k, frames.shape[0])
    fr, cc = frames[f0:f1], c[:, f0:f1]
    if k > 1:
        fr, cc = bin_mean(fr, k), bin_mean(cc, k, axis=1)
    x = block_reduce_mean(fr, factor).reshape(len(groups), -1)
    if a_ds.shape[1]:
        x -= to_frames_major(np.asarray(a_ds @ cc, dtype=np.float32))
    xd[groups.start : groups.stop] = x
    feats_of(
        x.reshape(len(groups), *feats.shape[2:]),
        workers=1,
        out=feats[groups.start : groups.stop],
    )


def fit_ring_model(
    chunks: Iterable[tuple[int, np.ndarray]],
    geometry: RingGeometry,
    a: sp.spmatrix,
    c: np.ndarray,
    b0: np.ndarray,
    *,
    ridge: float = 1e-4,
    tsub: int = 1,
) -> RingModel:
    """Least-squares ring weights from streamed residuals ``Down(Y - A C)``, centred per pixel.

    ``tsub``: consecutive frames of a chunk are averaged before the fit (CaImAn's
    ``compute_W(tsub=)``). ``B = W X`` holds for the averages as for the frames, and the
    out-of-focus background it models is slow, so the weights barely move while the ring
    features, most of the fit's cost, are computed ``tsub`` times less often.

    Moments are taken about the first chunk's per-pixel means (a shift that leaves the
    covariances unchanged), so products of small numbers can be summed in float32 within a
    chunk (``einsum``, 5x faster than float64 products) and accumulated across chunks in
    float64 without cancellation. Memory: ``O(bg pixels x J^2)`` plus one chunk.
    """
    feats_of = RingFeatures(geometry.bg_dims, geometry.radius, geometry.harmonics)
    j = geometry.n_features
    hb, wb = geometry.bg_dims
    p = hb * wb
    a_ds = sp.csr_matrix(decimation_matrix(geometry.dims, geometry.factor) @ a)
    sff = np.zeros((j, j, p))
    sfx = np.zeros((j, p))
    sf = np.zeros((j, p))
    sx = np.zeros(p)
    shift_f: np.ndarray | None = None
    shift_x: np.ndarray | None = None
    n_total = 0
    k = max(int(tsub), 1)
    with frame_pool() as pool:
        for t0, frames in chunks:
            m = -(-frames.shape[0] // k)
            xd = np.empty((m, p), np.float32)
            feats = np.empty((m, j, hb, wb), np.float32)

            part = partial(
                _residuals_and_features,
                frames,
                c[:, t0 : t0 + frames.shape[0]],
                k,
                geometry.factor,
                a_ds,
                feats_of,
                xd,
                feats,
            )
            step = max(1, -(-m // (2 * pool.threads)))
            for _ in pool.map(part, (range(a, min(a + step, m)) for a in range(0, m, step))):
                pass
            feats = feats.reshape(m, j, p)
            if shift_f is None or shift_x is None:
                shift_f, shift_x = feats.mean(axis=0), xd.mean(axis=0)
            feats -= shift_f
            xd -= shift_x
            _add_moments(feats, xd, sff, sfx, sf, sx, map_fn=pool.map)
            n_total += m
    n_total = max(n_total, 1)
    mf = sf / n_total
    mx = sx / n_total
    cov = sff / n_total - mf[:, None, :] * mf[None, :, :]
    cfx = sfx / n_total - mf * mx[None, :]
    cov = np.moveaxis(cov, -1, 0)  # (p, J, J)
    tr = np.trace(cov, axis1=1, axis2=2)
    reg = ridge * np.maximum(tr, 1e-12) / j
    cov[:, np.arange(j), np.arange(j)] += reg[:, None]
    w = np.linalg.solve(cov, cfx.T[:, :, None])[:, :, 0]  # (p, J)
    weights = w.T.reshape(j, hb, wb).astype(np.float32)
    return RingModel(geometry, weights, b0.astype(np.float32))
