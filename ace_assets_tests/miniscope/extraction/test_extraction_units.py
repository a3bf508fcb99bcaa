"""Building blocks of the extraction: parameters, deconvolution, summary images, matching."""

from __future__ import annotations

import csv
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from scipy.optimize import nnls
from scipy.signal import lfilter, welch

from ace_assets.errors import AceInputError
from ace_assets.miniscope.extraction import (
    ExtractionParams,
    correlation_pnr,
    evaluate_against_truth,
    streamed_correlation_pnr,
)
from ace_assets.miniscope.extraction.background import decimation_matrix, ring_kernels
from ace_assets.miniscope.extraction.deconvolution import (
    ar_from_decay,
    deconvolve,
    estimate_ar,
    noise_psd,
    oasis_ar1,
    welch_density,
)
from ace_assets.miniscope.extraction.evaluation import event_exceptionality_snr, match_centers
from ace_assets.miniscope.extraction.movie import TiledCache, block_reduce_mean, patch_cache_tile
from ace_assets.miniscope.extraction.pipeline import patch_windows
from ace_assets.miniscope.extraction.summary_images import (
    center_psf_kernel,
    median_of_columns,
    median_of_rows,
    pixel_noise_robust,
)
from ace_assets_tests.helpers.paths import TEMPLATES
from ace_assets_tests.helpers.synth_cnmfe import make_movie

TEMPLATE = TEMPLATES / "analysis_parameters_template.csv"


# ---------------------------------------------------------------- parameters


def test_params_from_csv_row_text():
    row = {
        "gSig": "(7, 7)",
        "gSiz": "(29, 29)",
        "K": "None",
        "min_corr": "0.8",
        "min_pnr": "10",
        "center_psf": "TRUE",
        "normalize_init": "FALSE",
        "rf": "40",
        "stride": "20",
        "merge_thr": "0.7",
        "p": "1",
        "decay_time": "0.4",
        "ssub_B": "2",
        "tsub": "2",
        "nb": "0",
        "border_pix": "0",
        "low_rank_background": "None",
        "method_init": "corr_pnr",
        "min_SNR": "",
        "comments": "free text",
        "line number": 3,
    }
    p = ExtractionParams.from_dict(row)
    assert p.gSig == (7, 7) and p.gSiz == (29, 29) and p.K is None
    assert p.center_psf is True and p.normalize_init is False
    assert p.rf == 40 and p.stride == 20 and p.min_pnr == 10.0
    assert p.min_SNR == 2.5  # empty cell keeps the default
    assert ExtractionParams.from_dict({"gSiz": 12}).gSiz == (13, 13)  # made odd


def test_params_from_the_reference_template():
    with open(TEMPLATE, newline="") as fh:
        row = next(csv.DictReader(fh))
    p = ExtractionParams.from_dict(row, source=TEMPLATE, line=1)
    assert p.gSig == (7, 7) and p.ssub_B == 2 and p.merge_thr == 0.7 and p.use_cnn is False


@pytest.mark.parametrize(
    ("values", "column"),
    [
        ({"min_pnr": -1}, "min_pnr"),
        ({"gSig": "(7, x)"}, "gSig"),
        ({"gSig": (0, 0)}, "gSig"),
        ({"center_psf": "maybe"}, "center_psf"),
        ({"merge_thr": 1.5}, "merge_thr"),
        ({"ring_size_factor": 0.5}, "ring_size_factor"),
        ({"nb": 2}, "nb"),
        ({"p": 3}, "p"),
        ({"rf": 20, "stride": 40}, "stride"),
        ({"method_init": "greedy_roi"}, "method_init"),
        ({"tsub": 0}, "tsub"),
        ({"n_iter": 0}, "n_iter"),
    ],
)
def test_params_validation_names_the_column(values, column):
    with pytest.raises(AceInputError) as err:
        ExtractionParams.from_dict(values, source="analysis_parameters.csv", line=4)
    assert err.value.column == column
    assert "analysis_parameters.csv" in str(err.value) and "line number 4" in str(err.value)


