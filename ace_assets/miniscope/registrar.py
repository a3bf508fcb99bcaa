"""Motion-correction settings and the registrar: one template, frames measured against it.

A measurement is a frame's rigid lag, how confident its correlation peak is, and (for
piecewise-rigid) each patch's lag and confidence; applying is a separate step, so the
lags of all frames can be smoothed in time before any frame is warped
(:mod:`ace_assets.miniscope.motion`).

What is correlated: the frame high-passed with ``gSig_filt`` (CaImAn's kernel), cut to
the filter's valid region (:func:`~ace_assets.miniscope.registration.valid_window`) and
weighted by its local signal-to-noise (:class:`~ace_assets.miniscope.registration.SignalWeight`);
against the template high-passed and cut the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np
import scipy.fft

from ace_assets.catalog.stage_params import StageParams, stage_params
from ace_assets.errors import AceInputError
from ace_assets.miniscope.registration import (
    INTERPOLATIONS,
    HighPass,
    PatchGrid,
    ShiftField,
    SignalWeight,
    kernel_radius,
    peak_confidence,
    peak_in_window,
    valid_window,
    warp_field,
    warp_rigid,
)


@stage_params("motion", frozen=True)
class MotionParams(StageParams):
    """Motion-correction settings, named as in CaImAn / analysis_parameters.csv.

    Defaults and meanings: the ``motion`` group of the specs (``gSig_filt=None`` turns
    the high-pass filter off).
    """

    pw_rigid: bool
    max_shifts: tuple[int, int]
    gSig_filt: tuple[float, float] | None
    strides: tuple[int, int]
    overlaps: tuple[int, int]
    max_deviation_rigid: int
    border_nan: bool | str
    shifts_opencv: bool
    """Accepted for compatibility: warping always uses OpenCV."""
    min_registration_confidence: float
    """A frame (or patch) whose correlation peak stands fewer SDs above its correlation
    plane than this is not measured but interpolated from its neighbours in time."""
    template_frames: int
    template_bin: int
    template_blocks: int
    template_iterations: int
    interpolation: str

    def __post_init__(self) -> None:
        # a Gaussian SD: floats however it was typed, as CaImAn and the reports have it
        if self.gSig_filt is not None:
            object.__setattr__(self, "gSig_filt", tuple(float(v) for v in self.gSig_filt))

    def validate(self, shape: tuple[int, int] | None = None) -> None:
        if self.border_nan not in ("copy", True, False):
            raise AceInputError(
                f"border_nan {self.border_nan!r} must be 'copy', True or False", column="border_nan"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise AceInputError(
                f"interpolation {self.interpolation!r} not in {sorted(INTERPOLATIONS)}",
                column="interpolation",
            )
        if min(self.max_shifts) < 0 or self.max_deviation_rigid < 0:
            raise AceInputError(
                "max_shifts and max_deviation_rigid must be >= 0", column="max_shifts"
            )
        if min(self.strides) < 1 or min(self.overlaps) < 0:
            raise AceInputError("strides must be >= 1 and overlaps >= 0", column="strides")
        if self.gSig_filt is not None and min(self.gSig_filt) <= 0:
            raise AceInputError("gSig_filt must be positive", column="gSig_filt")
        if not self.min_registration_confidence >= 0:
            raise AceInputError(
                "min_registration_confidence must be >= 0", column="min_registration_confidence"
            )
        if (
            min(self.template_frames, self.template_blocks, self.template_bin) < 1
            or self.template_iterations < 0
        ):
            raise AceInputError(
                "template_frames, template_blocks, template_bin >= 1, template_iterations >= 0",
                column="template_frames",
            )
        if shape is not None:
            for axis, (dim, m) in enumerate(zip(shape, self.max_shifts, strict=True)):
                if 2 * (m + 1) >= dim:
                    raise AceInputError(
                        f"max_shifts {m} too large for a frame {dim} px along axis {axis}",
                        column="max_shifts",
                    )
            if self.pw_rigid:
                grid = PatchGrid.build(shape, self.strides, self.overlaps)
                reach = self.max_deviation_rigid + max(self.max_shifts) + 1
                if 2 * reach >= min(grid.size):
                    raise AceInputError(
                        f"patches of {grid.size} px are too small for max_shifts + "
                        f"max_deviation_rigid = {reach - 1} px; raise strides/overlaps",
                        column="strides",
                    )

    def rigid(self, border: bool | str | None = None) -> MotionParams:
        """The same settings for rigid registration (optionally another border mode)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["pw_rigid"] = False
        if border is not None:
            values["border_nan"] = border
        return MotionParams(**values)


