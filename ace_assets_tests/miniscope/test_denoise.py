"""Band + flicker removal: equals the textbook FFT version and removes what it should."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from ace_assets.errors import AceInputError
from ace_assets.io.miniscope import open_miniscope
from ace_assets.io.store import ArrayStore, ArrayStoreWriter
from ace_assets.miniscope.chunks import ArraySink
from ace_assets.miniscope.denoise import (
    BandFilter,
    DenoiseParams,
    denoise_movie,
    flicker_scale,
    lowpass_means,
    reference_denoise_frame,
    rfft_mask,
    spectral_mask,
)
from ace_assets.miniscope.stripes import sample_pairs

FPS = 30.0
T, H, W = 150, 96, 128
# the reference notch, its strip placed to cover this movie's bands
PARAMS = DenoiseParams(stripe_method="reference", centerHalfHeightToLeave=20, notchHalfWidth=3)
REFERENCE = replace(PARAMS, wrapCorrection=False)
BAND_KY = (29, 41)


def synthetic_movie(seed: int = 0) -> dict[str, np.ndarray]:
    """Neurons on a vignetted background, plus travelling bands and fast flicker."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    background = 60 + 40 * np.exp(-((yy - H / 2) ** 2 + (xx - W / 2) ** 2) / (2 * 40.0**2))
    clean = np.repeat(background[None], T, axis=0)
    t = np.arange(T)
    for _ in range(12):
        cy, cx = rng.uniform(8, H - 8), rng.uniform(8, W - 8)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 2.5**2))
        trace = np.zeros(T)
        for onset in rng.choice(T - 20, 3, replace=False):
            trace[onset:] += 40 * np.exp(-(t[onset:] - onset) / 8.0)
        clean += trace[:, None, None] * blob[None]
    phase = 2 * np.pi * 0.15 * t  # bands creep by a fraction of a period per frame
    profile = sum(
        4.0 * np.sin(2 * np.pi * ky * yy[:, 0][None, :] / H + phase[:, None] * (1 + i))
        for i, ky in enumerate(BAND_KY)
    )
    bands = np.repeat(profile[:, :, None], W, axis=2)
    gain = 1 + 0.06 * np.sin(2 * np.pi * 9.0 * t / FPS) + 0.03 * rng.standard_normal(T)
    noisy = (clean + bands) * gain[:, None, None] + rng.normal(0, 1.0, clean.shape)
    raw = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return {"raw": raw, "clean": clean.astype(np.float32), "bands": bands.astype(np.float32)}


@pytest.fixture(scope="module")
def movie() -> dict[str, np.ndarray]:
    return synthetic_movie()


def strip_energy(frames: np.ndarray, params: DenoiseParams) -> float:
    keep = rfft_mask(frames.shape[1:], params)
    spec = np.fft.rfft2(frames.astype(np.float64), axes=(1, 2))
    return float((np.abs(spec[:, ~keep]) ** 2).sum())


def reference_movie(raw: np.ndarray, params: DenoiseParams) -> np.ndarray:
    """The per-frame textbook pipeline: complex FFT per frame, then the flicker gain."""
    mask = spectral_mask(raw.shape[1:], params)
    means = raw.reshape(len(raw), -1).mean(1)
    scale = flicker_scale(means, lowpass_means(means, FPS, params.cutoff, params.butterOrder))
    out = np.empty(raw.shape, np.uint8)
    for i, frame in enumerate(raw):
        filtered = reference_denoise_frame(frame, mask) * scale[i]
        out[i] = np.clip(np.rint(filtered), 0, 255).astype(np.uint8)
    return out


def run_denoise(source: object, params: DenoiseParams, **kw: object) -> tuple[np.ndarray, dict]:
    sink = ArraySink((T, H, W), np.uint8)
    report = denoise_movie(source, T, (H, W), FPS, params, sink, **kw)  # type: ignore[arg-type]
    return sink.array, report