def test_full_passes_one_at_full_resolution_two_after_a_binned_initialisation():
    """An empty n_iter runs one full-resolution pass when the initialisation already had the
    full spatial resolution (ssub = 1) and two when its footprints were binned; a given
    n_iter is taken as it is."""
    assert ExtractionParams.from_dict({}).n_iter is None
    assert ExtractionParams.from_dict({}).full_passes == 1
    assert ExtractionParams.from_dict({"ssub": 2}).full_passes == 2
    assert ExtractionParams.from_dict({"ssub": 2, "n_iter": 1}).full_passes == 1
    assert ExtractionParams.from_dict({"n_iter": 3}).full_passes == 3


def test_params_strict_rejects_unknown_and_movie_checks():
    with pytest.raises(AceInputError, match="unknown"):
        ExtractionParams.from_dict({"gsig": 3}, strict=True)
    p = ExtractionParams(gSig=(7, 7), gSiz=(29, 29))
    p.validate()
    with pytest.raises(AceInputError, match="larger than the 20x20 frame"):
        p.validate_for_movie((100, 20, 20))
    p.validate_for_movie((100, 64, 64))


# ---------------------------------------------------------------- deconvolution


def _ar1_trace(rng, t=1500, g=0.92, rate=0.02, sd=1.0):
    s = (rng.random(t) < rate) * rng.uniform(5, 12, t)
    s[0] = 0
    c = lfilter([1.0], [1.0, -g], s)
    return s, c, c + sd * rng.standard_normal(t)


def test_oasis_matches_nnls_and_recovers_spikes():
    rng = np.random.default_rng(0)
    g = 0.9
    s, c, y = _ar1_trace(rng, t=200, g=g, sd=0.5)
    c_hat, s_hat = oasis_ar1(y, g)
    # OASIS with lam = s_min = 0 solves min |y - c|^2, c = K s, s >= 0 exactly
    k = scipy.linalg.toeplitz(g ** np.arange(200), np.zeros(200))
    s_ref, _ = nnls(k, y)
    np.testing.assert_allclose(c_hat, k @ s_ref, atol=1e-6)
    assert np.all(s_hat >= 0)
    np.testing.assert_allclose(c_hat[1:] - g * c_hat[:-1], s_hat[1:], atol=1e-8)
    # thresholded OASIS on a longer trace finds the spikes
    s, c, y = _ar1_trace(rng, g=0.92)
    d = deconvolve(y + 20.0, p=1, g=[0.92])
    assert abs(d.baseline - 20.0) < 1.0 and abs(d.sn - 1.0) < 0.25
    assert np.corrcoef(d.c, c)[0, 1] > 0.97
    hits = sum(np.any(np.abs(np.flatnonzero(d.s > 0) - f) <= 1) for f in np.flatnonzero(s))
    assert hits >= 0.9 * np.count_nonzero(s)
    assert np.count_nonzero(d.s) <= 1.3 * np.count_nonzero(s)


def _oasis_ar1_plain(y, g, lam=0.0, s_min=0.0):
    """OASIS for AR(1) as Friedrich et al. (2017) write it: every pool on the stack, a
    power per comparison. The reference the optimised loop must equal bit for bit."""
    yv = np.asarray(y, dtype=np.float64)
    n = len(yv)
    if lam:
        yv = yv - lam * (1.0 - g)
        yv[-1] -= lam * g
    v, w, t0, ln = [0.0] * n, [0.0] * n, [0] * n, [0] * n
    i = -1
    for t in range(n):
        i += 1
        v[i], w[i], t0[i], ln[i] = float(yv[t]), 1.0, t, 1
        while i > 0:
            prev = v[i - 1]
            if i == 1 and prev < 0.0:
                prev = 0.0
            gl = g ** ln[i - 1]
            if prev * gl + s_min <= v[i]:
                break
            wn = w[i - 1] + (w[i] * gl * gl if g * g else 0.0)
            v[i - 1] = (w[i - 1] * v[i - 1] + gl * w[i] * v[i]) / wn if wn > 0 else v[i - 1]
            w[i - 1] = wn
            ln[i - 1] += ln[i]
            i -= 1
    m = i + 1
    vals = np.asarray(v[:m])
    vals[0] = max(vals[0], 0.0)
    starts, lens = np.asarray(t0[:m]), np.asarray(ln[:m])
    c = np.maximum(np.repeat(vals, lens) * np.power(g, np.arange(n) - np.repeat(starts, lens)), 0)
    s = np.zeros(n)
    s[starts[1:]] = np.maximum(vals[1:] - vals[:-1] * np.power(g, lens[:-1]), 0.0)
    return c, s


