"""Denoise at default settings on every member of the harder synthetic family (shortened).

The frozen stripe filter rebuilt from the report must let through at most 10% of the
generator's band power and take at most 5% of the neurons' own energy; every band must
be found with the rate at which it passes a row; corrupted frames must be found (and only
they) and repaired towards the clean movie.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ace_assets.catalog.stage_params import group_defaults
from ace_assets.demo.families import HARD_FAMILY, family_member
from ace_assets.demo.miniscope_synth import (
    CORRUPT_BLACK,
    CORRUPT_DUPLICATE,
    CORRUPT_ROWS,
    CORRUPT_WHITE,
    SyntheticMiniscope,
)
from ace_assets.demo.scoring import neural_signal_lost, stripe_power_kept
from ace_assets.miniscope.chunks import ArraySink
from ace_assets.miniscope.denoise import DenoiseParams, StripeFilter, denoise_movie

FRAMES = {"wireless_200": 300}  # more frames: more corruptions of every kind
DEFAULT_FRAMES = 150
KIND_NAMES = {
    CORRUPT_ROWS: "rows",
    CORRUPT_BLACK: "black",
    CORRUPT_WHITE: "white",
    CORRUPT_DUPLICATE: "duplicate",
}


def defaults() -> dict:
    """An empty analysis_parameters.csv row, as the asset passes it."""
    return group_defaults("denoise")


def run(syn: SyntheticMiniscope, params: dict | DenoiseParams) -> tuple[dict, np.ndarray]:
    n, h, w = syn.n_frames, syn.height, syn.width
    sink = ArraySink((n, h, w), np.uint8)
    report = denoise_movie(syn.frames(0, n), n, (h, w), syn.fps, params, sink)
    return report, sink.array


@pytest.fixture(scope="module", params=sorted(HARD_FAMILY))
def member(request: pytest.FixtureRequest) -> tuple[str, SyntheticMiniscope, dict, np.ndarray]:
    name = request.param
    syn = SyntheticMiniscope(family_member(name, n_frames=FRAMES.get(name, DEFAULT_FRAMES)))
    report, out = run(syn, defaults())
    return name, syn, report, out


def test_spec_defaults_are_the_dataclass_defaults() -> None:
    assert DenoiseParams.from_mapping(defaults()) == DenoiseParams()


def test_stripes_removed_and_cells_kept(member) -> None:
    name, syn, report, _ = member
    stripe = StripeFilter.from_report(report, (syn.height, syn.width))
    assert stripe_power_kept(stripe.apply, syn) <= 0.10, name
    assert neural_signal_lost(stripe.apply, syn) <= 0.05, name
    # what the stripes_removed check measures, without the truth, agrees
    assert report.stripe_power_remaining <= 0.10, name
    assert report.stripe_rms_after < 0.2 * report.stripe_rms_before, name


def test_every_band_found_with_its_rate(member) -> None:
    name, syn, report, _ = member
    h, fps, n = syn.height, syn.fps, syn.n_frames
    found = {(b["cycles_per_height"], b["cycles_per_width"]): b for b in report.stripe_bands}
    truth = syn.config.band_components()
    assert len(found) == len(truth), (name, sorted(found))
    for band in truth:
        key = (int(band.cycles), int(band.cycles_x))
        assert key in found, (name, key, sorted(found))
        rate = band.speed * band.cycles / h * fps
        rate = min(rate % fps, fps - rate % fps)
        if rate * n / fps >= 2:
            assert found[key]["frequency_hz"] == pytest.approx(rate, rel=0.1, abs=0.05), name
            assert any(abs(f - rate) < 0.1 * rate + 0.05 for f in report.stripe_frequencies_hz)


def test_corrupted_frames_found_and_only_they(member) -> None:
    name, syn, report, out = member
    found = dict(zip(report.corrupted_frames, report.corrupted_kinds, strict=True))
    truth = {
        int(t): KIND_NAMES[int(k)]
        for t, k in zip(syn.corrupt_frames, syn.corrupt_kind, strict=True)
    }
    assert found == truth, name  # every corrupted frame, its kind, and no ordinary frame
    if not truth:
        return
    assert len(set(truth.values())) == 4  # the member has every kind
    for (t, kind), (r0, r1) in zip(truth.items(), report.corrupted_rows, strict=True):
        if kind == "rows":  # the repaired rows cover the damaged ones
            t0, t1 = syn.corrupt_rows[list(syn.corrupt_frames).index(t)]
            assert r0 <= t0 and r1 >= t1 - 1, (t, (r0, r1), (t0, t1))
    # repaired frames sit as close to the clean movie as their intact neighbours do
    clean = syn.render(0, syn.n_frames, bands=False, flicker=False, noise=False, corrupt=False)
    error = np.abs(out.astype(np.float32) - clean).mean(axis=(1, 2))
    bad = np.array(sorted(truth))
    intact = np.setdiff1d(np.arange(syn.n_frames), bad)
    assert np.median(error[bad]) < 1.5 * np.median(error[intact]) + 1.0
    assert error[bad].max() < 10.0


def test_reference_notch_leaves_low_bands_and_the_check_measures_it() -> None:
    """The reference strip starts at an absolute index (90): a 240-row movie keeps its bands."""
    syn = SyntheticMiniscope(family_member("bands19_240x300", n_frames=120))
    report, _ = run(syn, {**defaults(), "stripe_method": "reference"})
    stripe = StripeFilter.from_report(report, (syn.height, syn.width))
    assert stripe_power_kept(stripe.apply, syn) > 0.9
    assert report.stripe_power_remaining > 0.5  # stripes_removed would fail
    none, _ = run(syn, replace(DenoiseParams(), stripe_method="none"))
    assert none.stripe_power_remaining > 0.5
    assert none.stripe_frequencies_hz == pytest.approx(report.stripe_frequencies_hz)
