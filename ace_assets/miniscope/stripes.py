"""Find travelling stripe noise in the data itself, and notch exactly what was found.

Why: the reference notch removes a fixed strip of the spectrum (``|ky| >
centerHalfHeightToLeave``, an absolute index tuned for 608-row frames). Real one-photon
movies carry most of their stripe power below 20 cycles per frame height, and small
frames have no spectrum above 90 at all, so it removed nothing there. Here the stripes
are located in the movie's own spectrum, at any frame size:

* **Spectrum.** Sampled frames are divided by their mean (flicker and bleaching become
  a gain of 1) and transformed. The running sums give the *temporally detrended* power
  ``E|F|^2 - |E F|^2``: the static scene (vignette, vessels, resting cells, and the step
  a periodic FFT sees between the top and bottom rows) drops out, travelling bands stay.
  Sampled
  frames come in pairs (t, t+1) at jittered positions, so a band whose phase step per
  frame is a multiple of 2 pi / frameStep cannot alias into the static part, and the
  lag-one product at a band's bin gives its phase step per frame: the temporal
  frequency at which it passes a fixed row.
* **Detection.** A stripe is a narrow concentration of power near the vertical-frequency
  axis: within ``max_tilt_deg`` of it (tilted bands have ``kx != 0``), from
  :data:`MIN_CYCLES` cycles per height up to Nyquist. Each bin of that cone is compared
  with two backgrounds and must exceed both by ``threshold``: the *radial* background
  (the median of bins at the same physical radius, away from the cone: one-photon
  spectra are smooth and nearly isotropic) and the *ray* background (bins a few steps
  further in or out along the same direction: a moving vessel or an image edge puts a
  ridge through the origin, which is high along its whole ray, a band is not). Bins next
  to a seed that still stand ``GROW_RATIO`` above the radial background join it (the
  leakage of a band that does not fit a whole number of periods in the frame).
* **Notch.** :class:`SparseNotch` removes the time-varying part of exactly those bins,
  as a frozen linear operator: two thin matrix products per frame instead of an FFT pair.
  The still scene's content there is kept (see the class). A single bin has no ringing;
  it takes from a cell only that cell's own (small) Fourier coefficient there.

Every setting is a ratio, an angle or a count of cycles per frame height, so it holds at
any frame size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import scipy.fft
from scipy import ndimage

#: Lowest band frequency considered, cycles per frame height (below it: vignette, bleaching).
MIN_CYCLES = 2
#: A bin next to a detected stripe joins the notch if it stands this far above the radial
#: background: the leakage of a band that does not fit a whole number of periods. (Not
#: the ray background: along the ray a leakage bin's neighbours include the band itself.)
GROW_RATIO = 3.0
#: ... and lies at most this many bins from a seed (in ky and in kx).
GROW_BINS = 4
#: Steps along a bin's own ray where the ray background is read, in bins, inwards and out.
RAY_STEPS = (3, 4, 5, 6)
#: The radial background is read this many degrees beyond the cone, so a band never feeds
#: its own background.
CONE_MARGIN_DEG = 15.0
#: Above this many distinct horizontal frequencies the notch is applied with an FFT pair.
MAX_PROJECTION_COLUMNS = 24


def rfft_frequencies(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Signed integer vertical (H, 1) and non-negative horizontal (1, W//2+1) frequencies."""
    h, w = shape
    ky = np.rint(np.fft.fftfreq(h) * h).astype(np.int64)[:, None]
    kx = np.arange(w // 2 + 1, dtype=np.int64)[None, :]
    return ky, kx


def bin_weights(shape: tuple[int, int]) -> np.ndarray:
    """How many bins of the full spectrum each rfft bin stands for (1 or 2)."""
    h, w = shape
    weights = np.full((1, w // 2 + 1), 2.0)
    weights[0, 0] = 1.0
    if w % 2 == 0:
        weights[0, -1] = 1.0
    return weights


def sample_pairs(n_frames: int, step: int, seed: int = 0) -> np.ndarray:
    """First frames t of the sampled pairs (t, t+1): one pair per ``2 * step`` frames, jittered.

    Short movies are sampled more densely (at least ~32 pairs), so the spectrum is
    averaged over enough frames to tell a band from the scene.
    """
    if n_frames < 2:
        return np.zeros(0, np.int64)
    period = max(2, min(2 * int(step), (n_frames - 1) // 32))
    starts = np.arange(0, n_frames - 1, period)
    # jitter within each period, leaving room for the partner: pairs never share a frame
    jitter = np.random.default_rng(seed).integers(0, period - 2, size=len(starts), endpoint=True)
    firsts = starts + jitter
    return firsts[firsts + 1 < n_frames]


# ---------------------------------------------------------------------------------------
# The detrended spectrum


def frame_stack(frames: np.ndarray, shape: tuple[int, ...], what: str) -> tuple[np.ndarray, bool]:
    """``frames`` as a float32 (k, H, W) stack, and whether a single frame was given.

    A filter is built for one frame size; frames of another size are refused.
    """
    single = frames.ndim == 2
    f = np.asarray(frames, np.float32)
    if single:
        f = f[None]
    if f.shape[1:] != tuple(shape):
        raise ValueError(f"frames are {f.shape[1:]}, {what} built for {tuple(shape)}")
    return f, single


class PairedSpectrum:
    """Running sums over sampled frame pairs: detrended power and lag-one cross power.

    Frames are added one at a time with their mean; a pair is committed only when both of
    its frames are accepted (a corrupted frame, known one frame later, is left out).
    """

    def __init__(self, shape: tuple[int, int], workers: int = 1) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        h, w = self.shape
        self.workers = workers
        size = (h, w // 2 + 1)
        self.sum = np.zeros(size, np.complex128)
        self.power_sum = np.zeros(size, np.float64)
        self.lag_sum = np.zeros(size, np.complex128)
        self.n = 0
        self.n_pairs = 0
        self.level = 0.0

    def transform(self, frame: np.ndarray, mean: float) -> np.ndarray | None:
        """Spectrum of one gain-normalised frame (None for a blank frame)."""
        if not (mean > 0 and math.isfinite(mean)):
            return None
        spec = scipy.fft.rfft2(frame.astype(np.float32), workers=self.workers, overwrite_x=True)
        spec *= np.float32(1.0 / mean)
        return spec

    def add_pair(
        self, first: np.ndarray | None, second: np.ndarray | None, means: tuple[float, float]
    ) -> None:
        if first is None or second is None:
            return
        # single-precision work arrays, one double-precision accumulation per sum
        self.sum += first + second
        power = np.abs(first)
        power *= power
        other = np.abs(second)
        other *= other
        power += other
        self.power_sum += power
        lag = np.conjugate(first)
        lag *= second
        self.lag_sum += lag
        self.n += 2
        self.n_pairs += 1
        self.level += float(means[0]) + float(means[1])

    def power(self) -> np.ndarray:
        """Detrended power per rfft bin, grey levels^2: a band of amplitude A gives (A/2)^2."""
        h, w = self.shape
        if self.n == 0:
            return np.zeros_like(self.power_sum)
        mean = self.sum / self.n
        var = self.power_sum / self.n - (mean.real**2 + mean.imag**2)
        level = self.level / self.n
        return np.maximum(var, 0.0) * (level / (h * w)) ** 2

    def mean_coefficients(self, bins: np.ndarray) -> np.ndarray:
        """Mean DFT coefficient of the gain-normalised frames at ``bins`` (the static scene)."""
        if self.n == 0 or len(bins) == 0:
            return np.zeros(len(bins), np.complex128)
        return self.sum[bins[:, 0] % self.shape[0], bins[:, 1]] / self.n

    def phase_steps(self, bins: np.ndarray) -> np.ndarray:
        """Phase advance per frame (rad, in [0, pi]) of the detrended coefficient at ``bins``."""
        if self.n_pairs == 0 or len(bins) == 0:
            return np.zeros(len(bins))
        mean = self.sum / self.n
        ky, kx = bins[:, 0] % self.shape[0], bins[:, 1]
        lag = self.lag_sum[ky, kx] / self.n_pairs - np.abs(mean[ky, kx]) ** 2
        return np.abs(np.angle(lag))


# ---------------------------------------------------------------------------------------
# Detection


@dataclass(frozen=True)
class StripeBand:
    """One detected band: its strongest bin and the power it carries."""

    cycles: int
    """Signed vertical frequency of the peak bin, cycles per frame height."""
    cycles_x: int
    """Horizontal frequency of the peak bin, cycles per frame width (0: untilted)."""
    rms: float
    """Grey levels RMS above the background (the band's amplitude / sqrt 2)."""
    n_bins: int
    frequency_hz: float = float("nan")
    """How often the band passes a fixed row (Hz), aliased into 0..fps/2."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "cycles_per_height": abs(self.cycles),
            "cycles_per_width": self.cycles_x if self.cycles >= 0 else -self.cycles_x,
            "rms_grey": self.rms,
            "n_bins": self.n_bins,
            "frequency_hz": self.frequency_hz,
        }


@dataclass
class StripeDetection:
    """What :func:`detect_stripes` found: the bins to notch and the bands they form."""

    shape: tuple[int, int]
    bins: np.ndarray
    """(m, 2) int [ky, kx] in rfft layout (kx >= 0); closed under ky -> -ky where kx is 0
    or Nyquist, so the notched frame stays real."""
    bands: list[StripeBand]
    background: np.ndarray
    """Radial background power per rfft bin (grey levels^2)."""
    cone: np.ndarray = field(repr=False)
    rms: float = 0.0
    """Grey levels RMS of all stripe power found (above the background)."""

    def removed(self) -> np.ndarray:
        """Boolean rfft-layout mask of the notched bins."""
        mask = np.zeros((self.shape[0], self.shape[1] // 2 + 1), bool)
        if len(self.bins):
            mask[self.bins[:, 0] % self.shape[0], self.bins[:, 1]] = True
        return mask


def stripe_cone(shape: tuple[int, int], max_tilt_deg: float) -> np.ndarray:
    """Bins within ``max_tilt_deg`` of the vertical-frequency axis, from MIN_CYCLES/height up."""
    h, w = shape
    ky, kx = rfft_frequencies(shape)
    tilt = np.degrees(np.arctan2(kx / w, np.abs(ky) / h))
    return (np.abs(ky) >= MIN_CYCLES) & (tilt <= max_tilt_deg)


def radial_background(power: np.ndarray, shape: tuple[int, int], max_tilt_deg: float) -> np.ndarray:
    """Median power at each bin's physical radius, over bins well away from the cone.

    The axes are left out too (they carry the frame's left/right and top/bottom edges).
    """
    h, w = shape
    ky, kx = rfft_frequencies(shape)
    radius = np.hypot(ky / h, kx / w)
    tilt = np.degrees(np.arctan2(kx / w, np.abs(ky) / h))
    away = (tilt >= min(max_tilt_deg + CONE_MARGIN_DEG, 80.0)) & (ky != 0) & (kx != 0)
    rs, ps = radius[away], power[away]
    if rs.size < 9:
        return np.full(power.shape, float(np.median(power)) if power.size else 0.0)
    order = np.argsort(rs)
    rs, ps = rs[order], ps[order]
    grid = np.geomspace(rs[0], rs[-1], 160)
    step = 1.5 / min(h, w)
    level = np.empty(len(grid))
    for i, r0 in enumerate(grid):
        half = max(step, 0.1 * r0)
        a, b = np.searchsorted(rs, [r0 - half, r0 + half])
        if b - a < 9:
            c = int(np.searchsorted(rs, r0))
            a = max(0, min(c - 4, len(rs) - 9))
            b = a + 9
        level[i] = np.median(ps[a:b])
    floor = max(float(np.median(ps)) * 1e-9, 1e-30)
    log_level = np.log(np.maximum(level, floor))
    r_eval = np.clip(radius, grid[0], grid[-1])
    return np.exp(np.interp(np.log(np.maximum(r_eval, 1e-12)), np.log(grid), log_level))


def ray_background(power: np.ndarray, shape: tuple[int, int], cone: np.ndarray) -> np.ndarray:
    """Power expected along each cone bin's own ray, from bins a few steps in and out (0 elsewhere).

    For each step d the points at radius ``|k| + d`` and ``|k|^2 / (|k| + d)`` (symmetric in
    log radius, the inner one at least one bin from the origin) are averaged geometrically:
    a ridge falling as a power of the radius is then predicted exactly, a narrow peak is
    not. Each point reads the largest of its 3 x 3 bins, so a one-bin-wide ridge is not
    missed by rounding. The median over the steps is robust to another band on the ray.
    """
    h, w = shape
    ky, kx = rfft_frequencies(shape)
    power = ndimage.maximum_filter(power, size=3, mode=("wrap", "nearest"))
    iy, ix = np.nonzero(cone)
    fy = ky[iy, 0].astype(np.float64)
    fx = kx[0, ix].astype(np.float64)
    norm = np.maximum(np.hypot(fy, fx), 1e-9)

    def read(scale: np.ndarray) -> np.ndarray:
        sy, sx = np.rint(fy * scale).astype(np.int64), np.rint(fx * scale).astype(np.int64)
        ok = (np.hypot(sy, sx) >= 1) & (np.abs(sy) <= h // 2) & (sx <= w // 2)
        out = np.full(len(iy), np.nan)
        out[ok] = power[sy[ok] % h, sx[ok]]
        return out

    samples = np.full((len(RAY_STEPS), len(iy)), np.nan)
    for row, step in enumerate(RAY_STEPS):
        outer = read((norm + step) / norm)
        inner = read(np.maximum(norm / (norm + step), 1.0 / norm))
        both = np.sqrt(np.maximum(outer, 0.0) * np.maximum(inner, 0.0))
        samples[row] = np.where(np.isnan(outer), inner, np.where(np.isnan(inner), outer, both))
    out = np.zeros(power.shape)
    if len(iy):
        with np.errstate(all="ignore"):
            med = np.nanmedian(samples, axis=0)
        out[iy, ix] = np.nan_to_num(med, nan=0.0)
    return out


def _mirror_axis_columns(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Close the mask under ky -> -ky in the self-conjugate columns (kx = 0 and Nyquist)."""
    h, w = shape
    out = mask.copy()
    cols = [0] + ([w // 2] if w % 2 == 0 and w > 1 else [])
    flip = (-np.arange(h)) % h
    for c in cols:
        out[:, c] |= mask[flip, c]
    return out


def detect_stripes(
    power: np.ndarray,
    shape: tuple[int, int],
    *,
    threshold: float = 10.0,
    max_tilt_deg: float = 30.0,
) -> StripeDetection:
    """Narrow concentrations of detrended power near the vertical-frequency axis.

    ``power`` is :meth:`PairedSpectrum.power` (rfft layout). A bin seeds a stripe when it
    exceeds both the radial and the ray background ``threshold``-fold; its neighbours
    (up to GROW_BINS away) join while they exceed the radial one GROW_RATIO-fold.
    """
    h, w = shape
    power = np.asarray(power, np.float64)
    cone = stripe_cone(shape, max_tilt_deg)
    radial = radial_background(power, shape, max_tilt_deg)
    ray = ray_background(power, shape, cone)
    floor = max(float(np.median(power)) * 1e-6, 1e-30)
    background = np.maximum(np.maximum(radial, ray), floor)
    seeds = cone & (power >= threshold * background)
    ky, kx = rfft_frequencies(shape)
    # leakage of a tilted band may reach past the cone's edge, never below MIN_CYCLES
    grow = (np.abs(ky) >= MIN_CYCLES) & (power >= GROW_RATIO * np.maximum(radial, floor))
    # label in the centred layout, so bands at ky and ky +- 1 across 0 stay connected
    shift = h // 2
    seeds_c = np.roll(seeds, shift, axis=0)
    grow_c = np.roll(grow, shift, axis=0) & ndimage.binary_dilation(
        seeds_c, structure=np.ones((2 * GROW_BINS + 1, 2 * GROW_BINS + 1), bool)
    )
    grow_c |= seeds_c
    labels, n = ndimage.label(grow_c, structure=np.ones((3, 3), bool))
    keep = np.unique(labels[seeds_c])
    keep = keep[keep > 0]
    region_c = np.isin(labels, keep)
    region = _mirror_axis_columns(np.roll(region_c, -shift, axis=0), shape)

    weights = bin_weights(shape)
    excess = np.maximum(power - radial, 0.0) * weights
    bands: list[StripeBand] = []
    labels_full, n_full = ndimage.label(np.roll(region, shift, axis=0), structure=np.ones((3, 3)))
    labels_full = np.roll(labels_full, -shift, axis=0)
    for lab in range(1, n_full + 1):
        sel = labels_full == lab
        peak = np.unravel_index(np.argmax(np.where(sel, power, -np.inf)), power.shape)
        cy, cx = int(ky[peak[0], 0]), int(kx[0, peak[1]])
        self_conjugate = cx == 0 or (w % 2 == 0 and cx == w // 2)
        if self_conjugate and cy < 0:
            continue  # the mirror image of a band listed at +ky
        n_bins = int(sel.sum())
        rms2 = float(excess[sel].sum())
        if self_conjugate:  # both halves of a self-conjugate band are separate components
            mirror = labels_full[(-peak[0]) % h, peak[1]]
            if mirror and mirror != lab:
                msel = labels_full == mirror
                n_bins += int(msel.sum())
                rms2 += float(excess[msel].sum())
        bands.append(StripeBand(cy, cx, math.sqrt(rms2), n_bins))
    bands.sort(key=lambda b: -b.rms)
    bins = np.argwhere(region)
    bins[:, 0] = ky[bins[:, 0], 0]
    return StripeDetection(
        shape=(h, w),
        bins=bins.astype(np.int64),
        bands=bands,
        background=radial,
        cone=cone,
        rms=math.sqrt(float(excess[region].sum())),
    )


def stripe_rms(power: np.ndarray, detection: StripeDetection, **settings: Any) -> float:
    """Stripe power left in ``power`` (grey levels RMS above background).

    Counted in the bins ``detection`` found plus whatever the same detector finds in
    ``power`` itself, so both a notch that missed and a band it never saw show up.
    """
    found = detect_stripes(power, detection.shape, **settings)
    region = detection.removed() | found.removed()
    excess = np.maximum(power - found.background, 0.0) * bin_weights(detection.shape)
    return math.sqrt(float(excess[region].sum()))


# ---------------------------------------------------------------------------------------
# The notch


class SparseNotch:
    """Removes the time-varying part of a given set of spectral bins: a frozen linear operator.

    The coefficient of every notched bin comes from a projection of the frame onto the
    cosines and sines of the notched horizontal frequencies (one thin matrix product),
    then a small complex product over the notched vertical frequencies; the removed
    component is rebuilt the same way backwards.

    ``static`` (one complex coefficient per bin, of the movie's mean frame divided by its
    mean) is the still scene's own content at those bins. It is left in: frame ``f`` loses
    ``N(f - mean(f) * static)``, not ``N(f)``. Without this a notch at 2 cycles per height
    would take the vignette's 2-cycle component out of every frame, leaving a static stripe
    of its own. The operator stays linear in ``f`` (``mean(f)`` is), so it can be frozen.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        bins: np.ndarray,
        static: np.ndarray | None = None,
    ) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        h, w = self.shape
        bins = np.asarray(bins, np.int64).reshape(-1, 2)
        if len(bins) and (
            (bins[:, 1] < 0).any()
            or (bins[:, 1] > w // 2).any()
            or (np.abs(bins[:, 0]) > h // 2).any()
        ):
            raise ValueError(f"notch bins outside the rfft spectrum of a {h}x{w} frame")
        static = (
            np.zeros(len(bins), np.complex128)
            if static is None
            else np.asarray(static, np.complex128).reshape(-1)
        )
        if len(static) != len(bins):
            raise ValueError(f"{len(static)} static coefficients for {len(bins)} notch bins")
        canonical = np.stack([((bins[:, 0] + h // 2) % h) - h // 2, bins[:, 1]], 1)
        # self-conjugate columns (kx = 0, Nyquist): (ky, kx) and (-ky, kx) are one real
        # component, so both go (the mirror's static coefficient is the conjugate)
        mirror = (canonical[:, 1] == 0) | ((w % 2 == 0) & (canonical[:, 1] == w // 2))
        flipped = np.stack(
            [((-canonical[mirror, 0] + h // 2) % h) - h // 2, canonical[mirror, 1]], 1
        )
        canonical = np.concatenate([canonical, flipped])
        static = np.concatenate([static, np.conj(static[mirror])])
        canonical, first = np.unique(canonical, axis=0, return_index=True)
        self.bins = canonical.reshape(-1, 2)
        self.static = static[first]
        self._empty = len(self.bins) == 0
        self._use_fft = False
        if self._empty:
            return
        kxs = np.unique(self.bins[:, 1])
        kys = np.unique(self.bins[:, 0])
        x = np.arange(w, dtype=np.float64)
        y = np.arange(h, dtype=np.float64)
        # kx = 0 (untilted bands, the usual case) is a row sum and a row offset: no products
        self._has_zero = bool(kxs[0] == 0)
        tilted = kxs[1:] if self._has_zero else kxs
        arg_x = 2 * np.pi * np.outer(x, tilted) / w
        v = np.concatenate([np.cos(arg_x), np.sin(arg_x)], axis=1)
        self._v = np.ascontiguousarray(v, np.float32)
        self._vt = np.ascontiguousarray(v.T, np.float32)
        self._n_tilted = len(tilted)
        ey = np.exp(2j * np.pi * np.outer(y, kys) / h)
        self._ey = ey.astype(np.complex64)
        self._eyh = np.ascontiguousarray(ey.conj().T).astype(np.complex64)
        weight = np.where((kxs == 0) | ((w % 2 == 0) & (kxs == w // 2)), 1.0, 2.0) / (h * w)
        iy = np.searchsorted(kys, self.bins[:, 0])
        ix = np.searchsorted(kxs, self.bins[:, 1])
        m = np.zeros((len(kys), len(kxs)), np.float32)
        m[iy, ix] = 1.0
        self._m = m * weight[None, :].astype(np.float32)
        c_static = np.zeros((len(kys), len(kxs)), np.complex64)
        c_static[iy, ix] = self.static
        self._static = c_static
        self._nx = len(kxs)
        self.kys, self.kxs = kys, kxs
        self._use_fft = len(kxs) > MAX_PROJECTION_COLUMNS
        if self._use_fft:
            keep = np.ones((h, w // 2 + 1), np.float32)
            keep[self.bins[:, 0] % h, self.bins[:, 1]] = 0.0
            self._keep = keep
            static_full = np.zeros((h, w // 2 + 1), np.complex64)
            static_full[self.bins[:, 0] % h, self.bins[:, 1]] = self.static
            self._static_image = scipy.fft.irfft2(static_full, s=self.shape).astype(np.float32)

    @property
    def empty(self) -> bool:
        return self._empty

    def coefficients(self, frame: np.ndarray) -> np.ndarray:
        """DFT coefficients (len(kys), len(kxs)) of one float32 frame at the notched frequencies."""
        h = self.shape[0]
        gc = np.empty((h, self._nx), np.complex64)
        if self._has_zero:
            gc[:, 0] = cv2.reduce(frame, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32F)[:, 0]
        m = self._n_tilted
        if m:
            g = cv2.gemm(frame, self._v, 1.0, None, 0.0)
            gc[:, self._nx - m :] = g[:, :m] - 1j * g[:, m:]
        return self._eyh @ gc

    def removed_frame(self, frame: np.ndarray) -> np.ndarray:
        """The notched (time-varying) component of one float32 frame (H, W)."""
        c = self.coefficients(frame)
        if self.static.size:
            c -= np.float32(cv2.mean(frame)[0]) * self._static
        a = self._ey @ (c * self._m)
        m = self._n_tilted
        if m:
            t = a[:, self._nx - m :]
            r = np.ascontiguousarray(np.concatenate([t.real, -t.imag], axis=1), np.float32)
            out = cv2.gemm(r, self._vt, 1.0, None, 0.0)
            if self._has_zero:
                out += a[:, :1].real.astype(np.float32)
            return out
        out = np.empty(self.shape, np.float32)
        out[:] = a[:, :1].real  # a row offset (fills faster than cv2.repeat)
        return out

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Notched float32 frames; ``frames`` is (k, H, W) or (H, W)."""
        f, single = frame_stack(frames, self.shape, "notch")
        if self._empty:
            out = f.copy()
        elif self._use_fft:
            out = self._apply_fft(f)
        else:
            out = f.copy()
            for i in range(len(f)):
                out[i] -= self.removed_frame(f[i])
        return out[0] if single else out

    def _apply_fft(self, f: np.ndarray) -> np.ndarray:
        spec = scipy.fft.rfft2(f, axes=(1, 2))
        spec *= self._keep
        out = scipy.fft.irfft2(spec, s=self.shape, axes=(1, 2)).astype(np.float32, copy=False)
        out += (
            f.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)[:, None, None]
            * (self._static_image[None])
        )
        return out

    def apply_uint8(self, frames: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Notch, multiply frame i by ``scale[i]``, round and saturate to uint8 (fused)."""
        out = np.empty(frames.shape, np.uint8)
        if self._use_fft:
            filtered = self._apply_fft(np.asarray(frames, np.float32))
            for i in range(len(frames)):
                s = float(scale[i])
                cv2.addWeighted(filtered[i], s, filtered[i], 0.0, 0.0, dst=out[i], dtype=cv2.CV_8U)
            return out
        for i in range(len(frames)):
            f = np.asarray(frames[i], np.float32)
            s = float(scale[i])
            removed = f if self._empty else self.removed_frame(f)
            beta = 0.0 if self._empty else -s
            cv2.addWeighted(f, s, removed, beta, 0.0, dst=out[i], dtype=cv2.CV_8U)
        return out


def fit_notch(spectrum: PairedSpectrum, detection: StripeDetection) -> SparseNotch:
    """The notch for the detected bins, keeping the still scene's content there."""
    return SparseNotch(detection.shape, detection.bins, spectrum.mean_coefficients(detection.bins))


class Kymograph:
    """Row profiles over a window of consecutive frames: a travelling band shows as slanted lines.

    Each frame contributes the mean of every row over a central strip of 1/8 of the width
    (a tilted band survives a strip better than a whole row), divided by the frame's mean;
    :meth:`residual` removes each row's mean over the window, leaving what moves, in grey
    levels. Only the window (at most ``length`` frames from the middle of the movie) is kept.
    """

    def __init__(self, n_frames: int, shape: tuple[int, int], length: int = 256) -> None:
        h, w = int(shape[0]), int(shape[1])
        length = max(0, min(int(length), int(n_frames)))
        self.start = (int(n_frames) - length) // 2
        self.stop = self.start + length
        half = max(4, w // 16)
        self._cols = slice(max(0, w // 2 - half), min(w, w // 2 + half))
        self._rows = np.zeros((h, length), np.float32)
        self._level = 0.0

    def add(self, t: int, frame: np.ndarray, mean: float) -> None:
        if not (self.start <= t < self.stop) or not mean > 0:
            return
        strip = np.ascontiguousarray(frame[:, self._cols])
        self._rows[:, t - self.start] = cv2.reduce(strip, 1, cv2.REDUCE_AVG, dtype=cv2.CV_32F)[
            :, 0
        ] / np.float32(mean)
        self._level += float(mean)

    def residual(self) -> np.ndarray:
        """(H, frames) float32 grey levels: row profile minus its mean over the window."""
        n = self._rows.shape[1]
        if n == 0:
            return self._rows.copy()
        level = self._level / n
        return (self._rows - self._rows.mean(axis=1, keepdims=True)) * np.float32(level)