@pytest.mark.parametrize("g", [0.0, 0.5, 0.93, 1.0])
@pytest.mark.parametrize(("lam", "s_min"), [(0.0, 0.0), (0.0, 0.8), (0.4, 0.0)])
def test_oasis_equals_the_plain_algorithm_bit_for_bit(g, lam, s_min):
    """The optimised loop (newest pool in locals, powers looked up and shared between
    calls) gives the plain algorithm's traces exactly, on traces of several lengths and
    offsets (negative first pools included)."""
    rng = np.random.default_rng(int(g * 100) + int(s_min * 10))
    for n in (1, 2, 57, 400, 400):  # the same length twice: the shared powers reused
        spikes = (rng.random(n) < 0.05) * rng.exponential(4.0, n)
        y = lfilter([1.0], [1.0, -min(g, 0.99)], spikes) + rng.normal(-0.5, 0.7, n)
        got_c, got_s = oasis_ar1(y, g, lam, s_min)
        want_c, want_s = _oasis_ar1_plain(y, g, lam, s_min)
        np.testing.assert_array_equal(got_c, want_c)
        np.testing.assert_array_equal(got_s, want_s)


def test_ar_estimation_and_ar2_deconvolution():
    rng = np.random.default_rng(1)
    s, c, y = _ar1_trace(rng, t=4000, g=0.9)
    assert abs(estimate_ar(y, 1)[0] - 0.9) < 0.03
    g1 = ar_from_decay(0.4, 30.0, 1)[0]
    assert g1 == pytest.approx(np.exp(-1 / 12.0))
    g2 = ar_from_decay(0.4, 30.0, 2, rise_time=0.05)
    c2 = lfilter([1.0], np.r_[1.0, -g2], s)
    y2 = c2 + 0.8 * rng.standard_normal(len(s))
    d = deconvolve(y2, p=2, g=g2)
    assert np.corrcoef(d.c, c2)[0, 1] > 0.97
    assert np.all(d.s >= 0)


def test_noise_estimate_ignores_slow_signal():
    rng = np.random.default_rng(2)
    t = np.arange(3000)
    y = 10 * np.sin(2 * np.pi * t / 300) + 2.0 * rng.standard_normal(len(t))
    assert noise_psd(y) == pytest.approx(2.0, rel=0.1)


@pytest.mark.parametrize("n", [4, 5, 100, 255, 256, 257, 1000, 2667])
def test_welch_density_is_scipys_welch(n):
    """Every segment count and parity (one short segment, Nyquist bin or not), 1-D and 2-D."""
    rng = np.random.default_rng(n)
    y = rng.standard_normal((3, n)).cumsum(axis=-1) + rng.standard_normal((3, n))
    nperseg = min(n, 256)
    f_ref, p_ref = welch(y, nperseg=nperseg, axis=-1)
    f, p = welch_density(y, nperseg)
    np.testing.assert_array_equal(f, f_ref)
    np.testing.assert_allclose(p, p_ref, rtol=1e-12, atol=1e-14 * p_ref.max())
    f1, p1 = welch_density(y[0], nperseg)
    np.testing.assert_allclose(p1, p_ref[0], rtol=1e-12, atol=1e-14 * p_ref.max())


