"""Crop, photobleaching detrend and optional ΔF/F, streamed in chunks of frames.

Detrend (``detrend``):

* ``"median"`` — each frame's median intensity, smoothed with a running median
  of ``detrend_window_s`` seconds, is the bleaching trend. Medians ignore the
  few bright active cells, so transients do not leak into the trend.
* ``"linear"`` — a straight line fitted (least squares) to the frame means.

With ``detrend_operation="divide"`` (default; bleaching scales fluorescence)
frame t is multiplied by ``trend[0] / trend[t]``; with ``"subtract"``
``trend[t] - trend[0]`` is subtracted. Either way the movie keeps its
first-frame intensity level.

ΔF/F (``dff``) follows CaImAn's ``computeDFF``: the baseline of each pixel is
the ``quantile_min`` percentile over consecutive blocks of ``secs_window``
seconds, linearly interpolated between block centres; then
``(F - F0) / F0`` (``delta_f_over_f``) or ``(F - F0) / sqrt(F0)``
(``delta_f_over_sqrt_f``). Only the block baselines (one frame per block) are
kept, on disk, so memory does not grow with the recording; ``F0`` is clamped to
``min_baseline`` so dark pixels outside the lens do not divide by ~0.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.ndimage import median_filter

from ace_assets.catalog.stage_params import StageParams, stage_params
from ace_assets.errors import AceInputError
from ace_assets.miniscope.chunks import FrameSink, MovieSource, background, chunk_factory
from ace_assets.miniscope.stage_report import SplitReport

DETRENDS = (None, "median", "linear")
DFF_METHODS = (None, "delta_f_over_f", "delta_f_over_sqrt_f")

#: What bounds the values of a float movie made here, and so what to change when one is
#: beyond what a compact (float16) movie stores: (analysis_parameters column, advice).
RANGE_HINT = (
    "dff",
    "a ΔF/F that large divides by a baseline near zero (dark pixels): leave dff empty for "
    "no ΔF/F, crop the dark border (crop_coords), or raise the min_baseline setting",
)


@stage_params("preprocess", frozen=True)
class PreprocessParams(StageParams):
    """Preprocess settings; defaults and meanings: the ``preprocess`` group of the specs."""

    crop_coords: tuple[int, int, int, int] | None
    """(x0, y0, x1, y1): columns x0..x1-1 and rows y0..y1-1 are kept."""
    detrend: str | None
    detrend_operation: str
    detrend_window_s: float
    dff: str | None
    secs_window: float
    quantile_min: float
    min_baseline: float

    def validate(self) -> None:
        if self.detrend not in DETRENDS:
            raise AceInputError(f"detrend {self.detrend!r} not in {DETRENDS}", column="detrend")
        if self.detrend_operation not in ("divide", "subtract"):
            raise AceInputError(
                f"detrend_operation {self.detrend_operation!r} not 'divide' or 'subtract'",
                column="detrend_operation",
            )
        if self.dff not in DFF_METHODS:
            raise AceInputError(f"dff {self.dff!r} not in {DFF_METHODS}", column="dff")
        if not 0 <= self.quantile_min <= 100:
            raise AceInputError("quantile_min must be a percentile 0..100", column="quantile_min")
        for name in ("secs_window", "detrend_window_s", "min_baseline"):
            if not getattr(self, name) > 0:
                raise AceInputError(f"{name} must be > 0", column=name)


def crop_box(shape: tuple[int, int], crop_coords: tuple[int, ...] | None) -> tuple[slice, slice]:
    """Row and column slices for ``crop_coords`` (x0, y0, x1, y1), checked against the frame."""
    h, w = shape
    if crop_coords is None:
        return slice(0, h), slice(0, w)
    try:
        x0, y0, x1, y1 = (int(v) for v in crop_coords)
    except (TypeError, ValueError):
        raise AceInputError(
            f"crop_coords {crop_coords!r} must be four integers (x0, y0, x1, y1)",
            column="crop_coords",
        ) from None
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise AceInputError(
            f"crop_coords (x0={x0}, y0={y0}, x1={x1}, y1={y1}) fall outside the {w}x{h} frame "
            "or are empty (need 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height)",
            column="crop_coords",
        )
    return slice(y0, y1), slice(x0, x1)


def output_shape(
    n_frames: int, shape: tuple[int, int], params: PreprocessParams | None = None
) -> tuple[int, int, int]:
    ys, xs = crop_box(shape, (params or PreprocessParams()).crop_coords)
    return (int(n_frames), ys.stop - ys.start, xs.stop - xs.start)


def output_is_frame_affine(
    params: PreprocessParams | Mapping[str, Any] | None, source_dtype: np.dtype | type
) -> bool:
    """Whether the output is each uint8 frame times a gain plus an offset (no ΔF/F): what
    ``ArrayStoreWriter(frame_affine=True)`` keeps exactly, in a byte a pixel."""
    p = params if isinstance(params, PreprocessParams) else PreprocessParams.from_mapping(params)
    return p.dff is None and np.dtype(source_dtype) == np.uint8


def frame_medians(block: np.ndarray) -> np.ndarray:
    """Exact per-frame medians; uint8 frames go through a 256-bin histogram (fast)."""
    if block.dtype != np.uint8:
        return np.median(block.reshape(len(block), -1), axis=1)
    out = np.empty(len(block))
    half = block[0].size / 2.0
    for i, frame in enumerate(block):
        cum = np.cumsum(cv2.calcHist([frame], [0], None, [256], [0, 256]).ravel())
        lo = int(np.searchsorted(cum, half, side="left"))
        if frame.size % 2 == 0 and cum[lo] == half:
            out[i] = (lo + int(np.searchsorted(cum, half, side="right"))) / 2.0
        else:
            out[i] = lo
    return out


def trend_from_trace(
    trace: np.ndarray, fps: float, method: str, window_s: float = 30.0
) -> np.ndarray:
    """Smooth bleaching trend from a per-frame statistic (medians or means)."""
    trace = np.asarray(trace, np.float64)
    if method == "median":
        size = max(1, int(round(window_s * fps)))
        size = min(size, len(trace)) | 1
        return median_filter(trace, size=size, mode="nearest")
    if method == "linear":
        if len(trace) < 2:
            return trace.copy()
        t = np.arange(len(trace), dtype=np.float64)
        slope, intercept = np.polyfit(t, trace, 1)
        return intercept + slope * t
    raise ValueError(f"unknown detrend method {method!r}")


def block_edges(n_frames: int, window: int) -> np.ndarray:
    """Boundaries of consecutive baseline blocks; a short tail joins the previous block."""
    edges = list(range(0, n_frames, window)) + [n_frames]
    if len(edges) > 2 and edges[-1] - edges[-2] < window / 2:
        edges.pop(-2)
    return np.asarray(edges, np.int64)


@dataclass(frozen=True, eq=False, kw_only=True)
class PreprocessReport(SplitReport):
    """What one preprocess run did; fields of a step that did not run are None.

    The asset puts the arrays in ``qc.npz`` (:meth:`qc_arrays`) and the rest in its
    manifest (:meth:`manifest`).
    """

    params: PreprocessParams
    crop_box: list[int]
    """[x0, y0, x1, y1] of the kept region, in input pixels (x1, y1 exclusive)."""
    output_shape: list[int]
    trend_statistic: np.ndarray | None = None
    """Detrend: per-frame median or mean of the cropped frame, the trend's input."""
    trend: np.ndarray | None = None
    """Detrend: the fitted photobleaching trend, per frame."""
    baseline_blocks: int | None = None
    """ΔF/F: number of ``secs_window`` blocks whose percentile is the baseline."""
    block_frames: int | None = None
    baseline_median: float | None = None
    """ΔF/F: median of the middle block's baseline image (before ``min_baseline``)."""


