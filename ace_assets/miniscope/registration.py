"""Frame-to-template registration primitives (NoRMCorre-style), built on OpenCV's DFT.

Conventions. A *lag* ``(ly, lx)`` is where the cross-correlation of a frame with
the template peaks: the frame shows the template moved by the lag. The *shift*
reported and applied is the correction, ``-lag``: ``corrected[y, x] =
frame[y - dy, x - dx]``, as CaImAn reports ``shifts_rig``.

Speed. The high-pass filter (CaImAn's ``high_pass_filter_space`` kernel: a
Gaussian of ``gSig_filt`` made zero-mean over its disc) is one DFT pair on a
reflect-padded frame, equal to ``cv2.filter2D(..., BORDER_REFLECT)`` and faster
for the default 21x21 kernel. The cross-correlation with the template is one
more DFT pair, kept in OpenCV's packed (CCS) format and multiplied with
``cv2.mulSpectrums``; piecewise-rigid patches are correlated in one batched real
FFT. Sub-pixel peaks come from a 3-point Gaussian (log-parabola) fit, which is
exact for the near-Gaussian correlation peak of band-passed images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ace_assets.miniscope.frame_filter import FrameFilter

BORDER_MODES = {"copy": cv2.BORDER_REPLICATE, True: cv2.BORDER_CONSTANT, False: cv2.BORDER_CONSTANT}
INTERPOLATIONS = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


def high_pass_kernel(gsig: tuple[float, float]) -> np.ndarray:
    """CaImAn's spatial high-pass kernel: a Gaussian made zero-sum over its central disc."""
    sy, sx = float(gsig[0]), float(gsig[1])
    ky = cv2.getGaussianKernel(int(3 * sy) // 2 * 2 + 1, sy)
    kx = cv2.getGaussianKernel(int(3 * sx) // 2 * 2 + 1, sx)
    ker = ky @ kx.T
    inside = ker >= ker[:, 0].max()
    ker[inside] -= ker[inside].mean()
    ker[~inside] = 0.0
    return ker


def high_pass(frame: np.ndarray, gsig: tuple[float, float] | None) -> np.ndarray:
    """Spatially high-passed float32 frame (reflecting borders), as CaImAn computes it."""
    f = np.asarray(frame, np.float32)
    if gsig is None:
        return f.copy()
    ker = high_pass_kernel(gsig).astype(np.float32)
    return cv2.filter2D(f, -1, ker, borderType=cv2.BORDER_REFLECT)


class HighPass:
    """CaImAn's spatial high-pass for one frame shape, computed with OpenCV's DFT.

    The frame is reflect-padded by the kernel radius to an FFT-friendly size, so
    the circular convolution equals ``cv2.filter2D(..., BORDER_REFLECT)`` on the
    frame: no wrap-around edge between a bright and a dark side of a vignetted
    frame leaks in as a static feature that would pull shifts towards zero.
    """

    def __init__(self, shape: tuple[int, int], gsig: tuple[float, float] | None) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.active = gsig is not None
        if gsig is not None:
            self._filter = FrameFilter(self.shape, high_pass_kernel(gsig), cv2.BORDER_REFLECT)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """High-passed float32 frame (a new array)."""
        f = np.asarray(frame, np.float32)
        if not self.active:
            return f.copy()
        return self._filter.apply(f)


def kernel_radius(gsig: tuple[float, float] | None) -> tuple[int, int]:
    """Half-size (rows, columns) of the high-pass kernel; (0, 0) without a filter."""
    if gsig is None:
        return 0, 0
    ker = high_pass_kernel(gsig)
    return ker.shape[0] // 2, ker.shape[1] // 2


def valid_window(shape: tuple[int, int], radius: tuple[int, int]) -> np.ndarray:
    """1 where the high-pass kernel lies wholly inside the frame, 0 within ``radius`` of an edge.

    Why: near an edge the filter sees the reflected frame, and wherever the background
    slopes across the edge (a vignetted lens) the reflection makes a kink that the filter
    turns into a bright line. Those lines sit at the frame edge in every frame, i.e. they do
    not move with the brain, and pulled every estimate towards zero shift (on a flat, quiet
    movie by 10-20%). Only the filter's valid region is used for registration.
    """
    h, w = int(shape[0]), int(shape[1])
    ry = min(int(radius[0]), (h - 1) // 4)
    rx = min(int(radius[1]), (w - 1) // 4)
    out = np.zeros((h, w), np.float32)
    out[ry : h - ry, rx : w - rx] = 1.0
    return out


class SignalWeight:
    """Weights a high-passed frame by where it shows more than noise.

    Why: in a sparse, quiet movie a frame shows a few active neurons in a field of sensor
    noise. Correlating the whole frame with the template adds that noise times every
    template neuron to every lag, and the true peak of one dim neuron drowns. Weighting
    the frame by its local signal-to-noise keeps the neurons and silences the empty field;
    on a textured frame every region is above noise and the weight is 1 everywhere.

    The noise level is the frame's own: a robust SD of horizontal pixel differences (which
    smooth signal barely changes), times the filter's white-noise gain. The local energy is
    the filtered frame squared, blurred over the filter's scale, computed at a quarter of
    the resolution (it is smooth) to stay cheap. The weight rises from 0 at an RMS of
    ``low`` noise SDs to 1 at ``high`` SDs.
    """

    low = 2.0
    high = 4.0
    step = 4

    def __init__(self, shape: tuple[int, int], gsig: tuple[float, float] | None) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.active = gsig is not None
        if gsig is None:
            return
        ker = high_pass_kernel(gsig)
        self.gain = float((ker**2).sum())
        h, w = self.shape
        self.small = (max(1, w // self.step), max(1, h // self.step))  # cv2 (width, height)
        self.blur = max(0.5, float(np.mean(gsig)) / self.step)

    def noise_sd(self, frame: np.ndarray) -> float:
        """Robust SD of the sensor noise: median |horizontal difference| on every 16th row.

        Differences of neighbouring pixels cancel smooth signal and keep twice the noise
        variance; their median is zero, so one partial sort gives the MAD.
        """
        rows = np.asarray(frame[:: 4 * self.step], np.float32)
        if rows.shape[1] < 2:
            return 0.0
        d = np.abs(np.diff(rows, axis=1)).ravel()
        return float(1.4826 * np.partition(d, len(d) // 2)[len(d) // 2] / np.sqrt(2.0))

    def apply(self, hp: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """``hp`` weighted by local signal-to-noise (a new float32 array)."""
        if not self.active:
            return hp
        sd = self.noise_sd(frame)
        if not sd > 0:  # a constant (black, white) or noise-free frame: nothing to weigh
            return hp
        energy = cv2.resize(hp * hp, self.small, interpolation=cv2.INTER_AREA)
        energy = cv2.GaussianBlur(energy, (0, 0), self.blur)
        energy *= np.float32(1.0 / (sd * sd * self.gain))
        lo, hi = self.low**2, self.high**2
        weight = np.clip((energy - lo) * np.float32(1.0 / (hi - lo)), 0.0, 1.0)
        weight = cv2.GaussianBlur(weight, (0, 0), self.blur / 2)
        full = cv2.resize(weight, (self.shape[1], self.shape[0]), interpolation=cv2.INTER_LINEAR)
        return cv2.multiply(hp, full)


def peak_confidence(corr: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """How many SDs the peak stands above the mean of its whole correlation plane.

    ``corr`` is (n, H, W) or (H, W); ``peak`` the correlation value at each chosen lag. A
    textured frame gives 10-40; a frame with nothing in common with the template (black,
    white, garbage, or only noise) gives the ~3-4 of the largest of many noise lags. The
    plane's mean and SD come from every other lag in each direction (a quarter of them):
    plenty for two moments, at a quarter of the cost.
    """
    c = np.asarray(corr, np.float32)
    if c.ndim == 2:
        mean, sd = cv2.meanStdDev(np.ascontiguousarray(c[::2, ::2]))
        means, sds = np.array([mean[0, 0]]), np.array([sd[0, 0]])
    else:
        sub = c[:, ::2, ::2].reshape(len(c), -1)
        means = sub.mean(axis=1, dtype=np.float64)
        sds = np.sqrt(np.maximum((sub * sub).mean(axis=1, dtype=np.float64) - means**2, 0.0))
    pk = np.asarray(peak, np.float64).reshape(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(sds > 0, (pk - means) / np.where(sds > 0, sds, 1.0), 0.0)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def subpixel_offsets(centre: np.ndarray, minus: np.ndarray, plus: np.ndarray) -> np.ndarray:
    """Vertex offset (-0.5..0.5) of the peak through three samples; Gaussian fit when possible."""
    v = np.stack([np.asarray(a, np.float64) for a in (centre, minus, plus)])
    c, m, p = v
    positive = (v > 0).all(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lc, lm, lp = np.log(np.where(positive, v, 1.0))
        den_g = lm - 2 * lc + lp
        gauss = np.where(den_g < 0, (lm - lp) / (2 * den_g), 0.0)
        den_p = m - 2 * c + p
        para = np.where(den_p < 0, (m - p) / (2 * den_p), 0.0)
    out = np.where(positive, gauss, para)
    return np.clip(np.nan_to_num(out), -0.5, 0.5)


def peak_in_window(
    corr: np.ndarray,
    centre: tuple[int, int],
    half: tuple[int, int],
    limit: tuple[float, float],
    with_peak: bool = False,
) -> Any:
    """Sub-pixel lags of the largest correlation within ``centre +- half`` (and ``|lag| <= limit``).

    ``corr`` is (n, H, W), circular (lag ``l`` at index ``l mod H``). Returns (n, 2), and
    with ``with_peak`` also the (n,) correlation values at the integer peaks.
    """
    n, h, w = corr.shape
    hy, hx = half
    ly = np.arange(centre[0] - hy - 1, centre[0] + hy + 2)
    lx = np.arange(centre[1] - hx - 1, centre[1] + hx + 2)
    win = corr[:, (ly % h)[:, None], (lx % w)[None, :]].astype(np.float64)
    allowed = (np.abs(ly) <= limit[0])[:, None] & (np.abs(lx) <= limit[1])[None, :]
    allowed[[0, -1], :] = False
    allowed[:, [0, -1]] = False
    if not allowed.any():  # centre beyond the limit: search the window anyway
        allowed[1:-1, 1:-1] = True
    search = np.where(allowed[None], win, -np.inf)
    flat = search.reshape(n, -1).argmax(1)
    iy, ix = np.unravel_index(flat, search.shape[1:])
    rows = np.arange(n)
    centre = win[rows, iy, ix]
    # both axes' fits in one call (rows then columns): fewer steps under the shared GIL
    d = subpixel_offsets(
        np.concatenate([centre, centre]),
        np.concatenate([win[rows, iy - 1, ix], win[rows, iy, ix - 1]]),
        np.concatenate([win[rows, iy + 1, ix], win[rows, iy, ix + 1]]),
    )
    lags = np.stack([ly[iy] + d[:n], lx[ix] + d[n:]], axis=1)
    lags = np.clip(lags, -np.asarray(limit), np.asarray(limit))
    if with_peak:
        return lags, centre
    return lags


@dataclass(frozen=True)
class PatchGrid:
    """Overlapping patches (NoRMCorre layout): size = strides + overlaps, last flush with edge."""

    starts_y: np.ndarray
    starts_x: np.ndarray
    size: tuple[int, int]

    @classmethod
    def build(
        cls, shape: tuple[int, int], strides: tuple[int, int], overlaps: tuple[int, int]
    ) -> PatchGrid:
        size = []
        starts = []
        for dim, stride, overlap in zip(shape, strides, overlaps, strict=True):
            s = min(int(stride) + int(overlap), dim)
            last = dim - s
            st = list(range(0, last, max(int(stride), 1))) + [last]
            starts.append(np.unique(np.asarray(st, np.int64)))
            size.append(s)
        return cls(starts[0], starts[1], (size[0], size[1]))

    @property
    def grid_shape(self) -> tuple[int, int]:
        return len(self.starts_y), len(self.starts_x)

    @property
    def centres_y(self) -> np.ndarray:
        return self.starts_y + (self.size[0] - 1) / 2.0

    @property
    def centres_x(self) -> np.ndarray:
        return self.starts_x + (self.size[1] - 1) / 2.0

    def patches(self, frame: np.ndarray) -> np.ndarray:
        """(n patches, sy, sx): a copy, in row-major grid order, gathered in one indexing
        (not one slice per patch: fewer Python steps while frame threads share the GIL)."""
        windows = np.lib.stride_tricks.sliding_window_view(frame, self.size)
        return windows[self.starts_y[:, None], self.starts_x[None, :]].reshape(-1, *self.size)


class ShiftField:
    """Turns a patch grid of shifts into full-resolution remap coordinates.

    The field is piecewise-linear between patch centres and constant beyond the
    outer ones. Linear interpolation is separable, so the field is ``Wy @ grid @ Wx.T``
    with fixed (pixels x patches) weight matrices, two thin matrix products per channel:
    the maps 2.1x faster than from a ``cv2.remap`` of the small grid (as costly as warping
    the frame itself; BLAS on one thread), and exact where remap rounds positions to 1/32
    of a patch step.
    """

    def __init__(self, shape: tuple[int, int], grid: PatchGrid) -> None:
        self.shape = shape
        self._wy = _interpolation_weights(shape[0], grid.centres_y)
        self._wx_t = np.ascontiguousarray(_interpolation_weights(shape[1], grid.centres_x).T)
        ys, xs = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
        self.base_y, self.base_x = ys, xs

    def full(self, grid_values: np.ndarray) -> np.ndarray:
        """(ny, nx[, c]) values -> (H, W[, c]) smooth field."""
        values = np.asarray(grid_values, np.float32)
        if values.ndim == 2:
            return self._channel(values)
        return np.stack([self._channel(values[..., k]) for k in range(values.shape[2])], -1)

    def maps(self, shifts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """cv2.remap maps for correction shifts (ny, nx, 2) = (dy, dx) per patch."""
        values = np.asarray(shifts, np.float32).reshape(*shifts.shape[:2], 2)
        return self.base_x - self._channel(values[..., 1]), self.base_y - self._channel(
            values[..., 0]
        )

    def _channel(self, grid_values: np.ndarray) -> np.ndarray:
        return self._wy @ grid_values @ self._wx_t


def _interpolation_weights(length: int, centres: np.ndarray) -> np.ndarray:
    """(length, len(centres)) float32: linear interpolation weights of every pixel between
    the patch centres around it (clamped beyond the outer ones)."""
    pos = _grid_coordinate(length, centres).astype(np.float64)
    out = np.zeros((length, len(centres)), np.float64)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(centres) - 1)
    frac = pos - lo
    rows = np.arange(length)
    np.add.at(out, (rows, lo), 1.0 - frac)
    np.add.at(out, (rows, hi), frac)
    return out.astype(np.float32)


def _grid_coordinate(length: int, centres: np.ndarray) -> np.ndarray:
    """Fractional index into ``centres`` of every pixel 0..length-1 (clamped at the ends)."""
    if len(centres) == 1:
        return np.zeros(length, np.float32)
    return np.interp(np.arange(length), centres, np.arange(len(centres))).astype(np.float32)


def warp_rigid(
    frame: np.ndarray,
    shift: tuple[float, float],
    border: object,
    interpolation: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``corrected[y, x] = frame[y - dy, x - dx]`` for the correction ``shift = (dy, dx)``
    (into ``out`` when given)."""
    h, w = frame.shape
    m = np.float32([[1, 0, shift[1]], [0, 1, shift[0]]])
    return cv2.warpAffine(
        frame,
        m,
        (w, h),
        dst=out,
        flags=interpolation,
        borderMode=BORDER_MODES[border],  # type: ignore[index]
        borderValue=_border_value(border),
    )


def warp_field(
    frame: np.ndarray,
    maps: tuple[np.ndarray, np.ndarray],
    border: object,
    interpolation: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    return cv2.remap(
        frame,
        maps[0],
        maps[1],
        interpolation,
        dst=out,
        borderMode=BORDER_MODES[border],  # type: ignore[index]
        borderValue=_border_value(border),
    )


def _border_value(border: object) -> float:
    return float("nan") if border is True else 0.0