def test_snr_orders_traces():
    rng = np.random.default_rng(3)
    noise = rng.standard_normal(2000)
    s, c, y = _ar1_trace(rng, t=2000, sd=1.0)
    snr = event_exceptionality_snr(np.stack([noise, y]), 12)
    assert snr[1] > 2.5 > snr[0]


# ---------------------------------------------------------------- images and geometry


def test_pixel_noise_ignores_the_pixels_own_transients():
    """A neuron's rises are steps: they fill the periodogram's high band, not the median
    second difference (why PNR uses the latter)."""
    rng = np.random.default_rng(6)
    t = 600
    spikes = (rng.random((t, 8, 8)) < 0.02) * 30.0
    calcium = lfilter([1.0], [1.0, -0.92], spikes, axis=0)
    noisy = (calcium + 2.0 * rng.standard_normal((t, 8, 8))).astype(np.float32)
    assert pixel_noise_robust(noisy).mean() == pytest.approx(2.0, rel=0.1)
    freqs = np.fft.rfftfreq(t)
    spec = np.abs(np.fft.rfft(noisy - noisy.mean(axis=0), axis=0)) ** 2 / t
    periodogram = np.sqrt(spec[(freqs > 0.25) & (freqs <= 0.5)].mean(axis=0))
    assert periodogram.mean() > 1.5 * 2.0


@pytest.mark.parametrize("shape", [(498, 300), (499, 17), (1, 5), (2, 3), (0, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1])
def test_median_by_sorting_is_numpys_median_bit_for_bit(shape, dtype, axis):
    """Even and odd lengths (the middle pair averaged or not), ties, NaN and infinities."""
    rng = np.random.default_rng(7)
    x = np.round(rng.standard_normal(shape), 1).astype(dtype)  # rounding makes ties
    if x.size >= 6:
        x[0, 0], x[-1, 1], x[0, 2] = np.nan, np.inf, -np.inf
    x = x if axis == 0 else np.ascontiguousarray(x.T)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's empty-slice warning
        expected = np.median(x, axis=axis)
        got = median_of_columns(x) if axis == 0 else median_of_rows(x)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)  # NaN equals NaN here


def test_streamed_summary_images_match_in_memory_and_peak_at_neurons():
    syn = make_movie(height=64, width=64, n_frames=300, n_neurons=8, seed=4)
    mov = syn.movie.astype(np.float32)
    cn, pnr, _, _ = correlation_pnr(mov, (3, 3))

    class Store:
        shape = mov.shape

        @staticmethod
        def read(a, b):
            return mov[a:b]

    cn_s, pnr_s = streamed_correlation_pnr(Store, (3, 3), chunk=64)
    assert np.corrcoef(cn.ravel(), cn_s.ravel())[0, 1] > 0.95
    assert np.corrcoef(pnr.ravel(), pnr_s.ravel())[0, 1] > 0.95
    yx = np.round(syn.centers).astype(int)
    assert np.median(cn_s[yx[:, 0], yx[:, 1]]) > 0.8
    assert np.median(pnr_s[yx[:, 0], yx[:, 1]]) > 3 * np.median(pnr_s)


def test_tiled_cache_and_decimation(tmp_path):
    rng = np.random.default_rng(5)
    mov = rng.random((37, 45, 29)).astype(np.float32)
    cache = TiledCache(mov.shape, 16, tmp_path)
    try:
        cache.write(0, mov[:20])
        cache.write(20, mov[20:])
        np.testing.assert_array_equal(cache.read(5, 30), mov[5:30])
        np.testing.assert_array_equal(cache.read_patch(3, 40, 7, 29), mov[:, 3:40, 7:29])
        boxes = [(y, y + 17, x, x + 9) for y in range(0, 28, 7) for x in range(0, 20, 5)]
        with ThreadPoolExecutor(4) as pool:  # patches are read on threads
            for box, got in zip(
                boxes, pool.map(lambda b: cache.read_patch(*b), boxes), strict=True
            ):
                np.testing.assert_array_equal(got, mov[:, box[0] : box[1], box[2] : box[3]])
    finally:
        cache.close()
    assert not any(tmp_path.iterdir())
    d = decimation_matrix((45, 29), 4)
    np.testing.assert_allclose(
        (d @ mov[0].ravel()).reshape(12, 8), block_reduce_mean(mov[:1], 4)[0], rtol=1e-5
    )
    k = ring_kernels(5, 2)
    assert k.shape == (5, 13, 13) and abs(k[0].sum() - 1) < 1e-6
    assert abs(k[1].sum()) < 1e-5  # harmonics are zero-mean around the ring


