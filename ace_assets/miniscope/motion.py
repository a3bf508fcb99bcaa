"""Rigid and piecewise-rigid motion correction (NoRMCorre-style), streamed in chunks.

Shifts are measured on high-passed frames (``gSig_filt``) against a template
and applied to the original frames with OpenCV (``warpAffine`` for rigid,
``remap`` of a smooth field for piecewise-rigid). Reported shifts are the
corrections applied, ``corrected[y, x] = frame[y - dy, x - dx]``, in (dy, dx)
order, as CaImAn's ``shifts_rig``.

The template is the mean of the first ``template_frames`` frames, refined
``template_iterations`` times by registering them to it (cross-validated in two
halves, see :func:`estimate_template`); it is fixed for the rest of the movie.
Piecewise-rigid patches
(``strides`` + ``overlaps``) may deviate from the frame's rigid shift by at
most ``max_deviation_rigid``; every shift is bounded by ``max_shifts``.

QC, computed while streaming: mean images before/after, their crispness (norm
of the gradient of the mean image, CaImAn's metric) and each frame's
correlation with the template before and after correction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np
import scipy.fft

from ace_assets.errors import AceInputError
from ace_assets.miniscope.chunks import Chunks, FrameSink, MovieSource, background, chunk_factory
from ace_assets.miniscope.registration import (
    INTERPOLATIONS,
    HighPass,
    PatchGrid,
    ShiftField,
    peak_in_window,
    warp_field,
    warp_rigid,
)


def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value), int(value)
    try:
        a, b = value
        return int(a), int(b)
    except (TypeError, ValueError):
        raise AceInputError(f"{name} {value!r} must be a number or a pair", column=name) from None


@dataclass(frozen=True)
class MotionParams:
    """Motion-correction settings, named as in CaImAn / analysis_parameters.csv."""

    pw_rigid: bool = True
    max_shifts: tuple[int, int] = (15, 15)
    gSig_filt: tuple[float, float] | None = (7.0, 7.0)
    strides: tuple[int, int] = (48, 48)
    overlaps: tuple[int, int] = (24, 24)
    max_deviation_rigid: int = 7
    border_nan: bool | str = "copy"
    shifts_opencv: bool = True
    """Accepted for compatibility: warping always uses OpenCV."""
    template_frames: int = 300
    template_iterations: int = 2
    interpolation: str = "cubic"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> MotionParams:
        """Build from config; ``None`` keeps the default (``gSig_filt=None`` turns the filter off)."""
        if values is None:
            return cls()
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise AceInputError(f"unknown motion parameters {unknown}; known: {sorted(names)}")
        kept = {k: v for k, v in values.items() if v is not None or k == "gSig_filt"}
        for key in ("max_shifts", "strides", "overlaps"):
            if key in kept:
                kept[key] = _pair(kept[key], key)
        if kept.get("gSig_filt") is not None:
            g = kept["gSig_filt"]
            g = (g, g) if isinstance(g, (int, float)) else tuple(g)
            kept["gSig_filt"] = (float(g[0]), float(g[1]))
        if isinstance(kept.get("border_nan"), str) and kept["border_nan"].lower() in (
            "true",
            "false",
        ):
            kept["border_nan"] = kept["border_nan"].lower() == "true"
        params = cls(**kept)
        params.validate()
        return params

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
        if self.template_frames < 1 or self.template_iterations < 0:
            raise AceInputError(
                "template_frames >= 1, template_iterations >= 0", column="template_frames"
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


class Registrar:
    """Measures rigid and patch lags of frames against one template."""

    def __init__(self, template: np.ndarray, params: MotionParams) -> None:
        self.params = params
        self.template = np.asarray(template, np.float32)
        self.shape = self.template.shape
        self.high_pass = HighPass(self.shape, params.gSig_filt)
        hp_t = self.high_pass.apply(self.template)
        self.spec_t = cv2.dft(hp_t)
        self.spec_t[0, 0] = 0.0  # DC carries no position
        self.limit = (float(params.max_shifts[0]), float(params.max_shifts[1]))
        self.grid: PatchGrid | None = None
        if params.pw_rigid:
            self.grid = PatchGrid.build(self.shape, params.strides, params.overlaps)
            patches_t = np.stack(self.grid.patches(hp_t))
            self.patch_spectra = np.conj(scipy.fft.rfft2(patches_t, axes=(1, 2)))
            self.patch_spectra[:, 0, 0] = 0.0
            self.field = ShiftField(self.shape, self.grid)

    def rigid_lag(self, hp: np.ndarray) -> np.ndarray:
        """Lag (2,) of a high-passed frame against the template."""
        corr = cv2.idft(
            cv2.mulSpectrums(cv2.dft(hp), self.spec_t, 0, conjB=True), flags=cv2.DFT_REAL_OUTPUT
        )
        m = self.params.max_shifts
        return peak_in_window(corr[None], (0, 0), (m[0], m[1]), self.limit)[0]

    def patch_lags(self, hp: np.ndarray, rigid_lag: np.ndarray) -> np.ndarray:
        """(ny, nx, 2) lags of each patch, within max_deviation_rigid of the rigid lag."""
        assert self.grid is not None
        patches = np.stack(self.grid.patches(hp))
        spectra = scipy.fft.rfft2(patches, axes=(1, 2))
        spectra *= self.patch_spectra
        corrs = scipy.fft.irfft2(spectra, s=self.grid.size, axes=(1, 2))
        d = self.params.max_deviation_rigid
        centre = (int(round(rigid_lag[0])), int(round(rigid_lag[1])))
        lags = peak_in_window(corrs, centre, (d, d), self.limit)
        return lags.reshape(*self.grid.grid_shape, 2)

    def register(
        self, frame: np.ndarray, pw: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Correct one float32 frame: (corrected, rigid shift (2,), patch shifts or None)."""
        pw = self.params.pw_rigid if pw is None else pw
        hp = self.high_pass.apply(frame)
        shift = -self.rigid_lag(hp)
        interp = INTERPOLATIONS[self.params.interpolation]
        if not pw:
            return (
                warp_rigid(frame, (shift[0], shift[1]), self.params.border_nan, interp),
                shift,
                None,
            )
        patch_shifts = -self.patch_lags(hp, -shift)
        maps = self.field.maps(patch_shifts)
        return warp_field(frame, maps, self.params.border_nan, interp), shift, patch_shifts


