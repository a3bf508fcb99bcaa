"""Motion correction at default settings on every member of the harder synthetic family.

Denoising is another stage's job: the movies are rendered without bands, as if denoise
were perfect, but with the wireless member's corruptions (black, white, repeated, garbage
or torn rows) left in, because they may or may not be repaired upstream. Bars (issue 10):
rigid error median < 0.3 px and 95th percentile < 1 px, unusable frames left out.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import pytest

from ace_assets.catalog.parameter_specs import SPECS
from ace_assets.catalog.stage_params import group_defaults
from ace_assets.demo.families import HARD_FAMILY, family_member
from ace_assets.demo.miniscope_synth import (
    CORRUPT_BLACK,
    CORRUPT_ROWS,
    CORRUPT_WHITE,
    SyntheticMiniscope,
)
from ace_assets.demo.scoring import rigid_errors, unusable_frames
from ace_assets.miniscope.chunks import ArraySink
from ace_assets.miniscope.motion import motion_correct
from ace_assets.miniscope.motion_template import build_template
from ace_assets.miniscope.registration import warp_rigid
from ace_assets_tests.helpers.family import inner_loop_small

FRAMES = 200


def defaults() -> dict:
    """What an empty analysis_parameters.csv row gives the motion stage."""
    return group_defaults("motion")


@cache
def member(name: str, band_fraction: float = 0.0) -> tuple[SyntheticMiniscope, np.ndarray]:
    """A shortened member, bands removed (or ``band_fraction`` of them left), corruptions in."""
    movie = SyntheticMiniscope(family_member(name, n_frames=FRAMES))
    frames = movie.render(0, FRAMES, bands=False, quantize=band_fraction == 0)
    if band_fraction:
        frames = frames + np.float32(band_fraction) * movie.bands(0, FRAMES)
        frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    return movie, frames


@cache
def corrected(name: str, band_fraction: float = 0.0) -> dict:
    movie, frames = member(name, band_fraction)
    sink = ArraySink(frames.shape, np.float32)
    return motion_correct(frames, len(frames), frames.shape[1:], defaults(), sink)


@pytest.mark.parametrize("name", inner_loop_small(sorted(HARD_FAMILY)))
def test_rigid_error_bars_on_every_member(name: str) -> None:
    movie, _ = member(name)
    report = corrected(name)
    err = rigid_errors(report.shifts_rigid, movie.shifts, exclude=unusable_frames(movie))
    assert np.median(err) < 0.3, f"{name}: median {np.median(err):.3f} px"
    assert np.percentile(err, 95) < 1.0, f"{name}: p95 {np.percentile(err, 95):.3f} px"
    assert report.crispness_after >= report.crispness_before
    assert report.interpolated_fraction <= SPECS["max_interpolated_fraction"].default


@pytest.mark.parametrize("name", inner_loop_small(["bands19_240x300", "tilted_400x360"]))
def test_residual_bands_do_not_lock_the_estimate(name: str) -> None:
    """10% of the bands left in (bands that pass the motion filter): no lock at 0 or the bound."""
    movie, _ = member(name, 0.1)
    report = corrected(name, 0.1)
    shifts = np.asarray(report.shifts_rigid)
    err = rigid_errors(shifts, movie.shifts, exclude=unusable_frames(movie))
    assert np.median(err) < 0.3 and np.percentile(err, 95) < 1.0
    bound = min(defaults()["max_shifts"])
    assert np.abs(shifts).max() < bound - 1
    truth = -movie.shifts
    for axis in range(2):  # the estimate follows the motion, it does not sit still
        assert np.corrcoef(shifts[:, axis], truth[:, axis])[0, 1] > 0.9


def test_confidence_flags_corrupted_frames_of_wireless() -> None:
    movie, _ = member("wireless_200")
    report = corrected("wireless_200")
    low = np.asarray(report.low_confidence)
    frames, kinds = movie.corrupt_frames, movie.corrupt_kind
    blank = frames[np.isin(kinds, (CORRUPT_BLACK, CORRUPT_WHITE))]
    assert len(blank) and low[blank].all()  # nothing to register: always flagged
    rows = frames[kinds == CORRUPT_ROWS]
    measured = rigid_errors(report.shifts_measured, movie.shifts)
    # garbage or torn rows: flagged, or the intact rows still registered the frame
    assert all(low[t] or measured[t] < 1.0 for t in rows)
    assert low[rows].mean() >= 0.5
    # whatever was flagged, no corrupted frame becomes an outlier of the applied shifts
    applied = rigid_errors(report.shifts_rigid, movie.shifts)
    assert applied[frames].max() < 1.0
    intact = np.setdiff1d(np.arange(FRAMES), frames)
    assert low[intact].mean() < 0.05  # and ordinary frames are not flagged


def test_template_is_built_from_confident_frames() -> None:
    """Black and white frames never enter the template; it matches the scene better than a mean."""
    movie, frames = member("wireless_200")
    template, info = build_template(frames, FRAMES, frames.shape[1:], defaults())
    assert info.bin == 1 and len(info.used) == len(info.frames) == FRAMES
    blank = movie.corrupt_frames[np.isin(movie.corrupt_kind, (CORRUPT_BLACK, CORRUPT_WHITE))]
    assert not info.used[blank].any()
    assert info.used_fraction > 0.9
    scene = movie.render(0, FRAMES, motion=False, bands=False, noise=False, corrupt=False)
    truth = scene.astype(np.float32).mean(axis=0)
    plain = frames.astype(np.float32).mean(axis=0)

    def mismatch(image: np.ndarray) -> float:
        """1 - band-passed correlation with the truth at the best alignment (quarter px)."""
        a, b = (
            cv2.GaussianBlur(x, (0, 0), 2) - cv2.GaussianBlur(x, (0, 0), 8) for x in (image, truth)
        )
        inner = (slice(20, -20), slice(20, -20))
        best = max(
            float(
                np.corrcoef(
                    warp_rigid(a, (dy, dx), "copy", cv2.INTER_LINEAR)[inner].ravel(),
                    b[inner].ravel(),
                )[0, 1]
            )
            for dy in np.arange(-3, 3.01, 0.25)
            for dx in np.arange(-3, 3.01, 0.25)
        )
        return 1.0 - best

    assert mismatch(template) < 0.5 * mismatch(plain)