@pytest.mark.parametrize(
    ("dims", "rf", "stride"), [((608, 608), 40, 20), ((480, 752), 40, 20), ((250, 250), 24, 12)]
)
def test_init_cache_tiles_fit_the_patches(dims, rf, stride):
    """Patches read from the cache touch little more than their own pixels, at any frame size
    (128 px tiles under 80 px patches read each pixel ~6.5 times)."""
    wins = patch_windows(dims, rf, stride)

    def overread(side: int) -> float:
        read = sum(
            (-(-y1 // side) - y0 // side) * (-(-x1 // side) - x0 // side) * side * side
            for y0, y1, x0, x1, *_ in wins
        )
        return read / sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1, *_ in wins)

    side = patch_cache_tile((500, *dims), wins, 100, 128)
    assert 8 <= side <= 128
    assert overread(side) < 1.5 < overread(128), (side, overread(side), overread(128))
    # one window covering the frame: whole-frame tiles are as good as any
    assert patch_cache_tile((500, 112, 112), patch_windows((112, 112), None, None), 100, 128) > 64


def test_patch_cores_tile_the_field():
    wins = patch_windows((100, 77), 20, 10)
    cover = np.zeros((100, 77), int)
    for y0, y1, x0, x1, cy0, cy1, cx0, cx1 in wins:
        assert y0 <= cy0 < cy1 <= y1 and x0 <= cx0 < cx1 <= x1
        assert y1 - y0 <= 40 and x1 - x0 <= 40
        cover[cy0:cy1, cx0:cx1] += 1
    assert np.all(cover == 1)


def test_evaluate_against_truth_matching():
    class R:
        centers = np.array([[10.0, 10.0], [30.0, 31.0], [50.0, 50.0]])
        C = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]], float)
        S = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]], float)
        fps = 30.0

    truth_c = np.array([[0, 1, 0, 0], [0, 0, 1, 0.1]], float)
    m = evaluate_against_truth(
        R, np.array([[11.0, 10.0], [30.0, 28.0]]), truth_c, [np.array([1]), np.array([2])]
    )
    assert m["recall"] == 1.0 and m["precision"] == pytest.approx(2 / 3)
    assert m["event_f1"] == 1.0 and m["median_trace_corr"] > 0.9
    ti, fi = match_centers(np.array([[0.0, 0.0]]), np.array([[0.0, 5.0]]), 4.0)
    assert len(ti) == 0


