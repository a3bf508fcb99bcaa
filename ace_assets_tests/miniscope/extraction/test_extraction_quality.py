"""Only cell-like components are kept: SNR floor, footprint shape, periodic traces."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ace_assets.demo.ephys_synth import EphysSynthConfig, SyntheticEphys
from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope
from ace_assets.demo.scoring import stripe_shaped_sources
from ace_assets.miniscope.extraction import ExtractionParams, extract
from ace_assets.miniscope.extraction.quality import (
    PROMINENCE,
    Rules,
    assess,
    folded,
    footprint_axes,
    min_search_frequency,
    periodicity,
)
from ace_assets_tests.helpers.synth_cnmfe import family_movie, sharp_band, spec_defaults

FPS = 30.0
RULES = Rules(
    min_snr=2.5,
    gsig=(7.0, 7.0),
    max_elongation=2.5,
    max_size=2.0,
    min_size=0.25,
    max_periodic_power=0.5,
    decay_time=0.4,
)


def _periodic(traces, stripes=()):
    return periodicity(
        traces, FPS, stripe_frequencies_hz=stripes, min_freq=min_search_frequency(0.4)
    )


def _is_periodic(p, k):
    return p.share[k] > 0.5 and p.prominence[k] >= PROMINENCE


def _neuron_traces(n_frames, *, rate, seed, lock_phase=None, min_spikes=3, noise=1.0):
    cfg = MiniscopeSynthConfig(
        height=96,
        width=96,
        n_frames=n_frames,
        n_neurons=20,
        firing_rate=rate,
        min_spikes=min_spikes,
        motion_amplitude=0.0,
        band_amplitude=0.0,
        lock_phase=lock_phase,
        locked_fraction=1.0 if lock_phase is not None else 0.0,
        seed=seed,
    )
    syn = SyntheticMiniscope(cfg)
    rng = np.random.default_rng(seed)
    return syn.C + noise * rng.standard_normal(syn.C.shape)


def _column(img: np.ndarray) -> sp.csc_matrix:
    return sp.csc_matrix(img.reshape(-1, 1).astype(np.float32))


def _gaussian(dims, center, sd_y, sd_x):
    yy, xx = np.mgrid[0 : dims[0], 0 : dims[1]].astype(float)
    img = np.exp(-0.5 * (((yy - center[0]) / sd_y) ** 2 + ((xx - center[1]) / sd_x) ** 2))
    img[img < 0.01] = 0
    return img


# ---------------------------------------------------------------- measurements


def test_footprint_axes_of_a_cell_and_a_stripe_segment():
    dims = (80, 90)
    cell = _gaussian(dims, (40, 45), 5.0, 5.0)
    segment = np.zeros(dims)
    segment[38:42, 25:65] = 1.0  # 4 x 40 px, like the stripe "cells" of a real run
    major, minor = footprint_axes(sp.hstack([_column(cell), _column(segment)]).tocsc(), dims)
    assert major[0] == pytest.approx(5.0, rel=0.05) and minor[0] == pytest.approx(5.0, rel=0.05)
    assert major[1] == pytest.approx(40 / np.sqrt(12), rel=0.02)
    assert minor[1] == pytest.approx(4 / np.sqrt(12), rel=0.15)


def test_stripe_traces_are_periodic_and_aliases_fold():
    rng = np.random.default_rng(0)
    t = np.arange(1200) / FPS
    sine = 3 * np.sin(2 * np.pi * 2.4 * t) + rng.standard_normal(len(t))
    # a narrow band passing a row: a sharp pulse every 1/1.1 s, power on many harmonics
    pulses = 6 * np.exp(8 * (np.cos(2 * np.pi * 1.1 * t) - 1)) + rng.standard_normal(len(t))
    p = _periodic(np.stack([sine, pulses]), stripes=[2.4 + FPS])  # reported above Nyquist
    assert folded(2.4 + FPS, FPS) == pytest.approx(2.4)
    assert p.stripe_share[0] > 0.8 and p.stripe_prominence[0] >= PROMINENCE
    assert p.stripe_share[1] < 0.2  # not the reported frequency
    assert _is_periodic(p, 0) and p.hz[0] == pytest.approx(2.4, abs=0.05)
    assert _is_periodic(p, 1) and p.hz[1] == pytest.approx(1.1, abs=0.05)
    # slow stripes are tested when the movie holds enough cycles of them, else reported
    slow = 4 * np.exp(8 * (np.cos(2 * np.pi * 0.3 * t) - 1)) + rng.standard_normal(len(t))
    p = _periodic(slow[None], stripes=[0.3])
    assert p.stripe_share[0] > 0.5 and p.untested_hz == []
    assert not _is_periodic(p, 0)  # below the data-driven search
    p = _periodic(slow[None, :300], stripes=[0.3])
    assert p.untested_hz == [pytest.approx(0.3)] and p.stripe_share[0] == 0


@pytest.mark.parametrize(
    ("rate", "n_frames", "min_spikes"),
    [(0.5, 600, 3), (2.0, 3000, 3), (0.05, 600, 2), (0.05, 3000, 2)],
)
def test_neurons_are_not_periodic(rate, n_frames, min_spikes):
    """Poisson firing, fast or sparse (two or three transients make comb-like spectra)."""
    traces = _neuron_traces(n_frames, rate=rate, seed=11, min_spikes=min_spikes)
    p = _periodic(traces, stripes=[2.4, 7.0, 12.0])
    assert not any(_is_periodic(p, k) for k in range(len(traces))), p.share.max()
    assert p.stripe_share.max() < 0.2


def test_neurons_phase_locked_to_an_oscillation_are_not_periodic():
    """Demo line 1: neurons fire at a phase of a ~7 Hz oscillation (frequency wandering)."""
    n_frames = 3000
    ephys = SyntheticEphys(EphysSynthConfig(fs=2000.0, duration_s=n_frames / FPS + 5, seed=7))
    phase = ephys.phase_at(2.5 + np.arange(n_frames) / FPS)
    for rate in (0.5, 3.0):
        traces = _neuron_traces(n_frames, rate=rate, seed=12, lock_phase=phase)
        p = _periodic(traces, stripes=[7.0])  # even told 7 Hz is a stripe frequency
        assert not any(_is_periodic(p, k) for k in range(len(traces)))
        assert p.stripe_share.max() < 0.1


# ---------------------------------------------------------------- the verdict


def _slow_wave_neuron(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """A neuron firing on ~80% of the cycles of a ~1 Hz rhythm whose frequency wanders
    (slow waves under anaesthesia): its trace is periodic, yet it is a cell."""
    freq = 1.0 + 0.05 * np.sin(2 * np.pi * np.arange(n_frames) / (40 * FPS))
    phase = 2 * np.pi * np.cumsum(freq) / FPS
    onsets = np.flatnonzero(np.diff(np.floor(phase / (2 * np.pi))) > 0)
    spikes = np.zeros(n_frames)
    fire = onsets[rng.random(len(onsets)) < 0.8]
    spikes[fire] = rng.uniform(4, 6, len(fire))
    g = np.exp(-1 / (0.4 * FPS))
    calcium = np.zeros(n_frames)
    for i in range(n_frames):
        calcium[i] = (g * calcium[i - 1] if i else 0.0) + spikes[i]
    return calcium + 0.3 * rng.standard_normal(n_frames)


def test_every_rule_gives_its_reason_and_snr_is_a_hard_floor():
    dims = (130, 130)
    rng = np.random.default_rng(3)
    t = np.arange(900) / FPS
    cell_trace = _neuron_traces(900, rate=0.5, seed=4)[0]
    slow_waves = _slow_wave_neuron(900, rng)
    feet = [
        _gaussian(dims, (30, 30), 6.0, 6.0),  # a cell
        _gaussian(dims, (30, 90), 6.0, 6.0),  # a cell with a low SNR but a high r-value
        _gaussian(dims, (60, 60), 2.5, 12.0),  # a stripe segment
        _gaussian(dims, (60, 60), 16.0, 15.0),  # a blob far larger than gSig
        _gaussian(dims, (90, 30), 6.0, 6.0),  # pulses at the reported stripe frequency
        _gaussian(dims, (90, 90), 3.5, 7.0),  # a short segment pulsing at another frequency
        _gaussian(dims, (110, 60), 1.0, 1.2),  # a speck
        _gaussian(dims, (110, 100), 6.0, 6.5),  # a cell firing with slow waves
    ]
    pulse = np.exp(8 * (np.cos(2 * np.pi * t) - 1))
    traces = [
        cell_trace,
        cell_trace,
        cell_trace,
        cell_trace,
        5 * np.exp(8 * (np.cos(2 * np.pi * 2.0 * t) - 1)) + rng.standard_normal(len(t)),
        5 * pulse + rng.standard_normal(len(t)),
        cell_trace,
        slow_waves,
    ]
    a = sp.hstack([_column(f) for f in feet]).tocsc()
    snr = np.array([6.0, 2.4, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0])
    r = np.array([0.9, 0.99, 0.9, 0.9, 0.9, np.nan, 0.9, 0.9])
    q = assess(a, dims, np.stack(traces), snr, r, FPS, RULES, stripe_frequencies_hz=[2.0])
    assert q.reasons == [
        [],
        ["low_snr"],  # CaImAn's OR rule would keep it for its r-value
        ["elongated"],
        ["too_large"],
        ["stripe_frequency"],
        ["periodic"],
        ["too_small"],
        [],  # periodic, but round: kept, and its periodicity reported
    ]
    per = q.periodicity
    assert per.share[7] > 0.5 and per.prominence[7] >= PROMINENCE
    assert per.hz[7] == pytest.approx(1.0, abs=0.1)
    assert per.share[4] > 0.5  # the reported stripe is periodic in the data too
    assert q.keep.tolist() == [True] + [False] * 6 + [True]
    counts = q.counts()
    assert counts["periodic"] == 1 and counts["low_snr"] == 1 and counts["r_value_floor"] == 0
    # the elongation limit follows gSig's own aspect ratio
    oval = Rules(**{**RULES.__dict__, "gsig": (3.0, 9.0)})
    q2 = assess(a[:, [2]], dims, np.stack(traces[2:3]), snr[2:3], r[2:3], FPS, oval)
    assert q2.reasons == [[]]


def test_new_settings_are_validated_and_in_the_catalog_defaults():
    p = ExtractionParams.from_dict(spec_defaults())
    assert p.max_footprint_elongation == 2.5 and p.max_periodic_power == 0.5
    assert (p.min_footprint_size, p.max_footprint_size) == (0.25, 2.0)
    from ace_assets.errors import AceInputError

    for column, value in (
        ("max_footprint_elongation", 0.5),
        ("max_footprint_size", 0),
        ("min_footprint_size", 3.0),
        ("max_periodic_power", 1.5),
    ):
        with pytest.raises(AceInputError) as err:
            ExtractionParams.from_dict({column: value})
        assert err.value.column == column
    with pytest.raises(AceInputError, match="stripe_frequencies_hz"):
        extract(np.zeros((20, 40, 40), np.uint8), {"fps": 30.0}, stripe_frequencies_hz=[-1])


# ---------------------------------------------------------------- on a movie


@pytest.fixture(scope="module")
def striped():
    """bands19_240x300 (no motion, its own bands removed; the central 200 columns) with two
    residual stripes that seeding takes for cells: a slow narrow band down the left 40
    columns, whose frequency the denoiser reports, and a faster one down the right 40,
    unreported (30 s, so the search sees 27 of its cycles)."""
    n, h, w = 900, 240, 200
    slow, f_slow = sharp_band(
        (n, h, w), FPS, period_px=80, speed=1.0, amplitude=10, columns=slice(0, 40)
    )
    fast, f_fast = sharp_band(
        (n, h, w), FPS, period_px=100, speed=3.0, amplitude=15, columns=slice(w - 40, w)
    )
    assert f_slow < min_search_frequency(0.4) < f_fast
    fm = family_movie("bands19_240x300", n, crop=(h, w), extra=slow + fast)
    res = extract(fm.movie, spec_defaults(), fps=fm.fps, stripe_frequencies_hz=[f_slow])
    return fm, res


def test_residual_stripes_are_rejected_and_neurons_kept(striped):
    fm, res = striped
    scores = fm.scores(res)
    assert scores["recall"] >= 0.9 and scores["precision"] >= 0.9, scores
    unmatched = scores["unmatched"]
    assert stripe_shaped_sources(res.footprints(), unmatched, fm.neuron_radius) == []
    assert np.all(res.snr >= spec_defaults()["min_SNR"])
    rejected = res.info["rejected"]
    left = [r for r in rejected if r["center"][1] < 40]
    right = [r for r in rejected if r["center"][1] >= 160]
    # the slow stripe: segments far longer than wide, pulsing at the reported frequency
    slow = [r for r in left if {"elongated", "stripe_frequency"} <= set(r["reasons"])]
    assert len(slow) >= 5, left
    # the fast one: periodic in the traces themselves, on footprints stretched along the
    # band yet not enough for the elongation rule alone
    fast = [r for r in right if r["reasons"] in (["periodic"], ["low_snr", "periodic"])]
    assert len(fast) >= 3, right
    assert all(r["periodic_hz"] == pytest.approx(0.9, abs=0.05) for r in fast)
    # without these rules most would have passed CaImAn's SNR test
    assert sum(r["snr"] >= 2.5 for r in slow) >= 5
    counts = res.info["rejected_counts"]
    for reason, n in counts.items():
        assert n == sum(reason in r["reasons"] for r in rejected)
    assert res.info["auto_rejected_ids"] == [r["id"] for r in rejected]
    assert not set(res.info["auto_rejected_ids"]) & set(res.ids.tolist())
    assert all(r["reasons"] and len(r["contour"]) >= 3 for r in rejected)
    assert len(res.info["kept_quality"]) == res.n_components


def test_curation_and_figure_keep_the_rejections_readable(striped, tmp_path):
    import matplotlib.pyplot as plt

    from ace_assets.defs.assets.calcium import _source_figures, draw_sources
    from ace_assets.defs.figures import new_figure
    from ace_assets.miniscope.extraction import apply_rejections, load_result, save_result

    _, res = striped
    save_result(res, tmp_path)
    back = load_result(tmp_path)
    assert back.info["rejected"] == res.info["rejected"]
    cur = apply_rejections(back, [int(back.ids[0])])
    assert cur.info["kept_quality"] == res.info["kept_quality"][1:]
    _source_figures(cur, tmp_path)
    assert (tmp_path / "contours.png").stat().st_size > 10_000
    fig, axes = new_figure()
    draw_sources(axes[0, 0], cur)
    dashed = [ln for ln in axes[0, 0].lines if ln.get_linestyle() == "--"]
    solid = [ln for ln in axes[0, 0].lines if ln.get_linestyle() == "-"]
    assert len(dashed) == len(res.info["rejected"]) and len(solid) == cur.n_components
    labels = [t.get_text() for t in axes[0, 0].texts]
    assert any(label.endswith(":long,stripe") for label in labels), labels
    plt.close(fig)
