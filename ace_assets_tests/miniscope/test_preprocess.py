"""Crop, bleaching detrend and ΔF/F, streamed, against in-memory ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ace_assets.errors import AceInputError
from ace_assets.io.store import ArrayStore, ArrayStoreWriter
from ace_assets.miniscope.chunks import ArraySink
from ace_assets.miniscope.preprocess import (
    PreprocessParams,
    block_edges,
    crop_box,
    frame_medians,
    output_is_frame_affine,
    output_shape,
    preprocess_movie,
)

FPS = 20.0
T, H, W = 240, 40, 48


def bleaching_movie(seed: int = 0) -> dict[str, np.ndarray]:
    """F0 * bleach(t) * (1 + transients) + noise, as uint8, with its ground truth."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    f0 = 80 + 60 * np.exp(-((yy - H / 2) ** 2 + (xx - W / 2) ** 2) / (2 * 15.0**2))
    t = np.arange(T)
    bleach = np.exp(-t / 400.0)  # ~45 % loss over the movie
    activity = np.zeros((T, H, W))
    cells = [(10, 12), (25, 30), (30, 10)]
    for cy, cx in cells:
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 2.0**2))
        trace = np.zeros(T)
        for onset in (30, 120, 190):
            trace[onset:] += 0.8 * np.exp(-(t[onset:] - onset) / 6.0)
        activity += trace[:, None, None] * blob[None]
    clean = f0[None] * bleach[:, None, None] * (1 + activity)
    raw = np.clip(np.rint(clean + rng.normal(0, 0.6, clean.shape)), 0, 255).astype(np.uint8)
    return {"raw": raw, "f0": f0, "bleach": bleach, "activity": activity, "cells": np.array(cells)}


@pytest.fixture(scope="module")
def movie() -> dict[str, np.ndarray]:
    return bleaching_movie()


def run(raw: np.ndarray, params: PreprocessParams, chunk: int = 32, **kw: object) -> tuple:
    sink = ArraySink(output_shape(len(raw), raw.shape[1:], params), np.float32)
    report = preprocess_movie(
        raw, len(raw), raw.shape[1:], FPS, params, sink, chunk_frames=chunk, **kw
    )
    return sink.array, report


def test_crop_exact_and_checked(movie: dict) -> None:
    raw = movie["raw"]
    params = PreprocessParams(crop_coords=(5, 3, 41, 30), detrend=None)
    out, report = run(raw, params)
    assert out.shape == (T, 27, 36) and out.dtype == np.float32
    np.testing.assert_array_equal(out, raw[:, 3:30, 5:41])
    assert report.crop_box == [5, 3, 41, 30]
    for bad in [(0, 0, W + 1, H), (-1, 0, 10, 10), (10, 0, 10, 5), (0, 0, 5), ("a", 0, 5, 5)]:
        with pytest.raises(AceInputError, match="crop_coords"):
            crop_box((H, W), bad)
    with pytest.raises(AceInputError, match="outside the 48x40 frame"):
        run(raw, PreprocessParams(crop_coords=(0, 0, 10, 50)))


def test_frame_medians_exact() -> None:
    rng = np.random.default_rng(1)
    for shape in [(5, 7, 9), (5, 8, 8)]:
        block = rng.integers(0, 256, shape).astype(np.uint8)
        np.testing.assert_array_equal(frame_medians(block), np.median(block.reshape(5, -1), axis=1))
    block[:, :, :] = 7
    np.testing.assert_array_equal(frame_medians(block), 7.0)


@pytest.mark.parametrize("method", ["median", "linear"])
def test_detrend_flattens_bleaching_and_keeps_transients(movie: dict, method: str) -> None:
    raw = movie["raw"]
    out, report = run(raw, PreprocessParams(detrend=method, detrend_window_s=4.0))
    medians = np.median(out.reshape(T, -1), axis=1)
    raw_medians = np.median(raw.reshape(T, -1), axis=1)
    assert np.ptp(raw_medians) > 30
    assert np.ptp(medians) < 0.25 * np.ptp(raw_medians)
    assert abs(medians[0] - raw_medians[0]) < 2  # first-frame level kept
    # a cell's relative transient is unchanged by a per-frame gain
    cy, cx = movie["cells"][0]
    peak = out[130, cy, cx] / out[115, cy, cx]
    true_peak = (1 + movie["activity"][130, cy, cx]) / (1 + movie["activity"][115, cy, cx])
    assert peak == pytest.approx(true_peak, rel=0.1)
    assert report.trend.shape == (T,)


