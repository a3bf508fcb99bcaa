"""One session's field of view aligned to another's: rigid with a small turn, then a bounded
smooth non-rigid field.

Why: between days the Miniscope's baseplate sits a little differently, so the same tissue
is shifted by pixels to tens of pixels and turned by a degree or a few, and the brain
deforms slightly. Within-session motion correction cannot see this; footprints of two
sessions are only comparable once one session's summary image (the correlation image, in
which cells are bright) is aligned to the reference session's.

Convention: a :class:`SessionTransform` maps reference-frame pixel coordinates ``(y, x)``
to the moving session's: ``p_mov = R (p_ref - c) + c + t + d(p_ref) - offset``, with ``c``
the reference frame's centre, ``R`` a turn by ``angle_deg``
(:func:`ace_assets.demo.sessions_synth.rotation`), ``t`` the translation, ``d`` the
non-rigid field sampled on a coarse grid of the reference frame and ``offset`` where the
moving frame's pixel (0, 0) sits in the reference frame before alignment (the difference of
the two crops' corners on the sensor).

Method: both images are high-passed at the neuron size (:func:`registration.high_pass`,
``gSig``) and tapered at the borders; for each angle on a grid fine enough that the
frame's corners move by less than a neuron, the zero-padded cross-correlation gives the
best translation; the best angle is refined on a finer grid. Then patches a few neurons
wide are cross-correlated again, in up to three passes; each patch's shift (at most
``MAX_NONRIGID_GSIG * gSig``) counts in proportion to how clearly its correlation peaks, so
a patch of background only borrows its neighbours' shift; the smoothed shifts are
interpolated into the field, which is kept only while it raises the images' correlation.
The ``significance`` of the rigid peak (its height over the spread of the correlation
surface, a z-score) says whether the two images show the same tissue at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import fft
from scipy.ndimage import gaussian_filter, map_coordinates

from ace_assets.miniscope.registration import high_pass

#: largest turn searched (degrees); days apart, baseplates turn by a few degrees at most
MAX_ROTATION_DEG = 8.0
#: largest translation searched, as a fraction of the frame's shorter side
MAX_SHIFT_FRACTION = 0.4
#: non-rigid displacement bound, in neuron sizes (gSig): the brain deforms by less than a
#: cell between days; a larger warp is a different field of view, not a deformation
MAX_NONRIGID_GSIG = 2.0
#: non-rigid patches are this many neuron sizes (gSig) wide, at least a quarter frame
PATCH_GSIG = 16
#: passes of the non-rigid estimate, each on the image the previous one aligned
NONRIGID_PASSES = 3
#: correlation gain a non-rigid pass must bring to be kept
MIN_GAIN = 0.005
#: a patch whose correlation peak is not this many spreads above the rest is not trusted
MIN_PATCH_Z = 4.0


@dataclass(frozen=True)
class SessionTransform:
    """Reference-frame coordinates -> moving-frame coordinates (see the module doc)."""

    shape: tuple[int, int]  # reference frame (H, W)
    angle_deg: float = 0.0
    translation: tuple[float, float] = (0.0, 0.0)
    offset: tuple[float, float] = (0.0, 0.0)
    #: (2, gh, gw) non-rigid (dy, dx) on the grid ``grid_y`` x ``grid_x``; None: rigid only
    field: np.ndarray | None = None
    grid_y: np.ndarray | None = None
    grid_x: np.ndarray | None = None
    correlation: float = float("nan")  # of the aligned high-passed images
    significance: float = float("nan")  # z-score of the rigid correlation peak

    @property
    def centre(self) -> np.ndarray:
        return (np.asarray(self.shape, float) - 1.0) / 2.0

    def _rotation(self) -> np.ndarray:
        a = np.deg2rad(self.angle_deg)
        return np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])

    def displacement(self, points_ref: np.ndarray) -> np.ndarray:
        """The non-rigid field ``d`` at reference points (N, 2); zeros when rigid."""
        pts = np.asarray(points_ref, float).reshape(-1, 2)
        if self.field is None or self.grid_y is None or self.grid_x is None:
            return np.zeros_like(pts)
        gy = np.interp(pts[:, 0], self.grid_y, np.arange(len(self.grid_y)))
        gx = np.interp(pts[:, 1], self.grid_x, np.arange(len(self.grid_x)))
        return np.stack(
            [map_coordinates(self.field[k], [gy, gx], order=1, mode="nearest") for k in (0, 1)],
            axis=1,
        )

    def to_moving(self, points_ref: np.ndarray) -> np.ndarray:
        pts = np.asarray(points_ref, float).reshape(-1, 2)
        c = self.centre
        rigid = (pts - c) @ self._rotation().T + c + np.asarray(self.translation)
        return rigid + self.displacement(pts) - np.asarray(self.offset)

    def to_reference(self, points_mov: np.ndarray, iterations: int = 4) -> np.ndarray:
        """Inverse of :meth:`to_moving` (fixed-point on the small smooth field)."""
        pts = np.asarray(points_mov, float).reshape(-1, 2) + np.asarray(self.offset)
        c = self.centre
        base = pts - np.asarray(self.translation)
        rot_t = self._rotation()
        out = (base - c) @ rot_t + c
        for _ in range(iterations if self.field is not None else 0):
            out = (base - self.displacement(out) - c) @ rot_t + c
        return out

    def warp(self, image_mov: np.ndarray) -> np.ndarray:
        """The moving image resampled on the reference frame (0 outside it)."""
        h, w = self.shape
        img = np.asarray(image_mov, np.float32)
        rot = self._rotation()
        # the rigid part as OpenCV's (x, y) affine map from reference to moving pixels
        lin = rot[::-1, ::-1]
        c = self.centre[::-1]
        shift = c - lin @ c + (np.asarray(self.translation) - np.asarray(self.offset))[::-1]
        affine = np.hstack([lin, shift[:, None]]).astype(np.float64)
        if self.field is None:
            return cv2.warpAffine(
                img,
                affine,
                (w, h),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0.0,
            )
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        disp = self.displacement(np.column_stack([yy.ravel(), xx.ravel()]))
        map_x = affine[0, 0] * xx + affine[0, 1] * yy + affine[0, 2] + disp[:, 1].reshape(h, w)
        map_y = affine[1, 0] * xx + affine[1, 1] * yy + affine[1, 2] + disp[:, 0].reshape(h, w)
        return cv2.remap(
            img,
            map_x.astype(np.float32),
            map_y.astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )


def prepare(image: np.ndarray, gsig: float) -> np.ndarray:
    """High-passed at the neuron size, zero-mean unit-SD, tapered to 0 at the borders."""
    img = np.nan_to_num(np.asarray(image, np.float32))
    hp = high_pass(img, (gsig, gsig))
    sd = float(hp.std())
    hp = (hp - hp.mean()) / (sd if sd > 0 else 1.0)
    return hp * _taper(hp.shape, max(2.0, 2 * gsig))


def _taper(shape: tuple[int, ...], width: float) -> np.ndarray:
    ramp = [np.clip(np.minimum(np.arange(n), np.arange(n)[::-1]) / width, 0, 1) for n in shape]
    return (np.sin(0.5 * np.pi * ramp[0])[:, None] * np.sin(0.5 * np.pi * ramp[1])[None, :]).astype(
        np.float32
    )


def embed(image: np.ndarray, offset: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """``image`` placed with its (0, 0) at ``offset`` on a zero canvas of ``shape``."""
    out = np.zeros(shape, np.float32)
    oy, ox = int(round(offset[0])), int(round(offset[1]))
    h, w = image.shape
    y0, x0 = max(oy, 0), max(ox, 0)
    y1, x1 = min(oy + h, shape[0]), min(ox + w, shape[1])
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = image[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return out


def _fast_size(h: int, w: int) -> tuple[int, int]:
    """At least ``(h, w)``, sizes the FFT factors well (a prime factor makes it crawl)."""
    return (fft.next_fast_len(h, real=True), fft.next_fast_len(w, real=True))


def _cross_correlation(
    ref_f: np.ndarray, mov: np.ndarray, pad: tuple[int, int], size: tuple[int, int]
) -> np.ndarray:
    """``xc[u] = sum_p ref(p) mov(p + u)`` (``ref_f``: ref's rfft2 at ``size``), lags centred:
    index ``pad`` is lag 0."""
    mov_f = fft.rfft2(mov, s=size)
    xc = fft.irfft2(np.conj(ref_f) * mov_f, s=size)
    return np.roll(xc, pad, axis=(0, 1))


def _peak(xc: np.ndarray, pad: tuple[int, int], bound: tuple[int, int]) -> tuple[float, np.ndarray]:
    """Highest value within ``bound`` lags and its sub-pixel lag ``(uy, ux)``."""
    py, px = pad
    by, bx = bound
    win = xc[py - by : py + by + 1, px - bx : px + bx + 1]
    iy, ix = np.unravel_index(int(np.argmax(win)), win.shape)
    lag = np.array([iy - by, ix - bx], float)
    for axis, i, n in ((0, iy, win.shape[0]), (1, ix, win.shape[1])):
        if 0 < i < n - 1:
            sl = [iy, ix]
            sl[axis] = i - 1
            lo = win[tuple(sl)]
            sl[axis] = i + 1
            hi = win[tuple(sl)]
            den = lo - 2 * win[iy, ix] + hi
            if den < 0:
                lag[axis] += float(np.clip(0.5 * (lo - hi) / den, -0.5, 0.5))
    return float(win[iy, ix]), lag


def _significance(xc: np.ndarray, pad: tuple[int, int], bound: tuple[int, int]) -> float:
    py, px = pad
    by, bx = bound
    win = xc[py - by : py + by + 1, px - bx : px + bx + 1]
    med = float(np.median(win))
    spread = 1.4826 * float(np.median(np.abs(win - med)))
    return float((win.max() - med) / spread) if spread > 0 else float("inf")


def _rotate(image: np.ndarray, angle_deg: float) -> np.ndarray:
    """``out(q) = image(R (q - c) + c)`` (the turn of :class:`SessionTransform`)."""
    t = SessionTransform(image.shape, angle_deg=angle_deg)  # type: ignore[arg-type]
    return t.warp(image)


def _rigid_search(
    ref: np.ndarray, mov: np.ndarray, gsig: float, max_rotation_deg: float
) -> tuple[float, np.ndarray, float, float]:
    """Best (angle, translation, peak, significance) of ``mov`` against ``ref``."""
    h, w = ref.shape
    bound = (int(MAX_SHIFT_FRACTION * min(h, w)),) * 2
    pad = (bound[0] + 1, bound[1] + 1)
    size = _fast_size(h + 2 * pad[0], w + 2 * pad[1])
    ref_f = fft.rfft2(ref, s=size)
    ref_norm = float(np.sqrt((ref**2).sum())) or 1.0
    # a step that moves the frame's corners by at most a neuron size
    step = float(np.rad2deg(gsig / (0.5 * np.hypot(h, w))))
    best: tuple[float, float, np.ndarray, np.ndarray] | None = None

    def score(angle: float) -> tuple[float, float, np.ndarray, np.ndarray]:
        rot = _rotate(mov, angle)
        xc = _cross_correlation(ref_f, rot, pad, size) / (
            ref_norm * (float(np.sqrt((rot**2).sum())) or 1.0)
        )
        value, lag = _peak(xc, pad, bound)
        return value, angle, lag, xc

    for grid in (
        np.arange(-max_rotation_deg, max_rotation_deg + step / 2, step),
        None,
    ):
        if grid is None:  # refine around the best coarse angle
            assert best is not None
            grid = best[1] + np.linspace(-step, step, 9)
        for angle in grid:
            s = score(float(angle))
            if best is None or s[0] > best[0]:
                best = s
    assert best is not None
    value, angle, lag, xc = best
    # ref(p) ~ rot(p + u) = mov(R (p + u - c) + c): translation t = R u
    t = SessionTransform(ref.shape, angle_deg=angle)  # type: ignore[arg-type]
    translation = t._rotation() @ lag
    return angle, translation, value, _significance(xc, pad, bound)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    mask = (a != 0) & (b != 0)
    if mask.sum() < 16:
        return float("nan")
    x, y = a[mask] - a[mask].mean(), b[mask] - b[mask].mean()
    den = float(np.sqrt((x**2).sum() * (y**2).sum()))
    return float((x * y).sum() / den) if den > 0 else float("nan")


def _patch_lags(
    ref: np.ndarray, aligned: np.ndarray, ys: np.ndarray, xs: np.ndarray, patch: int, limit: float
) -> np.ndarray:
    """(2, gh, gw) lag of each patch of ``aligned`` against ``ref`` (within ``limit``),
    smoothed across the grid; a patch without a clear peak (few cells, only background)
    takes its neighbours' lag instead of its own noise."""
    bound = (int(np.ceil(limit)) + 1,) * 2
    pad = (bound[0] + 1, bound[1] + 1)
    size = _fast_size(patch + 2 * pad[0], patch + 2 * pad[1])
    taper = _taper((patch, patch), max(2.0, patch / 8))
    lags = np.zeros((2, len(ys), len(xs)))
    weight = np.zeros((len(ys), len(xs)))
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            r = ref[y : y + patch, x : x + patch] * taper
            a = aligned[y : y + patch, x : x + patch] * taper
            xc = _cross_correlation(fft.rfft2(r, s=size), a, pad, size)
            lags[:, i, j] = np.clip(_peak(xc, pad, bound)[1], -limit, limit)
            z = _significance(xc, pad, bound)
            weight[i, j] = 0.0 if not np.isfinite(z) or z < MIN_PATCH_Z else z
    norm = gaussian_filter(weight, 0.7, mode="nearest")
    if not norm.max() > 0:
        return np.zeros_like(lags)
    smooth = [gaussian_filter(lags[k] * weight, 0.7, mode="nearest") for k in (0, 1)]
    return np.stack([np.where(norm > 0, v / np.where(norm > 0, norm, 1.0), 0.0) for v in smooth])


def _nonrigid(
    ref: np.ndarray, rigid: SessionTransform, mov: np.ndarray, gsig: float
) -> SessionTransform:
    """The rigid transform plus a bounded smooth field, if that aligns the images better.

    Patch lags are measured on the image aligned so far, smoothed across the grid and added
    to the field, for up to ``NONRIGID_PASSES`` passes while the correlation rises.
    """
    h, w = ref.shape
    patch = int(max(PATCH_GSIG * gsig, min(h, w) / 4))
    if patch * 2 > min(h, w):
        return rigid
    stride = patch // 2
    ys = np.arange(0, h - patch + 1, stride)
    xs = np.arange(0, w - patch + 1, stride)
    limit = MAX_NONRIGID_GSIG * gsig
    rot = rigid._rotation()
    field = np.zeros((2, len(ys), len(xs)))
    best = current = rigid
    for _ in range(NONRIGID_PASSES):
        lags = _patch_lags(ref, current.warp(mov), ys, xs, patch, limit)
        # a lag u in the aligned frame is R u in the moving frame
        field = np.clip(field + np.einsum("ab,bij->aij", rot, lags), -limit, limit)
        current = SessionTransform(
            rigid.shape,
            rigid.angle_deg,
            rigid.translation,
            rigid.offset,
            field=field.copy(),
            grid_y=ys + (patch - 1) / 2.0,
            grid_x=xs + (patch - 1) / 2.0,
            significance=rigid.significance,
        )
        corr = _pearson(ref, current.warp(mov))
        if not (np.isfinite(corr) and corr > best.correlation + MIN_GAIN):
            break
        best = current = _with_correlation(current, corr)
    return best


def _with_correlation(t: SessionTransform, corr: float) -> SessionTransform:
    return SessionTransform(
        t.shape,
        t.angle_deg,
        t.translation,
        t.offset,
        t.field,
        t.grid_y,
        t.grid_x,
        corr,
        t.significance,
    )


def align_session(
    reference: np.ndarray,
    moving: np.ndarray,
    gsig: float,
    *,
    offset: tuple[float, float] = (0.0, 0.0),
    max_rotation_deg: float = MAX_ROTATION_DEG,
    nonrigid: bool = True,
) -> SessionTransform:
    """How ``moving``'s summary image maps onto ``reference``'s (frames may differ in size).

    ``offset``: where ``moving``'s pixel (0, 0) sits in the reference frame before
    alignment (from the two crops); the search starts there.
    """
    if gsig <= 0:
        raise ValueError(f"gsig must be positive, got {gsig}")
    shape = tuple(int(n) for n in np.shape(reference))
    ref = prepare(reference, gsig)
    mov = prepare(moving, gsig)
    placed = embed(mov, (int(round(offset[0])), int(round(offset[1]))), shape)  # type: ignore[arg-type]
    angle, translation, _, significance = _rigid_search(ref, placed, gsig, max_rotation_deg)
    rounded = (float(int(round(offset[0]))), float(int(round(offset[1]))))
    rigid = SessionTransform(
        shape,  # type: ignore[arg-type]
        angle_deg=angle,
        translation=(float(translation[0]), float(translation[1])),
        offset=rounded,
        significance=significance,
    )
    rigid = _with_correlation(rigid, _pearson(ref, rigid.warp(mov)))
    return _nonrigid(ref, rigid, mov, gsig) if nonrigid else rigid