def preprocess_movie(
    source: MovieSource,
    n_frames: int,
    shape: tuple[int, int],
    fps: float,
    params: PreprocessParams | Mapping[str, Any] | None,
    writer: FrameSink,
    *,
    chunk_frames: int = 32,
    scratch_dir: str | Path | None = None,
    prefetch: bool = True,
) -> PreprocessReport:
    """Crop, detrend and optionally ΔF/F a movie into float32 blocks for ``writer``.

    Reads ``source`` once per enabled step (trend, baseline) plus once to write.
    ``writer`` must accept ``output_shape(n_frames, shape, params)``. Without ΔF/F, a
    writer that keeps frames and per-frame gains (``ArrayStoreWriter(frame_affine=True)``,
    for a uint8 source) gets the cropped frames and ``float32(frame) * gain + offset``
    instead of the values: the same values, in half the bytes of float16.
    """
    p = params if isinstance(params, PreprocessParams) else PreprocessParams.from_mapping(params)
    p.validate()
    if not (math.isfinite(fps) and fps > 0):
        raise AceInputError(f"frame rate {fps!r} must be a positive number", column="fps")
    ys, xs = crop_box((int(shape[0]), int(shape[1])), p.crop_coords)
    factory = chunk_factory(source, chunk_frames)

    def cropped(prefetching: bool = prefetch) -> Any:
        done = 0
        for start, block in background(factory(), prefetching):
            if start != done or block.shape[1:] != tuple(shape):
                raise AceInputError(
                    f"frames {start}..: block {block.shape} does not continue a movie of "
                    f"{tuple(shape)} frames at {done}"
                )
            done += len(block)
            yield start, block[:, ys, xs]
        if done != n_frames:
            raise AceInputError(f"movie delivered {done} frames, expected {n_frames}")

    report = PreprocessReport(
        params=p,
        crop_box=[xs.start, ys.start, xs.stop, ys.stop],
        output_shape=list(output_shape(n_frames, shape, p)),
    )
    gain = np.ones(n_frames, np.float32)
    offset = np.zeros(n_frames, np.float32)
    if p.detrend is not None:
        stat = np.empty(n_frames)
        for start, block in cropped():
            if p.detrend == "median":
                stat[start : start + len(block)] = frame_medians(block)
            else:
                stat[start : start + len(block)] = block.reshape(len(block), -1).mean(1)
        trend = trend_from_trace(stat, fps, p.detrend, p.detrend_window_s)
        if p.detrend_operation == "divide":
            if np.any(trend <= 0):
                raise AceInputError(
                    "the bleaching trend reaches 0 (black frames); use "
                    "detrend_operation='subtract' or crop to the lens",
                    column="detrend",
                )
            gain = (trend[0] / trend).astype(np.float32)
        else:
            offset = (trend[0] - trend).astype(np.float32)
        report = replace(report, trend_statistic=stat, trend=trend)

    def corrected(prefetching: bool = prefetch) -> Any:
        for start, block in cropped(prefetching):
            f = block.astype(np.float32)
            sl = slice(start, start + len(f))
            if p.detrend is not None:  # one of them is the identity: skip it
                if p.detrend_operation == "divide":
                    f *= gain[sl, None, None]
                else:
                    f += offset[sl, None, None]
            yield start, f

    if p.dff is None and getattr(writer, "affine", None) is not None:
        # the sink keeps uint8 frames and each frame's gain and offset (io.frame_affine)
        writer.set_frame_affine(gain, offset)  # type: ignore[attr-defined]
        for start, block in cropped():
            writer.write(start, block)
        return report
    if p.dff is None:
        for start, f in corrected():
            writer.write(start, f, owned=True)  # a fresh block: the writer need not copy it
        return report

    window = max(1, int(round(p.secs_window * fps)))
    edges = block_edges(n_frames, window)
    centres = (edges[:-1] + edges[1:] - 1) / 2.0
    with tempfile.TemporaryDirectory(dir=scratch_dir, prefix="dff-baseline-") as tmp:
        baselines = np.lib.format.open_memmap(
            Path(tmp) / "baseline.npy",
            mode="w+",
            dtype=np.float32,
            shape=(len(centres), ys.stop - ys.start, xs.stop - xs.start),
        )
        _block_percentiles(cropped(), edges, p.quantile_min, baselines, gain, offset)
        baselines.flush()
        for start, f in corrected():
            base = _interpolated_baseline(baselines, centres, start, len(f))
            np.maximum(base, np.float32(p.min_baseline), out=base)
            f -= base
            if p.dff == "delta_f_over_f":
                f /= base
            else:
                f /= np.sqrt(base)
            writer.write(start, f, owned=True)
        report = replace(
            report,
            baseline_blocks=len(centres),
            block_frames=window,
            baseline_median=float(np.median(baselines[len(centres) // 2])),
        )
        del baselines
    return report


def _block_percentiles(
    frames: Any,
    edges: np.ndarray,
    quantile: float,
    out: np.ndarray,
    gain: np.ndarray,
    offset: np.ndarray,
    strip_pixels: int = 1 << 15,
) -> None:
    """Per-pixel ``quantile`` percentile of each block of detrended frames.

    The block is buffered in the input's dtype (uint8 for a denoised movie: a
    quarter of float32) and the per-frame detrend ``gain * f + offset`` is applied
    one row strip at a time, just before the percentile.
    """
    h, w = out.shape[1:]
    block_id = 0
    buf: np.ndarray | None = None
    filled = 0
    rows = max(1, strip_pixels // max(w, 1))
    for _, f in frames:
        pos = 0
        while pos < len(f):
            first = int(edges[block_id])
            need = int(edges[block_id + 1]) - first
            if buf is None or len(buf) != need or buf.dtype != f.dtype:
                buf = np.empty((need, h, w), f.dtype)
            take = min(need - filled, len(f) - pos)
            buf[filled : filled + take] = f[pos : pos + take]
            filled += take
            pos += take
            if filled == need:
                g = gain[first : first + need, None, None]
                o = offset[first : first + need, None, None]
                for r in range(0, h, rows):
                    strip = buf[:, r : r + rows].astype(np.float32) * g + o
                    out[block_id, r : r + rows] = np.percentile(strip, quantile, axis=0)
                block_id += 1
                filled = 0


def _interpolated_baseline(
    baselines: np.ndarray, centres: np.ndarray, start: int, count: int
) -> np.ndarray:
    """Baseline frames ``start..start+count`` by linear interpolation between block centres."""
    t = np.arange(start, start + count, dtype=np.float64)
    out = np.empty((count, *baselines.shape[1:]), np.float32)
    if len(centres) == 1:
        out[:] = baselines[0]
        return out
    j = np.clip(np.searchsorted(centres, t, side="right") - 1, 0, len(centres) - 2)
    frac = np.clip((t - centres[j]) / (centres[j + 1] - centres[j]), 0.0, 1.0).astype(np.float32)
    for jj in np.unique(j):
        sel = np.nonzero(j == jj)[0]
        lo = np.asarray(baselines[jj])
        hi = np.asarray(baselines[jj + 1])
        w = frac[sel][:, None, None]
        out[sel] = lo[None] + w * (hi - lo)[None]
    return out