def _head(
    factory: Callable[[], Chunks], n: int, prefetch: bool
) -> Iterator[tuple[int, np.ndarray]]:
    """The first ``n`` frames of a source, closing the pass early."""
    chunks = background(factory(), prefetch)
    try:
        for start, block in chunks:
            if start >= n:
                break
            yield start, block[: n - start]
            if start + len(block) >= n:
                break
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def estimate_template(
    source: MovieSource,
    n_frames: int,
    shape: tuple[int, int],
    params: MotionParams | Mapping[str, Any] | None = None,
    *,
    chunk_frames: int = 16,
    prefetch: bool = True,
) -> np.ndarray:
    """Template (float32, raw intensities) from the first frames, refined by registration.

    Why two halves: a frame registered against a template that contains its own
    noise is pulled towards where it already is (at low SNR this shrinks the
    estimated motion). So alternate blocks of frames form two half-templates and
    each half is registered against the *other* one; after every round the second
    half-template is aligned onto the first, and the result is their average.
    Frames that moved off the field of view leave NaN, so replicated border
    stripes never enter the template.
    """
    p = params if isinstance(params, MotionParams) else MotionParams.from_mapping(params)
    shape = (int(shape[0]), int(shape[1]))
    p.validate(shape)
    factory = chunk_factory(source, chunk_frames)
    n = max(1, min(p.template_frames, n_frames))
    block_len = max(1, n // 20)
    half_of = (np.arange(n) // block_len) % 2
    rigid = MotionParams(**{**asdict(p), "pw_rigid": False, "border_nan": True})
    halves: list[np.ndarray] | None = None
    plain: np.ndarray | None = None
    for _ in range(p.template_iterations + 1):
        regs = [Registrar(h, rigid) for h in halves] if halves is not None else None
        sums = np.zeros((2, *shape), np.float64)
        seen = np.zeros((2, *shape), np.int32)
        for start, block in _head(factory, n, prefetch):
            for i, frame in enumerate(block.astype(np.float32)):
                half = int(half_of[start + i])
                img = regs[1 - half].register(frame, pw=False)[0] if regs is not None else frame
                valid = np.isfinite(img)
                sums[half] += np.where(valid, img, 0.0)
                seen[half] += valid
        if plain is None:
            plain = (sums.sum(0) / np.maximum(seen.sum(0), 1)).astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(seen > 0, sums / np.maximum(seen, 1), plain[None])
        first = means[0].astype(np.float32)
        if not seen[1].any():  # a single block: nothing to cross-register against
            halves = [first, first]
            continue
        second = Registrar(first, rigid).register(means[1].astype(np.float32), pw=False)[0]
        second = np.where(np.isfinite(second), second, first).astype(np.float32)
        halves = [first, second]
    assert halves is not None
    return ((halves[0] + halves[1]) / 2).astype(np.float32)


def crispness(image: np.ndarray) -> float:
    """Norm of the gradient of a mean image: higher when motion blur is removed."""
    gy, gx = np.gradient(np.nan_to_num(np.asarray(image, np.float64)))
    return float(np.sqrt(np.sum(gy**2 + gx**2)))


def _correlation(frame: np.ndarray, ref: np.ndarray, inner: tuple[slice, slice]) -> float:
    """Pearson r of a frame's interior with ``ref`` (the template interior, centred, unit norm)."""
    a = frame[inner]
    if not np.isfinite(a).all():
        a = np.nan_to_num(a)
    _, sd = cv2.meanStdDev(a)
    spread = float(sd[0, 0]) * math.sqrt(a.size)
    if spread <= 0:
        return 0.0
    return float(np.einsum("ij,ij->", a, ref, dtype=np.float64)) / spread


def motion_correct(
    source: MovieSource,
    n_frames: int,
    shape: tuple[int, int],
    params: MotionParams | Mapping[str, Any] | None,
    writer: FrameSink,
    *,
    template: np.ndarray | None = None,
    patch_shift_writer: FrameSink | None = None,
    chunk_frames: int = 16,
    prefetch: bool = True,
) -> dict[str, Any]:
    """Register every frame to the template and write float32 corrected frames.

    ``patch_shift_writer`` (optional) receives per-patch shifts ``(k, ny, nx, 2)``;
    the report keeps only per-frame summaries so it does not grow with the grid.
    """
    p = params if isinstance(params, MotionParams) else MotionParams.from_mapping(params)
    shape = (int(shape[0]), int(shape[1]))
    p.validate(shape)
    if template is None:
        template = estimate_template(source, n_frames, shape, p, prefetch=prefetch)
    template = np.asarray(template, np.float32)
    if template.shape != shape:
        raise AceInputError(f"template is {template.shape}, frames are {shape}")
    reg = Registrar(template, p)
    margin = int(max(p.max_shifts)) + 2
    hh, ww = shape
    mm = min(margin, (hh - 1) // 2, (ww - 1) // 2)
    inner = (slice(mm, hh - mm), slice(mm, ww - mm))
    ref = template[inner].astype(np.float64)
    ref -= ref.mean()
    ref = (ref / (np.linalg.norm(ref) or 1.0)).astype(np.float32)
    nan_borders = p.border_nan is True

    shifts = np.zeros((n_frames, 2), np.float32)
    pw_max_dev = np.zeros(n_frames, np.float32) if p.pw_rigid else None
    pw_max_abs = np.zeros(n_frames, np.float32) if p.pw_rigid else None
    corr_before = np.zeros(n_frames, np.float32)
    corr_after = np.zeros(n_frames, np.float32)
    sum_before = np.zeros(shape, np.float64)
    sum_after = np.zeros(shape, np.float64)
    count_after = np.zeros(shape, np.int64)
    done = 0
    for start, block in background(chunk_factory(source, chunk_frames)(), prefetch):
        if start != done or block.shape[1:] != shape:
            raise AceInputError(
                f"frames {start}..: block {block.shape} does not continue a movie of {shape} "
                f"frames at {done}"
            )
        if start + len(block) > n_frames:
            raise AceInputError(f"movie has more than the expected {n_frames} frames")
        frames = block.astype(np.float32)
        out = np.empty_like(frames)
        patch_block = None
        if p.pw_rigid and patch_shift_writer is not None:
            patch_block = np.empty((len(frames), *reg.grid.grid_shape, 2), np.float32)  # type: ignore[union-attr]
        for i, frame in enumerate(frames):
            corrected, shift, patch_shifts = reg.register(frame)
            out[i] = corrected
            t = start + i
            shifts[t] = shift
            if patch_shifts is not None:
                pw_max_dev[t] = np.abs(patch_shifts - shift).max()  # type: ignore[index]
                pw_max_abs[t] = np.abs(patch_shifts).max()  # type: ignore[index]
                if patch_block is not None:
                    patch_block[i] = patch_shifts
            corr_before[t] = _correlation(frame, ref, inner)
            corr_after[t] = _correlation(corrected, ref, inner)
            cv2.accumulate(frame, sum_before)
            if nan_borders:
                finite = np.isfinite(corrected)
                cv2.accumulate(np.nan_to_num(corrected), sum_after)
                count_after += finite
            else:
                cv2.accumulate(corrected, sum_after)
        if not nan_borders:
            count_after += len(frames)
        writer.write(start, out)
        if patch_block is not None:
            patch_shift_writer.write(start, patch_block)  # type: ignore[union-attr]
        done += len(frames)
        del frames, out, block  # free before the next chunk is allocated
    if done != n_frames:
        raise AceInputError(f"movie delivered {done} frames, expected {n_frames}")

    mean_before = (sum_before / max(n_frames, 1)).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_after = np.where(count_after > 0, sum_after / count_after, np.nan).astype(np.float32)
    report: dict[str, Any] = {
        "params": asdict(p),
        "n_frames": int(n_frames),
        "shifts_rigid": shifts,
        "max_shift": float(np.abs(shifts).max()) if n_frames else 0.0,
        "template": template,
        "mean_before": mean_before,
        "mean_after": mean_after,
        "crispness_before": crispness(mean_before[inner]),
        "crispness_after": crispness(mean_after[inner]),
        "corr_before": corr_before,
        "corr_after": corr_after,
        "mean_corr_before": float(corr_before.mean()) if n_frames else math.nan,
        "mean_corr_after": float(corr_after.mean()) if n_frames else math.nan,
    }
    if p.pw_rigid:
        grid = reg.grid
        assert grid is not None and pw_max_abs is not None
        report.update(
            patch_grid={
                "starts_y": grid.starts_y.tolist(),
                "starts_x": grid.starts_x.tolist(),
                "size": list(grid.size),
            },
            pw_max_deviation=pw_max_dev,
            pw_max_abs_shift=pw_max_abs,
            max_shift=float(max(report["max_shift"], pw_max_abs.max() if n_frames else 0.0)),
        )
    return report