def test_masks_agree_between_layouts() -> None:
    for shape in [(96, 128), (65, 81)]:
        centred = spectral_mask(shape, PARAMS)
        unshifted = np.fft.ifftshift(centred)
        np.testing.assert_array_equal(unshifted[:, : shape[1] // 2 + 1], rfft_mask(shape, PARAMS))
        # Hermitian symmetry: keeping (ky, kx) means keeping (-ky, -kx), so output is real.
        flipped = np.roll(unshifted[::-1, ::-1], 1, axis=(0, 1))
        np.testing.assert_array_equal(flipped, unshifted)
    mask = spectral_mask((96, 128), DenoiseParams())
    assert mask.all(), "centre band of 90 leaves a 96-row spectrum untouched"


@pytest.mark.parametrize("shape", [(96, 128), (65, 81)])
@pytest.mark.parametrize("radius", [2000.0, 30.0])
def test_band_filter_equals_reference(shape: tuple[int, int], radius: float) -> None:
    params = DenoiseParams(
        centerHalfHeightToLeave=12, notchHalfWidth=2, goodRadius=radius, wrapCorrection=False
    )
    frames = np.random.default_rng(3).uniform(0, 255, (4, *shape)).astype(np.float32)
    mask = spectral_mask(shape, params)
    expected = np.stack([reference_denoise_frame(f, mask) for f in frames])
    methods = ["projection", "rfft"] if radius > 1000 else ["rfft"]
    for method in methods:
        got = BandFilter(shape, params, method=method).apply(frames)
        assert np.abs(got - expected).max() < 1e-2, method
        # the DC term is kept, so the filtered mean is the raw mean
        np.testing.assert_allclose(got.mean((1, 2)), frames.mean((1, 2)), rtol=1e-5)


def test_fast_matches_reference_within_one_grey_level(movie: dict) -> None:
    expected = reference_movie(movie["raw"], REFERENCE)
    for method in ("projection", "rfft"):
        got, report = run_denoise(movie["raw"], REFERENCE, method=method)
        assert report.method == method
        diff = np.abs(got.astype(int) - expected.astype(int))
        assert diff.max() <= 1, method
        assert (diff > 0).mean() < 0.01


def test_wrap_correction_stops_edge_ringing() -> None:
    """A frame brighter at the top than the bottom: the periodic filter rings at the wrap."""
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    rng = np.random.default_rng(5)
    frames = (40 + 120 * (1 - yy / H) + rng.normal(0, 2, (3, H, W))).astype(np.float32)
    periodic = BandFilter((H, W), REFERENCE).apply(frames)
    corrected = BandFilter((H, W), PARAMS).apply(frames)
    np.testing.assert_allclose(
        BandFilter((H, W), PARAMS, method="rfft").apply(frames), corrected, atol=1e-2
    )

    def edge_change(out: np.ndarray) -> float:
        return float(np.abs(out - frames)[:, [0, 1, -2, -1]].mean())

    assert edge_change(periodic) > 5.0
    assert edge_change(corrected) < 0.2 * edge_change(periodic)
    # away from the edges both agree with the reference (whose ringing decays slowly)
    inner = np.abs(corrected[:, 25 : H - 25] - periodic[:, 25 : H - 25])
    assert inner.mean() < 0.01 * 120 and inner.max() < 0.02 * 120


def test_bands_and_flicker_removed(movie: dict) -> None:
    raw, clean = movie["raw"], movie["clean"]
    out, report = run_denoise(raw, PARAMS)
    before = strip_energy(raw - clean, PARAMS)
    after = strip_energy(out - clean, PARAMS)
    assert after < 0.1 * before, (after, before)

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    assert corr(clean, out) > corr(clean, raw) + 0.01
    means_out = out.reshape(T, -1).mean(1)
    assert np.std(np.diff(means_out)) < 0.25 * np.std(np.diff(report.frame_means))
    assert report.removed_energy_fraction > 0
    assert report.mask.shape == (H, W) and report.stripe_spectrum.shape == (H, W)
    assert report.spectrum_frames == 2 * len(sample_pairs(T, PARAMS.frameStep))


def test_streams_from_avi_recording_into_store(tmp_path: Path, movie: dict) -> None:
    scope = tmp_path / "Miniscope"
    scope.mkdir()
    raw = movie["raw"]
    for i, start in enumerate(range(0, T, 60)):
        writer = cv2.VideoWriter(
            str(scope / f"{i}.avi"), cv2.VideoWriter_fourcc(*"FFV1"), FPS, (W, H), False
        )
        for frame in raw[start : start + 60]:
            writer.write(frame)
        writer.release()
    (scope / "metaData.json").write_text(json.dumps({"frameRate": "30FPS"}))
    ts = "Frame Number,Time Stamp (ms),Buffer Index\n" + "".join(
        f"{i},{i * 33.3:.1f},0\n" for i in range(T)
    )
    (scope / "timeStamps.csv").write_text(ts)
    rec = open_miniscope(tmp_path)
    expected, _ = run_denoise(raw, PARAMS)
    with ArrayStoreWriter(tmp_path / "den.npyd", rec.shape, np.uint8) as sink:
        denoise_movie(rec, rec.n_frames, rec.frame_shape, rec.frame_rate, PARAMS, sink)
        sink.commit()
    np.testing.assert_array_equal(ArrayStore(tmp_path / "den.npyd").read(), expected)


def test_parking_in_output_equals_decoding_twice(movie: dict) -> None:
    raw = movie["raw"]

    class WriteOnly:
        def __init__(self) -> None:
            self.inner = ArraySink((T, H, W), np.uint8)

        def write(self, start: int, block: np.ndarray) -> None:
            self.inner.write(start, block)

    passes = []

    def source() -> object:
        passes.append(1)
        return ((s, raw[s : s + 40]) for s in range(0, T, 40))

    parked, _ = run_denoise(source, PARAMS)  # ArraySink has .array: one pass
    assert len(passes) == 1
    twice = WriteOnly()
    denoise_movie(source, T, (H, W), FPS, PARAMS, twice)
    assert len(passes) == 3
    np.testing.assert_array_equal(parked, twice.inner.array)


def test_bad_parameters() -> None:
    with pytest.raises(AceInputError, match="cutoff"):
        lowpass_means(np.ones(100), fps=5.0, cutoff=3.0)
    with pytest.raises(AceInputError, match="unknown denoise parameters"):
        DenoiseParams.from_mapping({"notchHalfwidth": 3})
    with pytest.raises(AceInputError, match="notchHalfWidth"):
        DenoiseParams.from_mapping({"notchHalfWidth": -1})
    assert DenoiseParams.from_mapping({"cutoff": "", "butterOrder": 4}).butterOrder == 4
    with pytest.raises(AceInputError, match="expected 151"):
        denoise_movie(
            np.zeros((150, 8, 8), np.uint8), 151, (8, 8), FPS, None, ArraySink((1,), "u1")
        )
