"""Rigid and piecewise-rigid motion correction (NoRMCorre-style), robust to quiet and broken frames.

Two streamed passes over the movie:

1. *Measure.* Every frame is correlated with the template
   (:class:`~ace_assets.miniscope.registrar.Registrar`): its rigid lag, how many SDs its
   correlation peak stands above the rest of the correlation plane (the *confidence*),
   and for piecewise-rigid each patch's lag and confidence. Patch results go to a scratch
   file, so memory does not grow with the movie.
2. *Smooth.* The rigid lags become one motion trace
   (:func:`~ace_assets.miniscope.shift_smoothing.smooth_lags`): frames below
   ``min_registration_confidence`` (quiet frames of a textureless field, black, white or garbage
   frames) and confident outliers are interpolated from their neighbours in time, and
   the rest are weighted by confidence in a smoother whose strength is fitted to the data.
3. *Apply.* Frames are read again and warped with OpenCV (``warpAffine`` for rigid,
   ``remap`` of a smooth field for piecewise-rigid). A patch keeps its own deviation from
   the frame's rigid shift only when both were confident, else it follows the rigid shift.

Reported shifts are the corrections applied, ``corrected[y, x] = frame[y - dy, x - dx]``,
in (dy, dx) order, as CaImAn's ``shifts_rig``; ``shifts_measured`` are the per-frame
measurements before smoothing. Every shift is bounded by ``max_shifts``; patches may
deviate from the frame's rigid shift by at most ``max_deviation_rigid``.

QC, computed while streaming: mean images before/after, their crispness (norm of the
gradient of the mean image, CaImAn's metric), each frame's correlation with the template
before and after, and the per-frame confidence with which frames were interpolated.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ace_assets.errors import AceInputError
from ace_assets.io.pages import release_pages
from ace_assets.io.threads import FramePool, InOrderThread, frame_pool, one_blas_thread
from ace_assets.miniscope.chunks import FrameSink, MovieSource, background, chunk_factory
from ace_assets.miniscope.motion_template import TemplateInfo, build_template, estimate_template
from ace_assets.miniscope.registrar import Measurement, MotionParams, Registrar
from ace_assets.miniscope.shift_tracking import track
from ace_assets.miniscope.stage_report import SplitReport

__all__ = [
    "MotionParams",
    "MotionReport",
    "Registrar",
    "crispness",
    "estimate_template",
    "motion_correct",
]


#: Gaussian SD (px) applied to a mean image before its crispness is measured
CRISPNESS_SMOOTHING = 1.0


def crispness(image: np.ndarray, smoothing: float = CRISPNESS_SMOOTHING) -> float:
    """Norm of the gradient of a mean image (CaImAn's metric): higher when motion blur is removed.

    The image is first smoothed by ``smoothing`` px: the residual pixel noise of a mean
    image otherwise dominates the gradient of a quiet, textureless movie, and sub-pixel
    interpolation (which every correction applies) smooths that noise, so the raw metric
    fell after a perfect correction (63 -> 59 on a flat family movie; 40.2 -> 40.2 at 1 px).
    """
    img = np.nan_to_num(np.asarray(image, np.float32))
    if smoothing > 0:
        img = cv2.GaussianBlur(img, (0, 0), smoothing)
    gy, gx = np.gradient(img.astype(np.float64))
    return float(np.sqrt(np.sum(gy**2 + gx**2)))


def _correlation(frame: np.ndarray, ref: np.ndarray, inner: tuple[slice, slice]) -> float:
    """Pearson r of a frame's interior with ``ref`` (the template interior, centred, unit norm).

    Sums by OpenCV, accumulated in float64 (4x ``meanStdDev`` and a float64 ``einsum``;
    twice per frame). A frame whose spread is below 1e-12 of its energy is flat: r = 0."""
    a = frame[inner]
    if not np.isfinite(a).all():
        a = np.nan_to_num(a)
    total = cv2.sumElems(a)[0]
    energy = cv2.norm(a, cv2.NORM_L2SQR)
    spread2 = energy - total * total / a.size
    if not spread2 > 1e-12 * energy:
        return 0.0
    return cv2.sumElems(cv2.multiply(a, ref))[0] / math.sqrt(spread2)


class _Frames:
    """One checked pass over a source: blocks must continue the movie and end on time."""

    def __init__(
        self, source: MovieSource, n_frames: int, shape: tuple[int, int], chunk: int, prefetch: bool
    ) -> None:
        self.factory = chunk_factory(source, chunk)
        self.n_frames, self.shape, self.prefetch = n_frames, shape, prefetch

    def __iter__(self):
        done = 0
        for start, block in background(self.factory(), self.prefetch):
            if start != done or block.shape[1:] != self.shape:
                raise AceInputError(
                    f"frames {start}..: block {block.shape} does not continue a movie of "
                    f"{self.shape} frames at {done}"
                )
            if start + len(block) > self.n_frames:
                raise AceInputError(f"movie has more than the expected {self.n_frames} frames")
            yield start, np.asarray(block, np.float32)  # read only: no copy of float32 blocks
            done += len(block)
        if done != self.n_frames:
            raise AceInputError(f"movie delivered {done} frames, expected {self.n_frames}")


@dataclass(frozen=True, eq=False, kw_only=True)
class MotionReport(SplitReport):
    """What one motion-correction run applied and measured.

    Shifts are corrections applied, (dy, dx), as CaImAn's ``shifts_rig``. The asset puts
    the arrays in ``qc.npz`` (:meth:`qc_arrays`) and the rest in its manifest
    (:meth:`manifest`); fields that do not apply to a run (piecewise-rigid ones for a rigid
    run, template frames for a given template) are None and written nowhere.
    """

    shifts_rigid: np.ndarray
    """(n, 2) rigid corrections applied, after smoothing."""
    max_shift: float
    """Largest |shift| applied, rigid or (piecewise-rigid) of any patch."""
    mean_before: np.ndarray
    mean_after: np.ndarray
    crispness_before: float
    """Norm of the gradient of the mean image (inner region), CaImAn's metric."""
    crispness_after: float
    corr_before: np.ndarray
    """Per frame: correlation of the frame with the template (inner region)."""
    corr_after: np.ndarray
    mean_corr_before: float
    mean_corr_after: float
    patch_grid: dict[str, list[int]] | None = None
    """Piecewise-rigid: patch starts and size."""
    pw_max_deviation: np.ndarray | None = None
    """Piecewise-rigid, per frame: largest patch deviation from the rigid shift."""
    pw_max_abs_shift: np.ndarray | None = None
    patch_low_confidence_fraction: float | None = None
    params: MotionParams
    n_frames: int
    template: np.ndarray
    shifts_measured: np.ndarray
    """(n, 2) each frame's own peak, before smoothing (same sign as ``shifts_rigid``)."""
    confidence: np.ndarray
    """Per frame: SDs the correlation peak stands above the rest of the plane."""
    low_confidence: np.ndarray
    """Per frame: below ``min_registration_confidence`` or an outlier (own peak unused)."""
    pooled: np.ndarray
    """Per frame: measured together with its neighbours."""
    interpolated: np.ndarray
    """Per frame: no confident peak at all, shift interpolated."""
    outlier_frames: np.ndarray
    shift_sd: np.ndarray
    """Per frame: the smoother's posterior SD of the shift."""
    low_confidence_fraction: float
    interpolated_fraction: float
    n_low_confidence: int
    n_pooled: int
    n_interpolated: int
    n_outliers: int
    smoothing_ratio: list[list[float]]
    """Fitted (acceleration, jitter) noise ratios of the smoother, per axis."""
    template_frames: np.ndarray | None = None
    """Frames that made the template, when it was estimated here."""
    template_frames_used: int | None = None


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
    scratch_dir: str | Path | None = None,
    threads: int | None = None,
) -> MotionReport:
    """Register every frame to the template and write float32 corrected frames.

    ``patch_shift_writer`` (optional) receives per-patch shifts ``(k, ny, nx, 2)``;
    the report keeps only per-frame summaries so it does not grow with the grid.
    Correlation windows and patch measurements wait for the second pass in scratch
    files under ``scratch_dir`` (~4.4 KB and ~1.7 KB per 608 x 608 frame). ``threads``
    (default: :func:`~ace_assets.io.threads.compute_threads`) measure and warp the frames
    of a chunk in parallel; results do not depend on it.

    Returns the :class:`MotionReport`.
    """
    p = params if isinstance(params, MotionParams) else MotionParams.from_mapping(params)
    shape = (int(shape[0]), int(shape[1]))
    p.validate(shape)
    info: TemplateInfo | None = None
    if template is None:
        template, info = build_template(
            source, n_frames, shape, p, prefetch=prefetch, scratch_dir=scratch_dir, threads=threads
        )
    template = np.asarray(template, np.float32)
    if template.shape != shape:
        raise AceInputError(f"template is {template.shape}, frames are {shape}")
    reg = Registrar(template, p)
    frames = _Frames(source, n_frames, shape, chunk_frames, prefetch)
    with (
        tempfile.TemporaryDirectory(dir=scratch_dir, prefix="motion-scratch-") as tmp,
        frame_pool(threads) as pool,
        one_blas_thread(),  # the shift fields' thin products, one per frame thread
    ):
        measured = _measure(frames, reg, n_frames, Path(tmp), pool)
        tr = track(measured.windows, reg.limit, p.min_registration_confidence)
        smoothed = tr.smoothed
        # patches were searched around each frame's highest peak: they hold only where the
        # trace kept that peak
        kept_peak = np.abs(tr.measured - measured.lags).max(axis=1) <= 1.0
        applied = _apply(
            frames,
            reg,
            measured,
            smoothed.lags,
            smoothed.used & kept_peak,
            writer,
            patch_shift_writer,
            pool,
        )
        measured.close()
    interpolated = ~smoothed.used
    low = (tr.confidence < p.min_registration_confidence) | smoothed.outlier
    if info is not None:
        applied.update(template_frames=info.frames, template_frames_used=int(info.used.sum()))
    return MotionReport(
        **applied,
        params=p,
        n_frames=int(n_frames),
        template=template,
        shifts_measured=(-tr.measured).astype(np.float32),
        confidence=tr.confidence.astype(np.float32),
        low_confidence=low,
        pooled=tr.pooled,
        interpolated=interpolated,
        outlier_frames=np.flatnonzero(smoothed.outlier),
        shift_sd=smoothed.sd.astype(np.float32),
        low_confidence_fraction=float(low.mean()) if n_frames else 0.0,
        interpolated_fraction=float(interpolated.mean()) if n_frames else 0.0,
        n_low_confidence=int(low.sum()),
        n_pooled=int(tr.pooled.sum()),
        n_interpolated=int(interpolated.sum()),
        n_outliers=int(smoothed.outlier.sum()),
        smoothing_ratio=[list(r) for r in smoothed.ratio],
    )