def test_detrend_subtract(movie: dict) -> None:
    raw = movie["raw"]
    out, _ = run(raw, PreprocessParams(detrend="median", detrend_operation="subtract"))
    means = out.reshape(T, -1).mean(1)
    assert np.ptp(np.median(out.reshape(T, -1), axis=1)) < 0.25 * np.ptp(raw.reshape(T, -1).mean(1))
    assert means.dtype == np.float32


@pytest.mark.parametrize(
    "settings",
    [
        {"detrend": "median"},
        {"detrend": "linear", "detrend_operation": "subtract"},
        {"detrend": None, "crop_coords": (3, 5, 40, 33)},
        {"detrend": "median", "crop_coords": (0, 2, 48, 39)},
    ],
)
def test_frame_affine_store_holds_the_float_values_bit_for_bit(
    movie: dict, settings: dict, tmp_path: Path
) -> None:
    """The preprocessed_movie asset keeps a movie without ΔF/F as its cropped uint8 frames
    and per-frame gains: every value read back is the one the float path computes."""
    raw = movie["raw"]
    params = PreprocessParams(**settings)
    assert output_is_frame_affine(params, raw.dtype)
    expected, _ = run(raw, params, chunk=13)
    shape = output_shape(T, (H, W), params)
    with ArrayStoreWriter(tmp_path / "p.npyd", shape, np.float32, frame_affine=True) as w:
        preprocess_movie(raw, T, (H, W), FPS, params, w, chunk_frames=13)
        store = w.commit()
    got = store.read()
    assert store.stored_dtype == np.uint8
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_frame_affine_only_without_dff_and_for_uint8() -> None:
    assert not output_is_frame_affine(PreprocessParams(dff="delta_f_over_f"), np.uint8)
    assert not output_is_frame_affine(PreprocessParams(), np.float32)
    assert output_is_frame_affine(None, np.uint8)


def reference_dff(frames: np.ndarray, window: int, quantile: float, method: str) -> np.ndarray:
    """Whole movie in memory: block percentiles, then per-pixel np.interp in time."""
    f = frames.astype(np.float64)
    edges = block_edges(len(f), window)
    centres = (edges[:-1] + edges[1:] - 1) / 2.0
    blocks = np.stack(
        [
            np.percentile(f[a:b], quantile, axis=0)
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
    )
    t = np.arange(len(f))
    base = np.empty_like(f)
    for y in range(f.shape[1]):
        for x in range(f.shape[2]):
            base[:, y, x] = np.interp(t, centres, blocks[:, y, x])
    base = np.maximum(base, 1.0)
    return (f - base) / (base if method == "delta_f_over_f" else np.sqrt(base))


@pytest.mark.parametrize("method", ["delta_f_over_f", "delta_f_over_sqrt_f"])
def test_dff_streaming_equals_in_memory(movie: dict, method: str, tmp_path: Path) -> None:
    raw = movie["raw"]
    params = PreprocessParams(detrend=None, dff=method, secs_window=2.3, quantile_min=8)
    expected = reference_dff(raw, window=46, quantile=8, method=method)
    for chunk in (7, 64):
        out, report = run(raw, params, chunk=chunk, scratch_dir=tmp_path)
        np.testing.assert_allclose(out, expected, atol=2e-4, rtol=1e-4)
    assert report.baseline_blocks == 5 and report.block_frames == 46
    assert list(tmp_path.iterdir()) == []  # scratch baseline removed


def test_dff_recovers_activity_under_bleaching(movie: dict, tmp_path: Path) -> None:
    raw = movie["raw"]
    params = PreprocessParams(detrend="median", dff="delta_f_over_f", secs_window=5.0)
    with ArrayStoreWriter(tmp_path / "dff.npyd", output_shape(T, (H, W), params), np.float32) as w:
        preprocess_movie(raw, T, (H, W), FPS, params, w)
        w.commit()
    dff = ArrayStore(tmp_path / "dff.npyd").read()
    truth = movie["activity"]
    quiet = truth.max(0) < 0.01
    assert np.median(np.abs(dff[:, quiet])) < 0.02  # baseline tracked through bleaching
    for cy, cx in movie["cells"]:
        assert dff[32, cy, cx] == pytest.approx(truth[32, cy, cx], abs=0.12)


def test_bad_params() -> None:
    with pytest.raises(AceInputError, match="detrend"):
        PreprocessParams.from_mapping({"detrend": "poly"})
    with pytest.raises(AceInputError, match="dff"):
        PreprocessParams.from_mapping({"dff": "zscore"})
    with pytest.raises(AceInputError, match="unknown preprocess"):
        PreprocessParams.from_mapping({"secs": 5})
    p = PreprocessParams.from_mapping({"crop": [1, 2, 3, 4], "detrend": None, "quantile_min": ""})
    assert p.crop_coords == (1, 2, 3, 4) and p.detrend is None and p.quantile_min == 8.0
