"""The motion asset's checks, and dropping intermediate movies to save disk."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import dagster as dg
import numpy as np
import pytest

from ace_assets.catalog.parameter_specs import SPECS
from ace_assets.definitions import all_assets
from ace_assets.defs.assets.movie import motion_checks
from ace_assets.io.store import ArrayStore, load_npz
from ace_assets.miniscope.chunks import ArraySink
from ace_assets.miniscope.motion import MotionParams, MotionReport, motion_correct
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.projects import catalog_read, lab_paths

H = W = 160
PARAMS = {k: s.default for k, s in SPECS.items()}


def overlay_movie(n: int = 60, moving: bool = True, seed: int = 0) -> np.ndarray:
    """Fine, still tissue under a strong, coarse pattern that moves (or not).

    The motion filter (``gSig_filt`` 7) sees mostly the coarse pattern, so registration
    follows it, and warping every frame to follow it smears the still, fine tissue:
    a correction that makes the movie worse, as when residual stripes lead registration.
    """
    rng = np.random.default_rng(seed)
    tissue = cv2.GaussianBlur(rng.normal(0, 30, (H, W)).astype(np.float32), (0, 0), 0.8)
    big = np.zeros((H + 40, W + 40), np.float32)
    for _ in range(25):
        y, x = rng.integers(0, H + 40, 2)
        cv2.circle(big, (int(x), int(y)), 9, 1.0, -1)
    big = cv2.GaussianBlur(big, (0, 0), 4) * 120
    walk = np.cumsum(rng.normal(0, 1.0, (n, 2)), axis=0)
    walk = np.clip(walk - walk.mean(axis=0), -6, 6) if moving else np.zeros((n, 2))
    frames = np.empty((n, H, W), np.float32)
    for t in range(n):
        dy, dx = walk[t]
        frames[t] = (
            100
            + tissue
            + big[
                20 + int(round(dy)) : 20 + int(round(dy)) + H,
                20 + int(round(dx)) : 20 + int(round(dx)) + W,
            ]
        )
    return frames + rng.normal(0, 2, frames.shape).astype(np.float32)


def correct(frames: np.ndarray) -> dict:
    params = MotionParams.from_mapping(
        {k: v for k, v in PARAMS.items() if SPECS[k].group == "motion"}
    )
    sink = ArraySink(frames.shape, np.float32)
    return motion_correct(frames, len(frames), frames.shape[1:], params, sink)


def by_name(report: MotionReport) -> dict[str, dg.AssetCheckResult]:
    return {c.check_name: c for c in motion_checks(report, PARAMS)}


def test_crispness_check_fails_when_correction_blurs_the_mean_image() -> None:
    report = correct(overlay_movie())
    assert report.crispness_after < 0.95 * report.crispness_before
    check = by_name(report)["motion_improves_crispness"]
    assert not check.passed
    text = check.description or ""
    assert "FAILED: measured crispness" in text and "crispness_tolerance" in text
    assert f"{report.crispness_before:.4g}" in text


def test_checks_pass_on_a_still_movie_and_on_a_good_correction() -> None:
    still = by_name(correct(overlay_movie(moving=False)))
    assert all(c.passed for c in still.values())


def test_confidence_check_fails_when_frames_cannot_be_registered() -> None:
    """Frames of pure noise: no confident peak anywhere, all interpolated."""
    rng = np.random.default_rng(3)
    frames = rng.normal(100, 5, (40, H, W)).astype(np.float32)
    report = correct(frames)
    assert report.interpolated_fraction > 0.9
    check = by_name(report)["motion_confident"]
    assert not check.passed and "max_interpolated_fraction" in (check.description or "")


@pytest.fixture()
def tiny_line(tmp_path: Path):
    """A tiny generated line 2 (Miniscope only)."""
    from ace_assets.demo.generate import generate_demo, small_size

    data = tmp_path / "data"
    generate_demo(data, size=small_size(n_neurons=6), lines=(2,))
    paths = lab_paths(tmp_path, data, lines=[2])
    with catalog_read(all_assets, paths) as instance:
        yield paths, instance


def test_dropping_intermediate_movies(tiny_line) -> None:
    from ace_assets.defs.line_runs import materialize_line

    paths, instance = tiny_line
    # the demo row crops a 128 px frame; this tiny line is 64 px
    overrides = {"keep_intermediate_movies": "FALSE", "crop_coords": "(0, 0, 64, 64)"}
    config = {"ops": {"analysis_parameters": {"config": {"overrides": overrides}}}}
    run = materialize_line(all_assets, paths=paths, line="2", instance=instance, run_config=config)
    assert run.success, failure_text(run.runs[-1]) if run.runs else ""
    line = Path(paths.results) / "line_2"

    def manifest(asset: str) -> dict:
        return json.loads((line / asset / "manifest.json").read_text())

    for asset in ("denoised_movie", "preprocessed_movie"):
        m = manifest(asset)
        assert m["movie_dropped"]["bytes_freed"] > 0, asset
        assert "keep_intermediate_movies" in m["movie_dropped"]["reason"]
        assert (line / asset / "qc.npz").is_file()  # the QC stays
        assert not list((line / asset / "movie.npyd").glob("*.npy"))
    kept = ArrayStore(manifest("motion_corrected_movie")["movie"])
    assert kept.compact and kept.read(0, 2).dtype == np.float32
    assert "movie_dropped" not in manifest("motion_corrected_movie")
    assert load_npz(line / "motion_corrected_movie" / "qc.npz")["confidence"].size == kept.n_frames

    # motion correction again, alone: its input is gone, and the failure says what to do
    again = dg.materialize(
        all_assets,
        selection=["motion_corrected_movie"],
        partition_key="2",
        instance=instance,
        resources={"paths": paths},
        raise_on_error=False,
    )
    assert not again.success
    text = failure_text(again)
    assert "Re-materialize 'preprocessed_movie' for line 2" in text, text
    assert "keep_intermediate_movies" in text


def test_long_steps_log_progress_and_record_throughput(tiny_line, monkeypatch) -> None:
    """With the 30 s interval shortened, every movie step's reads show up in the run log."""
    from ace_assets.defs import progress
    from ace_assets.defs.line_runs import materialize_line

    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    paths, instance = tiny_line
    overrides = {"crop_coords": "(0, 0, 64, 64)", "max_interpolated_fraction": "1"}
    config = {"ops": {"analysis_parameters": {"config": {"overrides": overrides}}}}
    run = materialize_line(all_assets, paths=paths, line="2", instance=instance, run_config=config)
    assert run.success, failure_text(run.runs[-1]) if run.runs else ""
    messages = [
        e.user_message for r in run.runs for e in instance.all_logs(r.run_id) if e.user_message
    ]
    for asset in ("denoised_movie", "preprocessed_movie", "motion_corrected_movie"):
        lines = [m for m in messages if m.startswith(f"line 2 {asset}: pass 1, ")]
        assert lines and "frames/s" in lines[-1] and "ETA of this pass" in lines[-1], asset
        meta = instance.get_latest_materialization_event(dg.AssetKey(asset))
        values = meta.asset_materialization.metadata
        assert values["throughput_frames_per_s"].value > 0, asset
    assert any(m.startswith("line 2 miniscope_sources: ") for m in messages)
