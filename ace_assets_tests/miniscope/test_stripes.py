"""Stripe detection and the sparse notch, on small synthetic movies with known bands.

Each movie is a vignetted background with blinking cells, sensor noise and travelling
bands ``amplitude * sin(2 pi (cycles (y - speed t) / H + cycles_x x / W) + 1)``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from ace_assets.miniscope.stripes import (
    MAX_PROJECTION_COLUMNS,
    MIN_CYCLES,
    PairedSpectrum,
    SparseNotch,
    detect_stripes,
    fit_notch,
    sample_pairs,
    stripe_cone,
    stripe_rms,
)

FPS = 30.0


def band_movie(
    shape: tuple[int, int],
    bands: list[tuple[float, float, float, float]],
    n: int = 80,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 movie, float32 bands alone); ``bands`` are (cycles, cycles_x, amplitude, speed)."""
    h, w = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    background = 60 + 40 * np.exp(
        -((yy - 0.55 * h) ** 2 + (xx - 0.45 * w) ** 2) / (2 * (0.4 * max(h, w)) ** 2)
    )
    py, px = np.mgrid[-12:13, -12:13]
    cell = (30 * np.exp(-(py**2 + px**2) / (2 * 3.0**2))).astype(np.float32)
    corners = rng.integers((0, 0), (h - 25, w - 25), size=(max(5, h * w // 2000), 2))
    y, x = np.arange(h, dtype=np.float64)[:, None], np.arange(w, dtype=np.float64)[None, :]
    movie = np.empty((n, h, w), np.uint8)
    alone = np.zeros((n, h, w), np.float32)
    for t in range(n):
        frame = background + rng.normal(0, 3.0, (h, w)).astype(np.float32)
        for cy, cx in corners[rng.uniform(size=len(corners)) < 0.1]:
            frame[cy : cy + 25, cx : cx + 25] += cell
        for cycles, cycles_x, amplitude, speed in bands:
            alone[t] += amplitude * np.sin(
                2 * np.pi * (cycles * (y - speed * t) / h + cycles_x * x / w) + 1.0
            ).astype(np.float32)
        movie[t] = np.clip(np.rint(frame + alone[t]), 0, 255)
    return movie, alone


def spectrum_of(movie: np.ndarray, step: int = 10) -> PairedSpectrum:
    spec = PairedSpectrum(movie.shape[1:])
    for t in sample_pairs(len(movie), step):
        a, b = movie[t], movie[t + 1]
        spec.add_pair(
            spec.transform(a, float(a.mean())),
            spec.transform(b, float(b.mean())),
            (float(a.mean()), float(b.mean())),
        )
    return spec


def power_kept(notch: SparseNotch, alone: np.ndarray) -> float:
    """Share of the bands' power (frame means removed) that the notch lets through."""
    b = alone[::8] - alone[::8].mean(axis=(1, 2), keepdims=True)
    out = notch.apply(b)
    out -= out.mean(axis=(1, 2), keepdims=True)
    return float((out.astype(np.float64) ** 2).sum() / (b.astype(np.float64) ** 2).sum())


def canonical(cycles: int, cycles_x: int) -> tuple[int, int]:
    """The rfft-layout bin of a band (kx >= 0; ky >= 0 on the kx = 0 axis)."""
    if cycles_x < 0 or (cycles_x == 0 and cycles < 0):
        return -cycles, -cycles_x
    return cycles, cycles_x


CASES = [
    ((2, 0, 3.0, "slow"), "two cycles per height"),
    ((19, 0, 3.0, 1.0), "nineteen cycles"),
    (("high", 0, 3.0, 1.5), "200 cycles, or near Nyquist in a smaller frame"),
    ((12, 3, 3.0, 0.8), "tilted"),
    ((3, -1, 3.0, 0.4), "tilted the other way, low"),
]


@pytest.mark.parametrize("shape", [(97, 131), (200, 200), (255, 301), (608, 608)])
def test_finds_and_removes_integer_bands(shape: tuple[int, int]) -> None:
    for (cycles, cycles_x, amplitude, speed), label in CASES:
        cycles = min(200, shape[0] // 2 - 3) if cycles == "high" else cycles
        speed = shape[0] / 250 if speed == "slow" else speed  # 1/3 period in 40 frames
        n = 64 if shape[0] * shape[1] < 100_000 else 40
        movie, alone = band_movie(shape, [(cycles, cycles_x, amplitude, speed)], n=n)
        spec = spectrum_of(movie)
        found = detect_stripes(spec.power(), shape)
        assert len(found.bands) == 1, (shape, label, found.bands)
        band = found.bands[0]
        assert (band.cycles, band.cycles_x) == canonical(cycles, cycles_x), (shape, label)
        # a whole number of periods is one bin (and its mirror on the axis): nothing else
        assert len(found.bins) <= 2, (shape, label, found.bins)
        notch = fit_notch(spec, found)
        assert power_kept(notch, alone) < 0.01, (shape, label)
        # how often the band passes a fixed row: speed * cycles / height * fps
        step = spec.phase_steps(np.array([[band.cycles, band.cycles_x]]))[0]
        expected = abs(speed * cycles / shape[0] * FPS)
        expected = min(expected % FPS, FPS - expected % FPS)  # aliased into 0..fps/2
        rms = amplitude / np.sqrt(2)
        if expected * len(movie) / FPS >= 2:  # passes a row twice: measurable
            assert step * FPS / (2 * np.pi) == pytest.approx(expected, rel=0.1, abs=0.05)
            assert band.rms == pytest.approx(rms, rel=0.35), (shape, label)
        else:  # a band that hardly moves is measured by how much it varied
            assert 0 < band.rms < 1.35 * rms, (shape, label)


@pytest.mark.parametrize("shape", [(97, 131), (255, 301), (400, 360)])
def test_bands_off_the_grid_are_removed_with_their_leakage(shape: tuple[int, int]) -> None:
    """A band that does not fit a whole number of periods spreads over several bins."""
    for band in [(19.5, 0.0, 3.0, 1.0), (7.3, 1.4, 3.0, 0.7)]:
        movie, alone = band_movie(shape, [band])
        spec = spectrum_of(movie)
        found = detect_stripes(spec.power(), shape)
        assert len(found.bands) == 1, (shape, band, found.bands)
        assert power_kept(fit_notch(spec, found), alone) <= 0.10, (shape, band)


def test_several_bands_at_once() -> None:
    shape = (240, 300)
    bands = [(4, 1, 5.0, 0.6), (11, -1, 3.0, 1.1), (17, 0, 1.5, 2.0), (100, 0, 2.0, 1.5)]
    movie, alone = band_movie(shape, bands)
    spec = spectrum_of(movie)
    found = detect_stripes(spec.power(), shape)
    got = sorted((b.cycles, b.cycles_x) for b in found.bands)
    assert got == sorted(canonical(int(c), int(cx)) for c, cx, _, _ in bands)
    assert power_kept(fit_notch(spec, found), alone) < 0.01
    assert found.rms == pytest.approx(np.sqrt(sum(a**2 / 2 for _, _, a, _ in bands)), rel=0.3)


@pytest.mark.parametrize("shape", [(97, 131), (240, 300), (320, 320)])
def test_no_bands_nothing_notched(shape: tuple[int, int]) -> None:
    movie, _ = band_movie(shape, [], n=120, seed=3)
    found = detect_stripes(spectrum_of(movie).power(), shape)
    assert found.bands == [] and len(found.bins) == 0 and found.rms == 0.0


def test_stripe_rms_measures_what_a_filter_left() -> None:
    """Before/after: the same detector on the output finds what the notch missed."""
    shape = (200, 200)
    movie, _ = band_movie(shape, [(40, 0, 3.0, 2.0), (6, 0, 3.0, 0.5)])
    spec = spectrum_of(movie)
    found = detect_stripes(spec.power(), shape)
    assert len(found.bands) == 2

    def rms_after(notch: SparseNotch) -> float:
        out = np.clip(np.rint(notch.apply(movie.astype(np.float32))), 0, 255).astype(np.uint8)
        return stripe_rms(spectrum_of(out).power(), found)

    assert rms_after(fit_notch(spec, found)) < 0.05 * found.rms
    one = found.bins[np.abs(found.bins[:, 0]) == 40]  # a notch that misses the 6-cycle band
    left = rms_after(SparseNotch(shape, one))
    assert left == pytest.approx(3.0 / np.sqrt(2), rel=0.35)


def test_sparse_notch_equals_fft_masking() -> None:
    """The projection path equals zeroing the bins of each frame's real FFT."""
    rng = np.random.default_rng(1)
    for shape in [(64, 80), (65, 81), (96, 128)]:
        h, w = shape
        bins = np.array([[5, 0], [-5, 0], [9, 2], [-20, 3], [h // 2, 0], [3, w // 2]])
        if h % 2:  # no Nyquist row: the mirror of (h//2, 0) is another row
            bins = np.vstack([bins, [-(h // 2), 0]])
        frames = rng.uniform(0, 255, (3, *shape)).astype(np.float32)
        notch = SparseNotch(shape, bins)
        keep = np.ones((h, w // 2 + 1))
        keep[bins[:, 0] % h, bins[:, 1]] = 0.0
        if w % 2 == 0:  # the Nyquist column is its own mirror: (ky, w/2) ~ (-ky, w/2)
            keep[(-bins[bins[:, 1] == w // 2, 0]) % h, w // 2] = 0.0
        expected = scipy.fft.irfft2(scipy.fft.rfft2(frames) * keep, s=shape)
        np.testing.assert_allclose(notch.apply(frames), expected, atol=2e-2)
        np.testing.assert_allclose(notch.apply(frames).mean((1, 2)), frames.mean((1, 2)), rtol=1e-5)


def test_notch_keeps_the_still_scene_and_is_linear() -> None:
    """The static content at a notched bin stays; what varies there goes."""
    shape = (120, 150)
    h, w = shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    scene = 80 + 20 * np.cos(2 * np.pi * 2 * yy / h) + 0.1 * xx  # strong 2-cycle content
    bins = np.array([[2, 0], [-2, 0]])
    static = np.fft.rfft2(scene / scene.mean())[bins[:, 0] % h, bins[:, 1]]
    notch = SparseNotch(shape, bins, static)
    np.testing.assert_allclose(notch.apply(scene), scene, atol=1e-2)
    np.testing.assert_allclose(notch.apply(1.3 * scene), 1.3 * scene, rtol=1e-4)  # flicker
    band = 4 * np.sin(2 * np.pi * 2 * yy / h + 0.7).astype(np.float32)
    np.testing.assert_allclose(notch.apply(scene + band), scene, atol=2e-2)
    a, b = scene, np.random.default_rng(0).normal(0, 5, shape).astype(np.float32)
    np.testing.assert_allclose(
        notch.apply(a + 2 * b), notch.apply(a) + 2 * notch.apply(b), atol=5e-3 * 255
    )


def test_a_cell_through_the_notch_loses_little_and_does_not_ring() -> None:
    shape = (200, 200)
    movie, _ = band_movie(shape, [(2, 0, 3.0, 0.5), (19, 0, 3.0, 1.0), (60, 8, 3.0, 1.2)])
    spec = spectrum_of(movie)
    notch = fit_notch(spec, detect_stripes(spec.power(), shape))
    yy, xx = np.mgrid[:200, :200].astype(np.float32)
    cell = np.exp(-((yy - 70) ** 2 + (xx - 120) ** 2) / (2 * 6.0**2)).astype(np.float32)
    out = notch.apply(cell)
    assert ((out - cell) ** 2).sum() / (cell**2).sum() < 0.05
    # the cell loses only its own coefficients at the notched bins: a faint sinusoid over
    # the whole frame, no ripples next to it (a wide strip notch would ring there)
    change = np.abs(out - cell)
    assert change.max() < 0.02
    near = np.hypot(yy - 70, xx - 120) < 20
    assert change[near].max() < 1.5 * change[~near].max()


def test_cone_and_parameters_are_fractions_of_the_frame() -> None:
    for shape in [(64, 64), (97, 131), (608, 608)]:
        h, w = shape
        cone = stripe_cone(shape, 30.0)
        ky = np.rint(np.fft.fftfreq(h) * h)[:, None] * np.ones((1, w // 2 + 1))
        assert np.abs(ky[cone]).min() == MIN_CYCLES
        assert np.abs(ky[cone]).max() == h // 2
        # 30 degrees from the vertical axis in physical (cycles per pixel) units
        kx = np.arange(w // 2 + 1)[None, :] * np.ones((h, 1))
        tilt = np.degrees(np.arctan2(kx[cone] / w, np.abs(ky[cone]) / h))
        assert tilt.max() <= 30.0


def test_many_horizontal_frequencies_use_an_fft_pair_with_the_same_result() -> None:
    """Past MAX_PROJECTION_COLUMNS distinct kx the notch masks a real FFT instead."""
    shape = (64, 96)
    h, w = shape
    bins = np.array([[7, kx] for kx in range(MAX_PROJECTION_COLUMNS + 6)] + [[-7, 0]])
    rng = np.random.default_rng(4)
    static = rng.normal(size=len(bins)) + 1j * rng.normal(size=len(bins))
    static[-1] = np.conj(static[0])  # (-7, 0) mirrors (7, 0)
    frames = rng.uniform(0, 255, (3, *shape)).astype(np.float32)
    fft = SparseNotch(shape, bins, static)
    assert fft._use_fft
    keep = np.ones((h, w // 2 + 1))
    keep[bins[:, 0] % h, bins[:, 1]] = 0.0
    spec = scipy.fft.rfft2(frames)
    kept = np.zeros_like(spec)
    kept[:, bins[:, 0] % h, bins[:, 1]] = static[None] * frames.mean(axis=(1, 2))[:, None]
    expected = scipy.fft.irfft2(spec * keep + kept, s=shape)
    np.testing.assert_allclose(fft.apply(frames), expected, atol=2e-2)
    scale = np.array([0.9, 1.0, 1.1])
    rounded = np.clip(np.rint(expected * scale[:, None, None]), 0, 255)
    assert np.abs(fft.apply_uint8(frames, scale).astype(int) - rounded).max() <= 1
