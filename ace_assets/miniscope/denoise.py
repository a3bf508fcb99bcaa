"""Remove Miniscope noise: travelling stripes, whole-frame flicker and corrupted frames.

Three steps, streamed in two passes over the movie (memory does not grow with it):

1. **Corrupted frames** (:mod:`ace_assets.miniscope.corrupt_frames`): garbage or torn
   rows, black, white or repeated frames and frames the decoder could not read are found
   in the first pass and interpolated from their intact neighbours in the second.
2. **Stripes**, chosen by ``stripe_method``:

   * ``auto`` (default, :mod:`ace_assets.miniscope.stripes`): the first pass also takes the
     detrended spectrum of sampled frames; narrow concentrations near the
     vertical-frequency axis (tilted or not, 2 cycles per height up to Nyquist) are found
     against the movie's own background and exactly those bins are notched. Nothing in
     it depends on the frame size.
   * ``reference``: ACE-neuro's notch, a thin vertical strip of each frame's centred
     spectrum (``|kx| <= notchHalfWidth`` and ``|ky| > centerHalfHeightToLeave``) within
     ``goodRadius``. ``centerHalfHeightToLeave`` is an absolute index (90 suits 608-row
     V4 frames; a 240-row frame has no spectrum above 120 and low-frequency stripes sit
     far below it).
   * ``none``.

   Whichever runs, the filter is a frozen linear operator (:class:`StripeFilter`) that
   can be rebuilt from the report, and the stripes found are measured before and after.
3. **Flicker**: each frame's mean over time is low-passed (zero-phase Butterworth,
   ``cutoff``, ``butterOrder``) and every frame is rescaled by
   ``1 + (lowpassed - mean) / mean``. A notch keeps the DC term, so the means of the raw
   frames are the means of the filtered ones: the first pass decodes each frame once,
   takes its mean and parks the raw frame in the output store; the second filters it
   there (the movie is decoded once, not three times with a seek per frame).

Why the reference notch is fast: with the default ``goodRadius`` (larger than the
spectrum) its mask is separable, the removed part is ``R = Hy @ f @ Bx`` with ``Bx``
projecting rows onto the ``2*notchHalfWidth+1`` lowest horizontal frequencies and ``Hy``
projecting columns onto the vertical frequencies above ``centerHalfHeightToLeave``; both
are low-rank, so ``R`` costs a few thin matrix products per frame
(``method="projection"``), ~10x less than an FFT pair. A radius that cuts into the
spectrum makes the mask non-separable; then a batched real FFT pair is used
(``method="rfft"``). :func:`reference_denoise_frame` is the textbook complex FFT +
fftshift version both are tested against. One deliberate difference from the reference,
on by default (``wrapCorrection``): the top-to-bottom intensity step of a vignetted frame
is taken out before filtering, so the periodic FFT does not ring on the first and last
rows (static stripes there bias motion correction towards zero shift). The ``auto`` notch
needs no such correction: it leaves the still scene's content at its bins alone.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import cv2
import numpy as np
import scipy.fft
from scipy.signal import butter, sosfiltfilt

from ace_assets.catalog.stage_params import StageParams, stage_params
from ace_assets.errors import AceInputError
from ace_assets.io.row_file import RowFile
from ace_assets.miniscope.chunks import (
    FrameSink,
    MovieSource,
    background,
    chunk_factory,
)
from ace_assets.miniscope.corrupt_frames import (
    ROW_GROW_RATIO,
    FrameScreen,
    classify_frames,
    clean_means,
    repaired_blocks,
)
from ace_assets.miniscope.stripes import (
    GROW_RATIO,
    Kymograph,
    PairedSpectrum,
    SparseNotch,
    StripeDetection,
    bin_weights,
    detect_stripes,
    fit_notch,
    frame_stack,
    sample_pairs,
    stripe_rms,
)

STRIPE_METHODS = ("auto", "reference", "none")


@stage_params("denoise", frozen=True)
class DenoiseParams(StageParams):
    """Denoise settings: ACE-neuro's ``denoiseMovie`` names, plus stripe finding and repair.

    Defaults and meanings: the ``denoise`` group of the parameter specs.
    """

    frameStep: int
    goodRadius: float
    notchHalfWidth: int
    centerHalfHeightToLeave: int
    cutoff: float
    butterOrder: int
    wrapCorrection: bool
    """Reference notch only: take out the top-to-bottom intensity step before filtering.

    The FFT treats the frame as periodic, so a vignetted frame whose top and bottom
    rows differ has a step at the wrap; the notch then rings there, leaving static
    stripes on the first and last rows that pull motion correction towards zero
    shift. The step is removed as a vertical ramp before filtering and put back
    afterwards. False reproduces the reference exactly."""
    stripe_method: str
    stripe_threshold: float
    stripe_max_tilt: float
    corrupt_row_ratio: float
    repair_corrupted_frames: bool

    def validate(self) -> None:
        checks = {
            "frameStep": self.frameStep >= 1,
            "goodRadius": self.goodRadius >= 0,
            "notchHalfWidth": self.notchHalfWidth >= 0,
            "centerHalfHeightToLeave": self.centerHalfHeightToLeave >= 0,
            "cutoff": self.cutoff > 0,
            "butterOrder": 1 <= self.butterOrder <= 20,
            "stripe_method": self.stripe_method in STRIPE_METHODS,
            "stripe_threshold": self.stripe_threshold >= GROW_RATIO,
            "stripe_max_tilt": 0 < self.stripe_max_tilt <= 60,
            "corrupt_row_ratio": self.corrupt_row_ratio > ROW_GROW_RATIO,
        }
        hints = {
            "stripe_method": f"one of {list(STRIPE_METHODS)}",
            "stripe_threshold": f"a power ratio of at least {GROW_RATIO:g}",
            "stripe_max_tilt": "degrees, above 0 and at most 60",
            "corrupt_row_ratio": f"a ratio above {ROW_GROW_RATIO:g}",
        }
        for name, ok in checks.items():
            if not ok:
                hint = f" (expected {hints[name]})" if name in hints else ""
                raise AceInputError(f"invalid value {getattr(self, name)!r}{hint}", column=name)


# ---------------------------------------------------------------------------------------
# The spectral mask


def _freq_grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Integer frequencies of the centred (fftshift) spectrum, as (ky column, kx row)."""
    h, w = shape
    return (np.arange(h) - h // 2)[:, None], (np.arange(w) - w // 2)[None, :]


def _keep(ky: np.ndarray, kx: np.ndarray, p: DenoiseParams) -> np.ndarray:
    inside = ky.astype(np.float64) ** 2 + kx.astype(np.float64) ** 2 <= float(p.goodRadius) ** 2
    strip = (np.abs(kx) <= p.notchHalfWidth) & (np.abs(ky) > p.centerHalfHeightToLeave)
    return inside & ~strip


def spectral_mask(shape: tuple[int, int], params: DenoiseParams | None = None) -> np.ndarray:
    """Boolean mask of the *centred* spectrum (True = keep), as a user would draw it."""
    ky, kx = _freq_grid(shape)
    return _keep(ky, kx, params or DenoiseParams())


def rfft_mask(shape: tuple[int, int], params: DenoiseParams | None = None) -> np.ndarray:
    """The same mask in ``rfft2`` layout (unshifted rows, non-negative columns)."""
    h, w = shape
    ky = np.rint(np.fft.fftfreq(h) * h).astype(np.int64)[:, None]
    kx = np.arange(w // 2 + 1)[None, :]
    return _keep(ky, kx, params or DenoiseParams())


def reference_denoise_frame(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Band removal the straightforward way: complex FFT, fftshift, mask, invert (float64)."""
    spectrum = np.fft.fftshift(np.fft.fft2(np.asarray(frame, np.float64)))
    back = np.fft.ifft2(np.fft.ifftshift(spectrum * mask))
    return back.real


def fourier_basis(n: int, freqs: np.ndarray) -> np.ndarray:
    """Orthonormal real basis (n, rank) of length-n signals made of the |frequencies| ``freqs``.

    ``freqs`` are non-negative integers <= n // 2; cosine and sine pairs span the
    positive and negative frequency of each, so the set is Hermitian-symmetric.
    """
    x = np.arange(n, dtype=np.float64)
    cols = []
    for k in sorted({int(f) for f in freqs}):
        if k == 0:
            cols.append(np.full(n, 1.0 / math.sqrt(n)))
        elif 2 * k == n:
            cols.append(np.where(x % 2 == 0, 1.0, -1.0) / math.sqrt(n))
        else:
            arg = 2 * np.pi * k * x / n
            cols += [np.cos(arg) * math.sqrt(2.0 / n), np.sin(arg) * math.sqrt(2.0 / n)]
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))


class BandFilter:
    """The band-removal operator for one frame shape, precomputed once."""

    def __init__(
        self,
        shape: tuple[int, int],
        params: DenoiseParams | None = None,
        method: str = "auto",
        workers: int = 1,
    ) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.params = params or DenoiseParams()
        self.workers = workers
        h, w = self.shape
        corner = (h // 2) ** 2 + (w // 2) ** 2
        separable = float(self.params.goodRadius) ** 2 >= corner
        if method == "auto":
            method = "projection" if separable else "rfft"
        if method == "projection" and not separable:
            raise ValueError("projection needs goodRadius to cover the whole spectrum")
        if method not in ("projection", "rfft"):
            raise ValueError(f"unknown band-filter method {method!r}")
        self.method = method
        self.mask = spectral_mask(self.shape, self.params)
        self._ramp = (
            (np.arange(h, dtype=np.float32) / max(h - 1, 1) - 0.5)[:, None]
            if self.params.wrapCorrection
            else None
        )
        if method == "rfft":
            self._rmask = rfft_mask(self.shape, self.params).astype(np.float32)
            return
        p = self.params
        cols = fourier_basis(w, np.arange(min(p.notchHalfWidth, w // 2) + 1))
        low = np.arange(min(p.centerHalfHeightToLeave, h // 2) + 1)
        high = np.arange(p.centerHalfHeightToLeave + 1, h // 2 + 1)
        n_high = 2 * len(high) - (1 if h % 2 == 0 and len(high) else 0)
        # Project columns onto the removed (high) vertical band through whichever
        # basis is thinner: directly, or as identity minus the kept low band.
        self._rows_complement = n_high > h - n_high
        rows = fourier_basis(h, low if self._rows_complement else high)
        self._v = np.ascontiguousarray(cols, np.float32)
        self._vt = np.ascontiguousarray(cols.T, np.float32)
        self._u = np.ascontiguousarray(rows, np.float32)
        self._ut = np.ascontiguousarray(rows.T, np.float32)
        self._nothing = n_high == 0

    def removed_frame(self, frame: np.ndarray) -> np.ndarray:
        """The band component of one float32 frame (projection method only).

        Per-frame OpenCV GEMMs: single-threaded and unaffected by BLAS thread
        oversubscription on a shared machine.
        """
        g = cv2.gemm(frame, self._v, 1.0, None, 0.0)
        if self._ramp is not None:
            # (f - ramp) V = f V - ramp V, and ramp V is rank one: do it in the thin space
            jump = (frame[-1] - frame[0])[None, :]
            g -= self._ramp * cv2.gemm(jump, self._v, 1.0, None, 0.0)
        c = cv2.gemm(self._ut, g, 1.0, None, 0.0)
        if self._rows_complement:
            g = cv2.gemm(self._u, c, -1.0, g, 1.0)
        else:
            g = cv2.gemm(self._u, c, 1.0, None, 0.0)
        return cv2.gemm(g, self._vt, 1.0, None, 0.0)

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Band-filtered float32 frames; ``frames`` is (k, H, W) or (H, W)."""
        f, single = frame_stack(frames, self.shape, "filter")
        if self.method == "projection":
            out = f.copy()
            if not self._nothing:
                for i in range(len(f)):
                    out[i] -= self.removed_frame(f[i])
        else:
            ramp = None
            if self._ramp is not None:
                ramp = self._ramp[None] * (f[:, -1] - f[:, 0])[:, None, :]
                f = f - ramp
            spec = scipy.fft.rfft2(f, axes=(1, 2), workers=self.workers)
            spec *= self._rmask
            out = scipy.fft.irfft2(spec, s=self.shape, axes=(1, 2), workers=self.workers)
            out = out.astype(np.float32, copy=False)
            if ramp is not None:
                out += ramp
        return out[0] if single else out

    def apply_uint8(self, frames: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Filter, multiply frame i by ``scale[i]``, round and saturate to uint8.

        The projection path fuses subtract-scale-round-clip into one OpenCV pass
        per frame (``addWeighted`` saturates and rounds half to even).
        """
        if self.method != "projection" or self._nothing:
            return to_uint8(self.apply(np.asarray(frames, np.float32)), scale)
        out = np.empty(frames.shape, np.uint8)
        for i in range(len(frames)):
            f = np.asarray(frames[i], np.float32)
            s = float(scale[i])
            cv2.addWeighted(f, s, self.removed_frame(f), -s, 0.0, dst=out[i], dtype=cv2.CV_8U)
        return out


class StripeFilter:
    """The stripe filter one denoise run applied, frozen: a linear operator on frames.

    Rebuild it from a denoise report (or a ``denoised_movie`` manifest) with
    :meth:`from_report`; ``apply`` then does to any frames exactly what was done to the
    movie, e.g. to measure how much of a known band it lets through.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        method: str,
        *,
        band: BandFilter | None = None,
        notch: SparseNotch | None = None,
    ) -> None:
        if method not in STRIPE_METHODS:
            raise ValueError(f"unknown stripe method {method!r}; expected one of {STRIPE_METHODS}")
        self.shape = (int(shape[0]), int(shape[1]))
        self.method = method
        self._band = band
        self._notch = notch if notch is not None else SparseNotch(self.shape, np.zeros((0, 2)))
        if method == "reference" and band is None:
            raise ValueError("the reference method needs its BandFilter")

    @classmethod
    def reference(
        cls,
        shape: tuple[int, int],
        params: DenoiseParams,
        compute: str = "auto",
        workers: int = 1,
    ) -> StripeFilter:
        return cls(shape, "reference", band=BandFilter(shape, params, compute, workers))

    @classmethod
    def from_report(
        cls, report: DenoiseReport | Mapping[str, Any], shape: tuple[int, int] | None = None
    ) -> StripeFilter:
        """The filter a denoise report (or ``denoised_movie`` manifest) describes."""
        if isinstance(report, DenoiseReport):
            report = {**report.manifest(), "frame_shape": report.frame_shape}
        if shape is None:
            shape = tuple(report["frame_shape"])  # type: ignore[assignment]
        assert shape is not None
        method = str(report.get("stripe_method", "reference"))
        if method == "reference":
            return cls.reference(shape, DenoiseParams(**report["params"]))
        if method == "none":
            return cls(shape, "none")
        bins = np.asarray(report["stripe_bins"], np.int64).reshape(-1, 2)
        parts = np.asarray(report["stripe_static"], np.float64).reshape(-1, 2)
        return cls(shape, "auto", notch=SparseNotch(shape, bins, parts[:, 0] + 1j * parts[:, 1]))

    def to_report(self) -> dict[str, Any]:
        """What :meth:`from_report` needs besides ``params``: JSON-ready."""
        static = self._notch.static
        return {
            "stripe_method": self.method,
            "stripe_bins": self._notch.bins.tolist() if self.method == "auto" else [],
            "stripe_static": (
                np.stack([static.real, static.imag], 1).tolist() if self.method == "auto" else []
            ),
            "frame_shape": list(self.shape),
        }

    @property
    def compute(self) -> str:
        """How it runs: the reference's projection or rfft, the sparse notch, or nothing."""
        if self._band is not None:
            return self._band.method
        return "none" if self._notch.empty else "sparse_notch"

    def removed(self) -> np.ndarray:
        """Boolean rfft-layout mask of the bins the filter takes out."""
        h, w = self.shape
        if self._band is not None:
            return ~rfft_mask(self.shape, self._band.params)
        mask = np.zeros((h, w // 2 + 1), bool)
        bins = self._notch.bins
        if len(bins):
            mask[bins[:, 0] % h, bins[:, 1]] = True
        return mask

    def keep_mask(self) -> np.ndarray:
        """Centred (fftshift) boolean mask of the full spectrum, True where kept (QC)."""
        if self._band is not None:
            return self._band.mask
        return ~_full_spectrum(self.removed().astype(np.float64), self.shape).astype(bool)

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Filtered float32 frames; ``frames`` is (k, H, W) or (H, W)."""
        if self._band is not None:
            return self._band.apply(frames)
        return self._notch.apply(frames)

    def apply_uint8(self, frames: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Filter, multiply frame i by ``scale[i]``, round and saturate to uint8."""
        if self._band is not None:
            return self._band.apply_uint8(frames, scale)
        return self._notch.apply_uint8(frames, scale)


# ---------------------------------------------------------------------------------------
# Flicker


def lowpass_means(means: np.ndarray, fps: float, cutoff: float = 3.0, order: int = 6) -> np.ndarray:
    """Zero-phase Butterworth low-pass of the frame-mean trace."""
    means = np.asarray(means, np.float64)
    if not (fps > 0 and math.isfinite(fps)):
        raise AceInputError(f"frame rate {fps!r} must be a positive number", column="fps")
    if cutoff >= fps / 2:
        raise AceInputError(
            f"cutoff {cutoff} Hz must be below half the frame rate ({fps / 2:g} Hz)",
            column="cutoff",
        )
    if len(means) < 2:
        return means.copy()
    sos = butter(order, cutoff, btype="low", fs=fps, output="sos")
    default_pad = 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))
    return sosfiltfilt(sos, means, padlen=min(int(default_pad), len(means) - 1))


def flicker_scale(means: np.ndarray, lowpassed: np.ndarray) -> np.ndarray:
    """Per-frame gain ``1 + (lowpassed - mean) / mean``; 1 where the mean is 0."""
    means = np.asarray(means, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 1.0 + (lowpassed - means) / means
    return np.where(means > 0, scale, 1.0)


def to_uint8(frames: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Scale each frame, round, clip to 0..255 (in place on float32 ``frames``)."""
    if scale is not None:
        frames *= np.asarray(scale, np.float32)[:, None, None]
    np.clip(frames, 0.0, 255.0, out=frames)
    np.rint(frames, out=frames)
    return frames.astype(np.uint8)


def _check_block(start: int, block: np.ndarray, done: int, n_frames: int, shape: tuple) -> None:
    if start != done or start + len(block) > n_frames or block.shape[1:] != shape:
        raise AceInputError(
            f"frames {start}..: block {block.shape} does not continue a movie of "
            f"{n_frames} frames of {shape} at frame {done}"
        )


class _PairBuffer:
    """Spectra of sampled frames waiting for their partner (pairs t, t+1 may span blocks)."""

    def __init__(self, spectrum: PairedSpectrum, firsts: np.ndarray) -> None:
        self.spectrum = spectrum
        self.firsts = set(int(t) for t in firsts)
        self.waiting: dict[int, tuple[np.ndarray | None, float]] = {}

    def wanted(self, t: int) -> bool:
        return t in self.firsts or (t - 1) in self.firsts

    def add(self, t: int, frame: np.ndarray, mean: float) -> None:
        self.waiting[t] = (self.spectrum.transform(frame, mean), mean)

    def commit(self, upto: int, rejected: Callable[[int], bool] | None = None) -> None:
        """Commit the pairs whose second frame is at most ``upto``, dropping rejected frames."""
        for first in sorted(t for t in self.waiting if t in self.firsts and t + 1 <= upto):
            a, ma = self.waiting.pop(first)
            b, mb = self.waiting.pop(first + 1, (None, 0.0))
            if rejected is not None and (rejected(first) or rejected(first + 1)):
                continue
            self.spectrum.add_pair(a, b, (ma, mb))


def _first_pass(
    factory: Any,
    n_frames: int,
    shape: tuple[int, int],
    parked: np.ndarray | None,
    screen: FrameScreen,
    pairs: _PairBuffer,
    kymograph: Kymograph,
    prefetch: bool,
) -> np.ndarray:
    """Decode once: frame means, the corrupted-frame screen, the sampled spectrum, the
    kymograph window; with ``parked`` the raw frames are copied into the output."""
    means = np.empty(n_frames, np.float64)
    done = 0
    # parked through the file on a second thread (io.row_file: a fresh mapping's page
    # faults cost seconds per GB); every row is in place when the pass returns
    with contextlib.ExitStack() as stack:
        rows = None if parked is None else stack.enter_context(RowFile(parked, background=True))
        for start, block in background(factory(), prefetch):
            _check_block(start, block, done, n_frames, shape)
            if rows is not None:
                rows.write(start, block)
            for i, frame in enumerate(block):
                t = start + i
                mean = cv2.mean(frame)[0]
                means[t] = mean
                judged = screen.push(t, frame, mean)
                if pairs.wanted(t):
                    pairs.add(t, frame, mean)
                kymograph.add(t, frame, mean)
                if judged is not None:
                    pairs.commit(judged, lambda t: bool(screen.rows[t, 0] >= 0))
            done += len(block)
    if done != n_frames:
        raise AceInputError(f"movie has {done} frames, expected {n_frames}")
    pairs.commit(n_frames, lambda t: bool(screen.rows[t, 0] >= 0))
    return means


def _stripe_filter(
    p: DenoiseParams,
    shape: tuple[int, int],
    spectrum: PairedSpectrum,
    detection: StripeDetection,
    compute: str,
    workers: int,
) -> StripeFilter:
    if p.stripe_method == "reference":
        return StripeFilter.reference(shape, p, compute, workers)
    if p.stripe_method == "none":
        return StripeFilter(shape, "none")
    return StripeFilter(shape, "auto", notch=fit_notch(spectrum, detection))


@dataclass(frozen=True, eq=False)
class DenoiseReport:
    """What one denoise run did and measured: QC arrays, stripe and corrupted-frame findings.

    The asset splits it into ``qc.npz`` (:meth:`qc_arrays`) and the manifest
    (:meth:`manifest`), from which :meth:`StripeFilter.from_report` rebuilds the filter.
    """

    method: str
    """How the stripe filter ran: ``projection``/``rfft`` (reference), ``sparse_notch``, ``none``."""
    params: DenoiseParams
    n_frames: int
    fps: float
    frame_shape: list[int]
    stripe_method: str
    stripe_bins: list[list[int]]
    """Auto notch: the rfft bins (ky, kx) taken out; empty for the other methods."""
    stripe_static: list[list[float]]
    """Auto notch: the still scene's (real, imag) part kept at each notched bin."""
    frame_means: np.ndarray
    clean_means: np.ndarray
    """Frame means with the corrupted frames interpolated: what the flicker low-pass sees."""
    lowpassed_means: np.ndarray
    scale: np.ndarray
    """Per-frame flicker gain."""
    mask: np.ndarray
    """Centred (H, W) boolean spectrum, True where kept."""
    stripe_spectrum: np.ndarray
    """Centred (H, W) power of what varies between sampled frame pairs, before filtering."""
    spectrum_frames: int
    removed_energy_fraction: float
    """Share of the varying (non-DC) power in the bins the filter removes."""
    flicker_rms: float
    stripe_bands: list[dict[str, Any]]
    stripe_frequencies_hz: list[float]
    """Rates at which the bands found pass a fixed row (at least one cycle in the movie)."""
    stripe_rms_before: float
    stripe_rms_after: float
    stripe_power_remaining: float
    """(rms_after / rms_before) ** 2: the share of the stripe power left."""
    kymograph_start: int
    kymograph_before: np.ndarray
    kymograph_after: np.ndarray
    corrupted_frames: list[int]
    corrupted_kinds: list[str]
    corrupted_rows: list[list[int]]
    """Per corrupted frame, the rows [r0, r1) repaired; -1, -1 for the whole frame."""
    corrupted_counts: dict[str, int]
    corrupted_fraction: float
    decode_errors: list[dict[str, Any]]

    def qc_arrays(self) -> dict[str, np.ndarray]:
        """The arrays kept in the asset's ``qc.npz``."""
        arrays = {
            "frame_means": self.frame_means,
            "clean_means": self.clean_means,
            "lowpassed_means": self.lowpassed_means,
            "scale": self.scale,
            "mask": self.mask,
            "stripe_spectrum": self.stripe_spectrum,
            "kymograph_before": self.kymograph_before,
            "kymograph_after": self.kymograph_after,
        }
        return {
            **{k: np.asarray(v) for k, v in arrays.items()},
            "corrupted_frames": np.asarray(self.corrupted_frames, np.int64),
            "corrupted_kinds": np.asarray(self.corrupted_kinds, "<U9"),
            "corrupted_rows": np.asarray(self.corrupted_rows, np.int64).reshape(-1, 2),
        }

    def manifest(self) -> dict[str, Any]:
        """JSON-ready part of the asset's manifest: params, the frozen filter, the findings."""
        return {
            "params": asdict(self.params),
            "stripe_method": self.stripe_method,
            "stripe_bins": self.stripe_bins,
            "stripe_static": self.stripe_static,
            "stripe_bands": self.stripe_bands,
            "stripe_frequencies_hz": self.stripe_frequencies_hz,
            "stripe_rms_before": self.stripe_rms_before,
            "stripe_rms_after": self.stripe_rms_after,
            "stripe_power_remaining": self.stripe_power_remaining,
            "removed_energy_fraction": self.removed_energy_fraction,
            "flicker_rms": self.flicker_rms,
            "corrupted_frames": self.corrupted_frames,
            "corrupted_kinds": self.corrupted_kinds,
            "corrupted_rows": self.corrupted_rows,
            "corrupted_counts": self.corrupted_counts,
            "corrupted_fraction": self.corrupted_fraction,
            "decode_errors": self.decode_errors,
        }


def denoise_movie(
    source: MovieSource,
    n_frames: int,
    shape: tuple[int, int],
    fps: float,
    params: DenoiseParams | Mapping[str, Any] | None,
    writer: FrameSink,
    *,
    chunk_frames: int = 16,
    method: str = "auto",
    workers: int = 1,
    prefetch: bool = True,
    reuse_output: bool | None = None,
) -> DenoiseReport:
    """Corrupted-frame repair, stripe and flicker removal, streamed in two passes.

    ``writer`` receives uint8 blocks ``(k, H, W)``. The first pass measures (frame
    means, corrupted frames, the stripe spectrum); the second repairs, filters and
    writes:

    * ``reuse_output`` (default when ``writer.array`` is a writable uint8 array of
      the output shape, as for :class:`~ace_assets.io.store.ArrayStoreWriter`):
      the first pass decodes each frame once and parks the raw frame in the output;
      the second pass reads it back (no second decode) and overwrites it.
    * otherwise the source is decoded twice.

    ``method`` is how the *reference* notch is computed ("auto", "projection", "rfft").
    A source with a ``decode_errors`` mapping (frame -> where it came from, filled while
    it is read, as :class:`~ace_assets.io.miniscope.MiniscopeRecording` does) has those
    frames treated as corrupted. Returns the :class:`DenoiseReport`.
    """
    p = params if isinstance(params, DenoiseParams) else DenoiseParams.from_mapping(params)
    p.validate()
    shape = (int(shape[0]), int(shape[1]))
    h, w = shape
    factory = chunk_factory(source, chunk_frames)
    parked = getattr(writer, "array", None)
    can_reuse = (
        isinstance(parked, np.ndarray)
        and parked.shape == (n_frames, *shape)
        and parked.dtype == np.uint8
        and parked.flags.writeable
    )
    if reuse_output is None:
        reuse_output = can_reuse
    if reuse_output and not can_reuse:
        raise ValueError("reuse_output needs writer.array: writable uint8 of the output shape")

    # pass 1: measure
    screen = FrameScreen(n_frames, shape, p.corrupt_row_ratio)
    spectrum_in = PairedSpectrum(shape, workers)
    firsts = sample_pairs(n_frames, p.frameStep)
    kymo_in = Kymograph(n_frames, shape)
    means = _first_pass(
        factory,
        n_frames,
        shape,
        parked if reuse_output else None,
        screen,
        _PairBuffer(spectrum_in, firsts),
        kymo_in,
        prefetch,
    )
    if reuse_output:
        factory = chunk_factory(parked, chunk_frames)  # type: ignore[arg-type]
    decode_errors = getattr(source, "decode_errors", None)
    corrupt = classify_frames(screen, means, decode_errors)
    smooth_means = clean_means(means, corrupt)
    lowpassed = lowpass_means(smooth_means, fps, p.cutoff, p.butterOrder)
    scale = flicker_scale(means, lowpassed)
    settings = {"threshold": p.stripe_threshold, "max_tilt_deg": p.stripe_max_tilt}
    power_in = spectrum_in.power()
    detection = detect_stripes(power_in, shape, **settings)
    steps = spectrum_in.phase_steps(
        np.array([[b.cycles, b.cycles_x] for b in detection.bands], np.int64).reshape(-1, 2)
    )
    bands = [
        replace(b, frequency_hz=float(step) * fps / (2 * np.pi))
        for b, step in zip(detection.bands, steps, strict=True)
    ]
    stripe = _stripe_filter(p, shape, spectrum_in, detection, method, workers)

    # pass 2: repair, filter, rescale, write
    spectrum_out = PairedSpectrum(shape, workers)
    pairs_out = _PairBuffer(spectrum_out, firsts)
    kymo_out = Kymograph(n_frames, shape)
    blocks: Any = background(factory(), prefetch)
    if p.repair_corrupted_frames and len(corrupt):
        blocks = repaired_blocks(blocks, corrupt)
    done = 0
    for start, block in blocks:
        _check_block(start, block, done, n_frames, shape)
        k = len(block)
        gain = scale[start : start + k].copy()
        if p.repair_corrupted_frames:
            for i in range(k):
                if start + i in corrupt:
                    m = cv2.mean(np.asarray(block[i], np.float32))[0]
                    gain[i] = lowpassed[start + i] / m if m > 0 else 1.0
        out = stripe.apply_uint8(block, gain)
        writer.write(start, out)
        for i in range(k):
            t = start + i
            if pairs_out.wanted(t) or kymo_out.start <= t < kymo_out.stop:
                m = cv2.mean(out[i])[0]
                if pairs_out.wanted(t):
                    pairs_out.add(t, out[i], m)
                kymo_out.add(t, out[i], m)
        pairs_out.commit(start + k - 1, corrupt.__contains__)
        done += k
    if done != n_frames:
        raise AceInputError(
            f"movie delivered {done} frames on the second pass, expected {n_frames}"
        )
    pairs_out.commit(n_frames, corrupt.__contains__)

    power_out = spectrum_out.power()
    rms_before = detection.rms
    rms_after = stripe_rms(power_out, detection, **settings)
    remaining = (rms_after / rms_before) ** 2 if rms_before > 0 else (1.0 if rms_after else 0.0)
    removed = stripe.removed()
    weights = bin_weights(shape)
    ac = power_in * weights
    ac[0, 0] = 0.0
    total = float(ac.sum())
    travelling = [b.frequency_hz for b in bands if b.frequency_hz * n_frames / fps >= 1.0]
    frozen = stripe.to_report()
    return DenoiseReport(
        method=stripe.compute,
        params=p,
        n_frames=int(n_frames),
        fps=float(fps),
        frame_shape=frozen["frame_shape"],
        stripe_method=frozen["stripe_method"],
        stripe_bins=frozen["stripe_bins"],
        stripe_static=frozen["stripe_static"],
        frame_means=means,
        clean_means=smooth_means,
        lowpassed_means=lowpassed,
        scale=scale,
        mask=stripe.keep_mask(),
        stripe_spectrum=_full_spectrum(power_in, shape).astype(np.float32),
        spectrum_frames=int(spectrum_in.n),
        removed_energy_fraction=float(ac[removed].sum() / total) if total > 0 else 0.0,
        flicker_rms=float(np.sqrt(np.mean((means - lowpassed) ** 2))) if n_frames else 0.0,
        stripe_bands=[b.as_dict() for b in bands],
        stripe_frequencies_hz=sorted(float(f) for f in travelling),
        stripe_rms_before=float(rms_before),
        stripe_rms_after=float(rms_after),
        stripe_power_remaining=float(remaining),
        kymograph_start=kymo_in.start,
        kymograph_before=kymo_in.residual(),
        kymograph_after=kymo_out.residual(),
        **corrupt.as_dict(),
    )


def _full_spectrum(rpower: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centred full (H, W) array from its rfft half, by Hermitian symmetry."""
    h, w = shape
    full = np.empty((h, w), np.float64)
    half = rpower.shape[1]
    full[:, :half] = rpower
    # column -kx equals column kx mirrored in ky
    neg = np.arange(half, w)
    full[:, neg] = rpower[(-np.arange(h)) % h][:, w - neg]
    return np.fft.fftshift(full)
