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

import cv2
import numpy as np
import scipy.fft as sfft

from .movie import block_reduce_mean


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
        self.fft_shape = (
            sfft.next_fast_len(bg_dims[0] + k - 1, real=True),
            sfft.next_fast_len(bg_dims[1] + k - 1, real=True),
        )
        self.kernel_fft = sfft.rfft2(self.kernels, s=self.fft_shape, axes=(-2, -1))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(n, hb, wb) -> (n, J, hb, wb) float32 ring features (zero outside the frame)."""
        hb, wb = self.bg_dims
        xf = sfft.rfft2(x.astype(np.float32, copy=False), s=self.fft_shape, axes=(-2, -1))
        out = np.empty((x.shape[0], len(self.kernels), hb, wb), dtype=np.float32)
        h0 = self.half
        for j in range(len(self.kernels)):
            full = sfft.irfft2(xf * self.kernel_fft[j], s=self.fft_shape, axes=(-2, -1))
            out[:, j] = full[:, h0 : h0 + hb, h0 : h0 + wb]
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

    def fluctuation(self, x: np.ndarray) -> np.ndarray:
        """Background fluctuation ``W X`` for residual frames ``x = Y - A C - b0`` (n, H, W)."""
        g = self.geometry
        xd = block_reduce_mean(x, g.factor)
        feats = self._features(xd)
        bd = np.einsum("njhw,jhw->nhw", feats, self.weights, optimize=True)
        return upsample(bd, g.dims)

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
        return frames.astype(np.float32, copy=False)
    out = np.empty((n, *dims), dtype=np.float32)
    for i in range(n):
        out[i] = cv2.resize(
            np.ascontiguousarray(frames[i], dtype=np.float32),
            (dims[1], dims[0]),
            interpolation=cv2.INTER_LINEAR,
        )
    return out


def fit_ring_model(
    chunks: Iterable[tuple[int, np.ndarray]],
    geometry: RingGeometry,
    residual_of: callable,  # (t0, frames) -> residual frames Y - A C (n, H, W)
    b0: np.ndarray,
    *,
    ridge: float = 1e-4,
) -> RingModel:
    """Least-squares ring weights from streamed residuals ``Y - A C`` (centred per pixel).

    Moments are accumulated in float64; the centring uses the accumulated means, so no
    baseline is needed up front. Memory: ``O(bg pixels x J^2)``.
    """
    feats_of = RingFeatures(geometry.bg_dims, geometry.radius, geometry.harmonics)
    j = geometry.n_features
    hb, wb = geometry.bg_dims
    p = hb * wb
    sff = np.zeros((j, j, p))
    sfx = np.zeros((j, p))
    sf = np.zeros((j, p))
    sx = np.zeros(p)
    n_total = 0
    for t0, frames in chunks:
        res = residual_of(t0, frames)
        xd = block_reduce_mean(res, geometry.factor).reshape(res.shape[0], -1)
        feats = feats_of(xd.reshape(-1, hb, wb)).reshape(res.shape[0], j, p)
        for a in range(j):
            fa = feats[:, a].astype(np.float64)
            sf[a] += fa.sum(axis=0)
            sfx[a] += (fa * xd).sum(axis=0)
            for b in range(a, j):
                val = (fa * feats[:, b]).sum(axis=0)
                sff[a, b] += val
                if b != a:
                    sff[b, a] += val
        sx += xd.sum(axis=0)
        n_total += res.shape[0]
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