@dataclass(frozen=True)
class Measurement:
    """What one frame's correlation with the template says."""

    lag: np.ndarray
    """(2,) rigid lag (dy, dx): the frame shows the template moved by this much."""
    confidence: float
    """SDs the rigid peak stands above its correlation plane."""
    window: np.ndarray | None = None
    """(2m + 3, 2m + 3) z-scored correlation at lags ``-m-1 .. m+1`` (``m`` = max_shifts)."""
    patch_lags: np.ndarray | None = None
    """(ny, nx, 2) patch lags, within ``max_deviation_rigid`` of the rigid lag."""
    patch_confidence: np.ndarray | None = None
    """(ny, nx) SDs of each patch's peak above its own correlation plane."""


def correlation_size(shape: tuple[int, int], max_shifts: tuple[int, int]) -> tuple[int, int]:
    """Zero-padded size of the rigid correlation: no lag up to ``max_shifts`` wraps around,
    and a DFT-friendly size (a multiple of 32, then 2-3-5-smooth: 608 -> 640 is 1.5x
    faster than 608 itself)."""
    out = []
    for dim, m in zip(shape, max_shifts, strict=True):
        n = int(dim) + int(m) + 1
        out.append(cv2.getOptimalDFTSize(-(-n // 32) * 32))
    return out[0], out[1]


class Registrar:
    """Measures frames against one template and warps them by given shifts."""

    def __init__(self, template: np.ndarray, params: MotionParams) -> None:
        self.params = params
        self.template = np.asarray(template, np.float32)
        self.shape = self.template.shape
        self.high_pass = HighPass(self.shape, params.gSig_filt)
        self.window = valid_window(self.shape, kernel_radius(params.gSig_filt))
        self.weight = SignalWeight(self.shape, params.gSig_filt)
        hp_t = cv2.multiply(self.high_pass.apply(self.template), self.window)
        self.padded = correlation_size(self.shape, params.max_shifts)
        # the plane whose spread scales the confidence: every other lag within half a frame
        # either way (as many lags as an unpadded circular correlation has)
        (h, w), (ph, pw) = self.shape, self.padded
        rows = np.r_[0 : (h + 1) // 2 : 2, ph - h // 2 : ph : 2]
        cols = np.r_[0 : (w + 1) // 2 : 2, pw - w // 2 : pw : 2]
        self._plane = np.ix_(rows, cols)
        self.spec_t = cv2.dft(self._pad(hp_t))
        self.spec_t[0, 0] = 0.0  # DC carries no position
        self.limit = (float(params.max_shifts[0]), float(params.max_shifts[1]))
        self.interp = INTERPOLATIONS[params.interpolation]
        self.grid: PatchGrid | None = None
        if params.pw_rigid:
            self.grid = PatchGrid.build(self.shape, params.strides, params.overlaps)
            patches_t = self.grid.patches(hp_t)
            self.patch_spectra = np.conj(scipy.fft.rfft2(patches_t, axes=(1, 2)))
            self.patch_spectra[:, 0, 0] = 0.0
            self.field = ShiftField(self.shape, self.grid)

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """The float32 image that is correlated: filtered, cut to the valid region, weighted."""
        f = np.asarray(frame, np.float32)
        if not np.isfinite(f).all():
            f = np.nan_to_num(f)
        hp = cv2.multiply(self.high_pass.apply(f), self.window)
        return self.weight.apply(hp, f)

    def _pad(self, image: np.ndarray) -> np.ndarray:
        h, w = self.shape
        ph, pw = self.padded
        return cv2.copyMakeBorder(image, 0, ph - h, 0, pw - w, cv2.BORDER_CONSTANT, value=0.0)

    @property
    def window_shape(self) -> tuple[int, int]:
        m = self.params.max_shifts
        return 2 * m[0] + 3, 2 * m[1] + 3

    def spectrum(self, frame: np.ndarray) -> np.ndarray:
        """The DFT of the prepared frame, as :meth:`measure_spectrum` takes it. It depends
        on the frame and the settings, not on the template, so a frame measured against
        several templates (the template's refinement rounds) is prepared once."""
        return cv2.dft(self._pad(self.prepare(frame)))

    def measure(self, frame: np.ndarray, pw: bool | None = None) -> Measurement:
        """Highest rigid peak and its confidence, the z-scored correlation window, and patches."""
        pw = self.params.pw_rigid if pw is None else pw
        g = self.prepare(frame)
        rigid = self.measure_spectrum(cv2.dft(self._pad(g)))
        if not pw:
            return rigid
        patch_lags, patch_conf = self._patches(g, rigid.lag)
        return Measurement(rigid.lag, rigid.confidence, rigid.window, patch_lags, patch_conf)

    def measure_spectrum(self, spectrum: np.ndarray) -> Measurement:
        """The rigid part of :meth:`measure`, from the frame's :meth:`spectrum`."""
        corr = cv2.idft(
            cv2.mulSpectrums(spectrum, self.spec_t, 0, conjB=True), flags=cv2.DFT_REAL_OUTPUT
        )
        m = self.params.max_shifts
        lags, peaks = peak_in_window(corr[None], (0, 0), (m[0], m[1]), self.limit, with_peak=True)
        mean, sd = cv2.meanStdDev(corr[self._plane])
        mean, sd = float(mean[0, 0]), float(sd[0, 0])
        h, w = corr.shape
        ly = np.arange(-m[0] - 1, m[0] + 2) % h
        lx = np.arange(-m[1] - 1, m[1] + 2) % w
        window = corr[ly[:, None], lx[None, :]]
        if sd > 0:
            window = (window - np.float32(mean)) * np.float32(1.0 / sd)
            confidence = (float(peaks[0]) - mean) / sd
        else:
            window = np.zeros_like(window)
            confidence = 0.0
        return Measurement(lags[0], confidence, window)

    def _patches(self, g: np.ndarray, rigid_lag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.grid is not None
        patches = self.grid.patches(g)
        spectra = scipy.fft.rfft2(patches, axes=(1, 2))
        spectra *= self.patch_spectra
        corrs = scipy.fft.irfft2(spectra, s=self.grid.size, axes=(1, 2))
        d = self.params.max_deviation_rigid
        centre = (int(round(rigid_lag[0])), int(round(rigid_lag[1])))
        lags, peaks = peak_in_window(corrs, centre, (d, d), self.limit, with_peak=True)
        conf = peak_confidence(corrs, peaks)
        ny, nx = self.grid.grid_shape
        return lags.reshape(ny, nx, 2), conf.reshape(ny, nx)

    def apply(
        self,
        frame: np.ndarray,
        shift: np.ndarray,
        patch_shifts: np.ndarray | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Warp a float32 frame by the correction ``shift`` (or the patch shifts' smooth
        field), into ``out`` when given (float32, the frame's shape)."""
        border = self.params.border_nan
        if patch_shifts is None:
            warped = warp_rigid(frame, (shift[0], shift[1]), border, self.interp, out)
        else:
            warped = warp_field(frame, self.field.maps(patch_shifts), border, self.interp, out)
        if out is not None and not np.shares_memory(warped, out):  # OpenCV chose a new array
            out[...] = warped
            return out
        return warped

    def register(
        self, frame: np.ndarray, pw: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Measure and correct one frame on its own: (corrected, rigid shift, patch shifts)."""
        pw = self.params.pw_rigid if pw is None else pw
        m = self.measure(frame, pw)
        shift = -m.lag
        patch_shifts = -m.patch_lags if pw and m.patch_lags is not None else None
        return self.apply(np.asarray(frame, np.float32), shift, patch_shifts), shift, patch_shifts