class _Measured:
    """Pass-1 results: per-frame numbers in memory; correlation windows and patches on disk."""

    def __init__(self, n: int, reg: Registrar, scratch: Path) -> None:
        self.lags = np.zeros((n, 2))
        self.confidence = np.zeros(n)
        rows = max(n, 1)
        self.windows = np.lib.format.open_memmap(
            scratch / "windows.npy", "w+", np.float32, (rows, *reg.window_shape)
        )
        self.patch_lags: np.ndarray | None = None
        self.patch_confidence: np.ndarray | None = None
        if reg.grid is not None:
            ny, nx = reg.grid.grid_shape
            self.patch_lags = np.lib.format.open_memmap(
                scratch / "patch_lags.npy", "w+", np.float32, (rows, ny, nx, 2)
            )
            self.patch_confidence = np.lib.format.open_memmap(
                scratch / "patch_confidence.npy", "w+", np.float32, (rows, ny, nx)
            )

    def store(self, t: int, m: Measurement) -> None:
        self.lags[t] = m.lag
        self.confidence[t] = m.confidence
        self.windows[t] = m.window
        if self.patch_lags is not None and m.patch_lags is not None:
            self.patch_lags[t] = m.patch_lags
            self.patch_confidence[t] = m.patch_confidence  # type: ignore[index]

    def close(self) -> None:
        """Drop the maps so the scratch directory can go."""
        self.windows = self.patch_lags = self.patch_confidence = None  # type: ignore[assignment]