def test_streamed_ring_fit_equals_least_squares_despite_a_large_offset():
    """The chunked, shifted-moment fit gives each pixel's ridge least-squares ring weights,
    computed here in float64 in memory, on frames at ~1000 whose fluctuations are ~1 (a
    one-photon baseline: sums of raw products in float32 would cancel catastrophically)."""
    from ace_assets.miniscope.extraction.background import (
        RingFeatures,
        RingGeometry,
        fit_ring_model,
    )

    rng = np.random.default_rng(3)
    t, h, w = 90, 24, 28
    slow = rng.normal(size=(t, 1, 1)) * np.exp(
        -((np.arange(h)[:, None] - 12.0) ** 2 + (np.arange(w)[None, :] - 14.0) ** 2) / 80.0
    )
    frames = (1000.0 + slow + 0.3 * rng.normal(size=(t, h, w))).astype(np.float32)
    geom = RingGeometry((h, w), 1, 4, 1)
    a = sp.csc_matrix((h * w, 0), dtype=np.float32)
    chunks = [(i, frames[i : i + 16]) for i in range(0, t, 16)]
    ring = fit_ring_model(chunks, geom, a, np.zeros((0, t), np.float32), np.zeros((h, w)))

    feats = RingFeatures((h, w), 4, 1)(frames).astype(np.float64).reshape(t, 3, -1)
    x = frames.reshape(t, -1).astype(np.float64)
    feats -= feats.mean(axis=0)
    x -= x.mean(axis=0)
    for pix in range(h * w):
        f = feats[:, :, pix]
        cov = f.T @ f / t
        cov[np.diag_indices(3)] += 1e-4 * np.trace(cov) / 3
        want = np.linalg.solve(cov, f.T @ x[:, pix] / t)
        got = ring.weights.reshape(3, -1)[:, pix].astype(np.float64)
        # what the weights are for: the background they explain. A corner pixel's ring is
        # mostly outside the frame, its features nearly collinear and its weights
        # ill-determined, but the fit still leaves no more residual than least squares
        left = np.mean((x[:, pix] - f @ got) ** 2)
        best = np.mean((x[:, pix] - f @ want) ** 2)
        assert left <= best * 1.01 + 1e-9, (pix, left, best)
        if 8 <= pix // w < h - 8 and 8 <= pix % w < w - 8:
            np.testing.assert_allclose(got, want, rtol=0.01, atol=1e-3)


