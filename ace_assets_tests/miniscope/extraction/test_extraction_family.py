"""Extraction at default settings (an empty analysis_parameters.csv row) on every member of
the harder synthetic family, as earlier stages hand it over: motion, corrupted frames and
bands removed — or bands left at 40%, what an imperfect denoiser leaves.

Members are shortened, and the three largest cropped to their central 256 x 256 pixels
(same neurons, texture and bands; the full frames run in ``bench/bench_family.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

from ace_assets.demo.scoring import stripe_shaped_sources
from ace_assets.miniscope.extraction import extract
from ace_assets_tests.helpers.family import inner_loop_small
from ace_assets_tests.helpers.synth_cnmfe import FamilyMovie, family_movie, spec_defaults

CROP = (256, 256)
#: member -> (frames, crop); the quiet member needs its frames for a few transients each
MEMBERS = {
    "wireless_200": (500, None),
    "bands19_240x300": (400, None),
    "quiet_flat_320": (500, CROP),
    "tilted_400x360": (300, CROP),
    "lowfreq_548x484": (400, CROP),
    "highfreq_608": (300, CROP),
}


def _check(fm: FamilyMovie, res) -> dict:
    scores = fm.scores(res)
    info = {k: v for k, v in scores.items() if k != "unmatched"}
    info["rejected"] = {k: v for k, v in res.info["rejected_counts"].items() if v}
    assert res.warnings == [], res.warnings
    assert scores["recall"] >= 0.9 and scores["precision"] >= 0.9, info
    assert np.all(res.snr >= spec_defaults()["min_SNR"]), res.snr.min()
    stripes = stripe_shaped_sources(res.footprints(), scores["unmatched"], fm.neuron_radius)
    assert stripes == [], info
    return info


@pytest.mark.parametrize("member", inner_loop_small(sorted(MEMBERS)))
def test_default_settings_find_the_neurons_of_every_member(member):
    frames, crop = MEMBERS[member]
    fm = family_movie(member, frames, crop=crop)
    _check(fm, extract(fm.movie, spec_defaults(), fps=fm.fps))


@pytest.mark.parametrize(
    "member", inner_loop_small(["bands19_240x300", "tilted_400x360", "lowfreq_548x484"])
)
def test_residual_bands_give_no_stripe_sources(member):
    """Bands at 40%, their frequencies reported as the denoiser reports them."""
    frames, crop = MEMBERS[member]
    fm = family_movie(member, frames, crop=crop, band_scale=0.4)
    assert fm.stripe_frequencies_hz
    res = extract(
        fm.movie, spec_defaults(), fps=fm.fps, stripe_frequencies_hz=fm.stripe_frequencies_hz
    )
    _check(fm, res)
    assert res.info["stripe_frequencies_hz"] == fm.stripe_frequencies_hz