def _measure(frames: _Frames, reg: Registrar, n: int, scratch: Path, pool: FramePool) -> _Measured:
    out = _Measured(n, reg, scratch)
    for start, block in frames:
        for i, m in enumerate(pool.map(reg.measure, block)):
            out.store(start + i, m)
        release_pages(out.windows, out.patch_lags, out.patch_confidence)
    return out


def _apply(
    frames: _Frames,
    reg: Registrar,
    measured: _Measured,
    lags: np.ndarray,
    used: np.ndarray,
    writer: FrameSink,
    patch_shift_writer: FrameSink | None,
    pool: FramePool,
) -> dict[str, Any]:
    """Pass 2: warp each frame by its smoothed shift; QC accumulated on the way.

    Frames are warped on ``pool``'s threads into the block the writer is handed; the
    mean images are summed on a thread of their own, in frame order. Returns the
    :class:`MotionReport` fields it measures, by name.
    """
    p = reg.params
    n, shape = frames.n_frames, frames.shape
    template = reg.template
    margin = int(max(p.max_shifts)) + 2
    hh, ww = shape
    mm = min(margin, (hh - 1) // 2, (ww - 1) // 2)
    inner = (slice(mm, hh - mm), slice(mm, ww - mm))
    ref = template[inner].astype(np.float64)
    ref -= ref.mean()
    ref = (ref / (np.linalg.norm(ref) or 1.0)).astype(np.float32)
    nan_borders = p.border_nan is True
    shifts = (-lags).astype(np.float32)
    pw = p.pw_rigid and measured.patch_lags is not None
    pw_max_dev = np.zeros(n, np.float32) if pw else None
    pw_max_abs = np.zeros(n, np.float32) if pw else None
    patch_low = 0
    corr_before = np.zeros(n, np.float32)
    corr_after = np.zeros(n, np.float32)
    sum_before = np.zeros(shape, np.float64)
    sum_after = np.zeros(shape, np.float64)
    count_after = np.zeros(shape, np.int64)

    def correct(item: tuple[int, np.ndarray, np.ndarray]) -> tuple[np.ndarray | None, int]:
        t, frame, dst = item
        patch_shifts, n_low = None, 0
        if pw:
            patch_shifts, n_low = _patch_shifts(measured, t, lags[t], bool(used[t]), p)
        reg.apply(frame, shifts[t], patch_shifts, out=dst)
        corr_before[t] = _correlation(frame, ref, inner)
        corr_after[t] = _correlation(dst, ref, inner)
        return patch_shifts, n_low

    def add_means(item: tuple[np.ndarray, np.ndarray]) -> None:
        """Frames in order into the mean images (the rounding of the sums is the order's)."""
        block, out = item
        for before, after in zip(block, out, strict=True):
            cv2.accumulate(before, sum_before)
            if nan_borders:
                cv2.accumulate(np.nan_to_num(after), sum_after)
                count_after[...] += np.isfinite(after)
            else:
                cv2.accumulate(after, sum_after)
        if not nan_borders:
            count_after[...] += len(block)

    # each chunk's frames are warped on the pool straight into a block handed to the
    # writer; its mean-image sums are taken on a thread of their own, in frame order
    with InOrderThread(add_means, depth=1, name="motion-means") as means:
        for start, block in frames:
            out = np.empty_like(block)
            patch_block = None
            if pw and patch_shift_writer is not None:
                patch_block = np.empty((len(block), *reg.grid.grid_shape, 2), np.float32)  # type: ignore[union-attr]
            items = ((start + i, frame, out[i]) for i, frame in enumerate(block))
            for i, (patch_shifts, n_low) in enumerate(pool.map(correct, items)):
                t = start + i
                if pw:
                    patch_low += n_low
                    pw_max_dev[t] = np.abs(patch_shifts - shifts[t]).max()  # type: ignore[index,operator]
                    pw_max_abs[t] = np.abs(patch_shifts).max()  # type: ignore[index,arg-type]
                    if patch_block is not None:
                        patch_block[i] = patch_shifts
            writer.write(start, out, owned=True)
            if patch_block is not None:
                patch_shift_writer.write(start, patch_block)  # type: ignore[union-attr]
            means.submit((block, out))
            del out, block  # the threads hold what they still need

    mean_before = (sum_before / max(n, 1)).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_after = np.where(count_after > 0, sum_after / count_after, np.nan).astype(np.float32)
    report: dict[str, Any] = {
        "shifts_rigid": shifts,
        "max_shift": float(np.abs(shifts).max()) if n else 0.0,
        "mean_before": mean_before,
        "mean_after": mean_after,
        "crispness_before": crispness(mean_before[inner]),
        "crispness_after": crispness(mean_after[inner]),
        "corr_before": corr_before,
        "corr_after": corr_after,
        "mean_corr_before": float(corr_before.mean()) if n else math.nan,
        "mean_corr_after": float(corr_after.mean()) if n else math.nan,
    }
    if pw:
        grid = reg.grid
        assert grid is not None and pw_max_abs is not None
        n_patches = max(n * grid.grid_shape[0] * grid.grid_shape[1], 1)
        report.update(
            patch_grid={
                "starts_y": grid.starts_y.tolist(),
                "starts_x": grid.starts_x.tolist(),
                "size": list(grid.size),
            },
            pw_max_deviation=pw_max_dev,
            pw_max_abs_shift=pw_max_abs,
            patch_low_confidence_fraction=patch_low / n_patches,
            max_shift=float(max(report["max_shift"], pw_max_abs.max() if n else 0.0)),
        )
    return report


def _patch_shifts(
    measured: _Measured, t: int, lag: np.ndarray, frame_used: bool, p: MotionParams
) -> tuple[np.ndarray, int]:
    """Correction per patch: the smoothed rigid shift plus the patch's own confident deviation."""
    assert measured.patch_lags is not None and measured.patch_confidence is not None
    raw = np.asarray(measured.patch_lags[t], np.float64)
    conf = np.asarray(measured.patch_confidence[t])
    keep = (conf >= p.min_registration_confidence) if frame_used else np.zeros(conf.shape, bool)
    deviation = np.where(keep[..., None], raw - measured.lags[t], 0.0)  # vs the highest peak
    limit = np.asarray(p.max_shifts, np.float64)
    patch_lags = np.clip(lag + deviation, -limit, limit)
    return (-patch_lags).astype(np.float32), int((~keep).sum())