def test_ring_fit_on_averaged_frames():
    """``tsub`` averages consecutive frames before the fit: a movie whose frames come in
    identical pairs gives the weights of the movie itself, with or without averaging; a
    movie whose background is slow gives a background as good as the full fit's."""
    from ace_assets.miniscope.extraction.background import RingGeometry, fit_ring_model

    rng = np.random.default_rng(5)
    t, h, w = 60, 24, 28
    yy, xx = np.mgrid[0:h, 0:w]
    blob = np.exp(-((yy - 12.0) ** 2 + (xx - 14.0) ** 2) / 80.0)
    slow = np.convolve(rng.normal(size=t + 9), np.ones(10) / 10, "valid")[:, None, None] * blob
    frames = (500 + 5 * slow + 0.3 * rng.normal(size=(t, h, w))).astype(np.float32)
    geom = RingGeometry((h, w), 1, 4, 1)
    a = sp.csc_matrix((h * w, 0), dtype=np.float32)

    def fit(movie, tsub):
        n = len(movie)
        chunks = [(i, movie[i : i + 16]) for i in range(0, n, 16)]
        return fit_ring_model(
            chunks, geom, a, np.zeros((0, n), np.float32), movie.mean(0), tsub=tsub
        )

    pairs = np.repeat(frames, 2, axis=0)
    w_orig = fit(frames, 1).weights
    np.testing.assert_allclose(fit(pairs, 2).weights, w_orig, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(fit(pairs, 1).weights, w_orig, rtol=1e-3, atol=1e-4)

    def explained(ring):  # share of the slow background the fitted ring explains
        x = frames - frames.mean(axis=0)
        b = ring.fluctuation(x)
        truth = 5 * (slow - slow.mean(axis=0))
        inner = (slice(6, -6), slice(6, -6))
        resid = ((b - truth)[:, inner[0], inner[1]] ** 2).sum()
        return 1 - resid / (truth[:, inner[0], inner[1]] ** 2).sum()

    assert explained(fit(frames, 2)) > explained(fit(frames, 1)) - 0.02
    assert explained(fit(frames, 2)) > 0.9


@pytest.mark.parametrize(
    ("shape", "dtype", "k", "axis"),
    [
        ((101, 13, 9), np.float32, 2, 0),
        ((101, 13, 9), np.float32, 3, 0),
        ((12, 1001), np.float32, 4, 1),
        ((12, 1001), np.float64, 2, 1),
        ((10, 6, 5), np.uint16, 4, 0),
        ((9, 8, 8), np.uint8, 2, 0),  # sums beyond 255: added in float64, as numpy's mean does
        ((5, 4), np.float32, 1, 0),
    ],
)
def test_bin_mean_is_numpys_mean_bit_for_bit(shape, dtype, k, axis):
    """The binned frames and traces are what numpy's mean of each group gives, exactly
    (summed in the same order, in the same precision), the short last group included."""
    from ace_assets.miniscope.extraction.movie import bin_mean

    rng = np.random.default_rng(11)
    x = (rng.standard_normal(shape) * 300 + 1000).astype(dtype)
    if dtype == np.uint8:
        x = rng.integers(150, 256, shape).astype(np.uint8)
    y = np.moveaxis(x, axis, 0)
    n = y.shape[0]
    groups = [y[a : a + k].mean(axis=0) for a in range(0, n, k)]
    want = np.moveaxis(np.stack(groups).astype(np.float32), 0, axis)
    got = bin_mean(x, k, axis=axis)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_scan_on_threads_equals_the_in_memory_statistics(monkeypatch):
    """The scan's mean image, frame means, range and non-finite frames equal numpy's on the
    whole movie, and do not depend on the thread count."""
    from ace_assets.miniscope.extraction.movie import as_movie, scan_movie

    rng = np.random.default_rng(12)
    mov = (rng.random((53, 17, 11)) * 50 + 10).astype(np.float32)
    mov[7, 3, 4] = np.nan
    mov[40] = np.inf
    runs = []
    for threads in ("1", "3"):
        monkeypatch.setenv("ACE_THREADS", threads)
        runs.append(scan_movie(as_movie(mov), 10))
    one, three = runs
    for field in ("mean", "frame_mean", "nan_frames"):
        np.testing.assert_array_equal(getattr(one, field), getattr(three, field))
    assert (one.vmin, one.vmax) == (three.vmin, three.vmax)
    finite = np.where(np.isfinite(mov), mov, np.nan)
    np.testing.assert_allclose(one.mean, np.nanmean(finite.astype(np.float64), axis=0), rtol=1e-12)
    seen = np.arange(len(mov)) != 40  # frame 40 has no finite pixel
    np.testing.assert_allclose(
        one.frame_mean[seen],
        np.nanmean(finite[seen].astype(np.float64), axis=(1, 2)),
        rtol=1e-12,
    )
    assert one.vmin == np.nanmin(finite) and one.vmax == np.nanmax(finite)
    np.testing.assert_array_equal(one.nan_frames, [7, 40])


def test_init_cache_built_with_the_scan_gives_the_scans_statistics(tmp_path):
    """Statistics summed while the initialisation movie is binned equal a scan of their own
    (the movie is then read once for both), and the caches equal a build without them."""
    from ace_assets.miniscope.extraction.movie import (
        FloatFrames,
        StatsSum,
        as_movie,
        build_init_cache,
        scan_movie,
    )

    rng = np.random.default_rng(13)
    mov = (rng.random((61, 23, 19)) * 50 + 10).astype(np.float32)
    mov[9, 2, 5] = np.nan
    mov[44] = -np.inf
    kernel = center_psf_kernel((2, 2))
    kw = dict(tsub=2, ssub=2, chunk=16, tile=8, workdir=tmp_path, kernel=kernel)
    summed = StatsSum(len(mov), mov.shape[1:])
    with_stats = build_init_cache(FloatFrames(as_movie(mov)), stats=summed, **kw)
    plain = build_init_cache(FloatFrames(as_movie(mov)), **kw)
    got, want = summed.result(), scan_movie(as_movie(mov), 16)
    for field in ("mean", "frame_mean", "nan_frames"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
    assert (got.vmin, got.vmax) == (want.vmin, want.vmax)
    for a, b in zip(with_stats, plain, strict=True):
        np.testing.assert_array_equal(a.read(0, a.n_frames), b.read(0, b.n_frames))
        a.close()
        b.close()
    assert not any(tmp_path.iterdir())


def test_ring_moments_do_not_depend_on_the_pixel_blocks():
    """The ring fit's per-pixel sums are taken over frames in the same order whatever the
    pixel blocks (and so the threads) they are split into."""
    from ace_assets.miniscope.extraction.background import _add_moments

    rng = np.random.default_rng(13)
    m, j, p = 37, 5, 1001
    feats = rng.standard_normal((m, j, p)).astype(np.float32)
    xd = rng.standard_normal((m, p)).astype(np.float32)

    def sums(block):
        out = (np.zeros((j, j, p)), np.zeros((j, p)), np.zeros((j, p)), np.zeros(p))
        _add_moments(feats, xd, *out, block=block)
        return out

    for got, want in zip(sums(7), sums(10**6), strict=True):
        np.testing.assert_array_equal(got, want)
    sff, sfx, _, _ = sums(64)
    np.testing.assert_allclose(
        sff[1, 3], (feats[:, 1].astype(np.float64) * feats[:, 3]).sum(0), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        sfx[2], (feats[:, 2].astype(np.float64) * xd).sum(0), rtol=1e-4, atol=1e-4
    )


def test_block_mean_and_ring_features_by_parts_on_threads_equal_the_whole():
    """The passes pool frames by groups on threads and the ring fit takes features of
    parts of a chunk: each frame is computed on its own, so any split equals the whole."""
    from ace_assets.miniscope.extraction.background import RingFeatures

    rng = np.random.default_rng(21)
    frames = rng.normal(100.0, 5.0, (23, 37, 30)).astype(np.float32)
    whole = block_reduce_mean(frames, 2)
    with ThreadPoolExecutor(3) as pool:
        for group in (1, 4, 100):
            np.testing.assert_array_equal(block_reduce_mean(frames, 2, pool.map, group), whole)
    feats = RingFeatures(whole.shape[1:], 3, 2)
    want = feats(whole)
    got = np.empty_like(want)
    for a, b in ((0, 5), (5, 6), (6, 23)):
        feats(whole[a:b], workers=1, out=got[a:b])
    np.testing.assert_array_equal(got, want)


def test_r_values_read_each_pixel_from_the_tile_holding_it():
    """Component r-values take each footprint pixel's active-frame mean from the one tile
    that holds it: the same values as looking every tile pixel up by its index."""
    from ace_assets.miniscope.extraction.updates import PassResult, component_r_values, make_tiles

    rng = np.random.default_rng(8)
    h, w, n, t = 40, 52, 9, 30
    dense = np.zeros((h * w, n), np.float32)
    for k in range(n):
        cy, cx = rng.integers(3, h - 3), rng.integers(3, w - 3)
        yy, xx = np.mgrid[:h, :w]
        dense[:, k] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0).ravel()
    dense[dense < 0.05] = 0
    a = sp.csc_matrix(dense)
    c = rng.random((n, t)).astype(np.float32)
    active = (rng.random((n, t)) < 0.3).astype(np.float32)
    tiles = make_tiles(sp.csc_matrix(dense > 0), (h, w), 16)  # footprints span tiles
    r_act = [rng.normal(size=(len(tl.comps), (tl.y1 - tl.y0) * (tl.x1 - tl.x0))) for tl in tiles]
    got = component_r_values(a, c, active, PassResult(c, [], r_act, np.zeros(t)), tiles, (h, w))

    m = c.astype(np.float64) @ active.T.astype(np.float64)
    want = np.full(n, np.nan)
    for k in range(n):
        lookup = {}
        for tl, ract in zip(tiles, r_act, strict=True):
            if k in tl.comps:
                row = ract[list(tl.comps).index(k)]
                lookup.update(zip(tl.pixels(w).tolist(), row.tolist(), strict=True))
        col = a[:, k]
        rows, vals = col.indices, col.data.astype(np.float64)
        keep = vals >= 0.1 * vals.max()
        rows, vals = rows[keep], vals[keep]
        data = np.array([lookup.get(int(r), np.nan) for r in rows])
        resid = data - (sp.csr_matrix(a)[rows] @ m[:, k] - vals * m[k, k])
        ok = np.isfinite(resid)
        want[k] = np.corrcoef(vals[ok], resid[ok])[0, 1]
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got, want)
