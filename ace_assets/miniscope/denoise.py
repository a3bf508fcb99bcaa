"""Remove Miniscope V4 electronic noise: travelling horizontal bands and whole-frame flicker.

The band filter zeroes a thin vertical strip of each frame's centred 2-D spectrum
(``|kx| <= notchHalfWidth`` and ``|ky| > centerHalfHeightToLeave``) and keeps
only frequencies inside ``goodRadius``. The strip is chosen symmetric in ``kx``
so the mask is Hermitian-symmetric and the filtered frame is real: no magnitude
of a complex image (which the reference takes) is needed.

Why it is fast: the filter is linear, so

* its output mean equals the input mean (the DC term is kept), so the flicker
  trace is just the raw frame means: the first pass decodes each frame, takes
  its mean and parks it in the output store; the second filters it there (the
  movie is decoded once, not three times with a seek per frame);
* with the default ``goodRadius`` (larger than the spectrum) the mask is separable:
  the removed part is ``R = Hy @ f @ Bx`` with ``Bx`` projecting rows onto the
  ``2*notchHalfWidth+1`` lowest horizontal frequencies and ``Hy`` projecting
  columns onto the vertical frequencies above ``centerHalfHeightToLeave``. Both
  are low-rank, so ``R`` costs a few thin matrix products per frame
  (``method="projection"``), ~10x less than an FFT pair. A radius that cuts into
  the spectrum makes the mask non-separable; then a batched real FFT pair is used
  (``method="rfft"``). :func:`reference_denoise_frame` is the textbook complex
  FFT + fftshift version both are tested against.

One deliberate difference from the reference, on by default
(``wrapCorrection``): the top-to-bottom intensity step of a vignetted frame is
taken out before filtering, so the periodic FFT does not ring on the first and
last rows (static stripes there bias motion correction towards zero shift).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np
import scipy.fft
from scipy.signal import butter, sosfiltfilt

from ace_assets.errors import AceInputError
from ace_assets.miniscope.chunks import (
    FrameSink,
    MovieSource,
    background,
    chunk_factory,
)


@dataclass(frozen=True)
class DenoiseParams:
    """Denoise settings, named as in ACE-neuro's ``denoiseMovie``."""

    frameStep: int = 10
    """Every frameStep-th frame feeds the average spectrum (QC only)."""
    goodRadius: float = 2000.0
    notchHalfWidth: int = 3
    centerHalfHeightToLeave: int = 90
    cutoff: float = 3.0
    butterOrder: int = 6
    wrapCorrection: bool = True
    """Take out the top-to-bottom intensity step before filtering (not in the reference).

    The FFT treats the frame as periodic, so a vignetted frame whose top and bottom
    rows differ has a step at the wrap; the notch then rings there, leaving static
    stripes on the first and last rows that pull motion correction towards zero
    shift. The step is removed as a vertical ramp before filtering and put back
    afterwards. False reproduces the reference exactly."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> DenoiseParams:
        """Build from config; ``None`` values keep the default, unknown keys are an error."""
        if values is None:
            return cls()
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise AceInputError(f"unknown denoise parameters {unknown}; known: {sorted(names)}")
        kept = {k: v for k, v in values.items() if v is not None}
        params = cls(**kept)
        params.validate()
        return params

    def validate(self) -> None:
        checks = {
            "frameStep": self.frameStep >= 1,
            "goodRadius": self.goodRadius >= 0,
            "notchHalfWidth": self.notchHalfWidth >= 0,
            "centerHalfHeightToLeave": self.centerHalfHeightToLeave >= 0,
            "cutoff": self.cutoff > 0,
            "butterOrder": 1 <= self.butterOrder <= 20,
        }
        for name, ok in checks.items():
            if not ok:
                raise AceInputError(f"invalid value {getattr(self, name)!r}", column=name)


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
        single = frames.ndim == 2
        f = np.asarray(frames, np.float32)
        if single:
            f = f[None]
        if f.shape[1:] != self.shape:
            raise ValueError(f"frames are {f.shape[1:]}, filter built for {self.shape}")
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


def _park_and_measure(factory: Any, out: np.ndarray, n_frames: int, prefetch: bool) -> np.ndarray:
    """One decode pass: frame means, with the raw frames copied into ``out``."""
    means = np.empty(n_frames, np.float64)
    done = 0
    for start, block in background(factory(), prefetch):
        if start != done or start + len(block) > n_frames or block.shape[1:] != out.shape[1:]:
            raise AceInputError(
                f"frames {start}..: block {block.shape} does not continue a movie of "
                f"{n_frames} frames of {out.shape[1:]} at {done}"
            )
        out[start : start + len(block)] = block
        means[start : start + len(block)] = [cv2.mean(f)[0] for f in block]
        done += len(block)
    if done != n_frames:
        raise AceInputError(f"movie has {done} frames, expected {n_frames}")
    return means


def frame_means(source: MovieSource, chunk_frames: int = 256, prefetch: bool = True) -> np.ndarray:
    """Mean intensity of every frame, in one streaming pass."""
    parts: list[np.ndarray] = []
    expected = 0
    for start, block in background(chunk_factory(source, chunk_frames)(), prefetch):
        if start != expected:
            raise ValueError(f"chunks out of order: got frame {start}, expected {expected}")
        parts.append(np.array([cv2.mean(f)[0] for f in block], np.float64))
        expected += len(block)
    return np.concatenate(parts) if parts else np.zeros(0)


# ---------------------------------------------------------------------------------------
# The stage


def denoise_movie(
    source: MovieSource,
    n_frames: int,
    shape: tuple[int, int],
    fps: float,
    params: DenoiseParams | Mapping[str, Any] | None,
    writer: FrameSink,
    *,
    chunk_frames: int = 16,
    means: np.ndarray | None = None,
    method: str = "auto",
    workers: int = 1,
    prefetch: bool = True,
    reuse_output: bool | None = None,
) -> dict[str, Any]:
    """Band + flicker removal, streamed; the source is decoded once or twice.

    ``writer`` receives uint8 blocks ``(k, H, W)``. The flicker gain needs every
    frame's mean before the first frame can be finished, so there are two passes:

    * ``reuse_output`` (default when ``writer.array`` is a writable uint8 array of
      the output shape, as for :class:`~ace_assets.io.store.ArrayStoreWriter`):
      the first pass decodes each frame once, computing its mean and parking the
      raw frame in the output; the second pass reads it back (no second decode)
      and overwrites it with the result.
    * otherwise the source is decoded twice (pass ``means`` to skip the first).

    Returns the QC report: raw and low-passed mean traces, the per-frame gain,
    the centred mask, the RMS spectrum of every ``frameStep``-th frame and the
    share of its energy the mask removed.
    """
    p = params if isinstance(params, DenoiseParams) else DenoiseParams.from_mapping(params)
    p.validate()
    shape = (int(shape[0]), int(shape[1]))
    band = BandFilter(shape, p, method=method, workers=workers)
    factory = chunk_factory(source, chunk_frames)
    parked = getattr(writer, "array", None)
    can_reuse = (
        isinstance(parked, np.ndarray)
        and parked.shape == (n_frames, *shape)
        and parked.dtype == np.uint8
        and parked.flags.writeable
    )
    if reuse_output is None:
        reuse_output = means is None and can_reuse
    if reuse_output and not can_reuse:
        raise ValueError("reuse_output needs writer.array: writable uint8 of the output shape")
    if reuse_output:
        means = _park_and_measure(factory, parked, n_frames, prefetch)  # type: ignore[arg-type]
        factory = chunk_factory(parked, chunk_frames)  # type: ignore[arg-type]
    elif means is None:
        means = frame_means(factory, prefetch=prefetch)
    means = np.asarray(means, np.float64)
    if len(means) != n_frames:
        raise AceInputError(f"movie has {len(means)} frames, expected {n_frames}")
    lowpassed = lowpass_means(means, fps, p.cutoff, p.butterOrder)
    scale = flicker_scale(means, lowpassed)

    h, w = shape
    power = np.zeros((h, w // 2 + 1), np.float64)
    n_sampled = 0
    done = 0
    for start, block in background(factory(), prefetch):
        if start != done or block.shape[1:] != shape:
            raise AceInputError(
                f"frames {start}..: got block {block.shape}, expected start {done} and "
                f"frames of {shape}"
            )
        f = block.astype(np.float32)
        sample = f[(start + np.arange(len(f))) % p.frameStep == 0]
        if len(sample):
            spec = scipy.fft.rfft2(sample, axes=(1, 2), workers=workers)
            power += (spec.real**2 + spec.imag**2).sum(0)
            n_sampled += len(sample)
        writer.write(start, band.apply_uint8(f, scale[start : start + len(f)]))
        del f
        done += len(block)
    if done != n_frames:
        raise AceInputError(
            f"movie delivered {done} frames on the second pass, expected {n_frames}"
        )

    full_power = _full_spectrum(power / max(n_sampled, 1), shape)
    removed = ~band.mask
    ac = full_power.copy()
    ac[h // 2, w // 2] = 0.0
    total = float(ac.sum())
    return {
        "method": band.method,
        "params": asdict(p),
        "n_frames": int(n_frames),
        "fps": float(fps),
        "frame_means": means,
        "lowpassed_means": lowpassed,
        "scale": scale,
        "mask": band.mask,
        "mean_spectrum": np.sqrt(full_power).astype(np.float32),
        "spectrum_frames": int(n_sampled),
        "removed_energy_fraction": float(ac[removed].sum() / total) if total > 0 else 0.0,
        "flicker_rms": float(np.sqrt(np.mean((means - lowpassed) ** 2))) if n_frames else 0.0,
    }


def _full_spectrum(rpower: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centred full (H, W) power spectrum from its rfft half, by Hermitian symmetry."""
    h, w = shape
    full = np.empty((h, w), np.float64)
    half = rpower.shape[1]
    full[:, :half] = rpower
    # column -kx equals column kx mirrored in ky
    neg = np.arange(half, w)
    full[:, neg] = rpower[(-np.arange(h)) % h][:, w - neg]
    return np.fft.fftshift(full)
