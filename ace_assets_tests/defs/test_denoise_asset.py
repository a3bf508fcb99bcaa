"""The denoised_movie asset: what it stores for later stages, and its blocking checks.

A small Miniscope-only line whose movie has travelling bands at 10 cycles per height
(far below the reference notch's absolute start at 90) and corrupted wireless frames.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from ace_assets.definitions import all_assets
from ace_assets.defs.resources import PathsResource
from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope
from ace_assets.demo.miniscope_writer import write_v4_session
from ace_assets.demo.scoring import stripe_power_kept
from ace_assets.io.store import load_npz
from ace_assets.miniscope.denoise import StripeFilter
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.projects import catalog_read, lab_paths

LINE = "2"
MOVIE = MiniscopeSynthConfig(
    height=96,
    width=112,
    n_frames=120,
    n_neurons=6,
    neuron_radius=3.0,
    band_cycles=10,
    band_amplitude=4.0,
    band_speed=1.0,
    corrupt_rows_fraction=0.03,
    black_frames=1,
    duplicate_frames=1,
    seed=5,
)


@pytest.fixture(scope="module")
def line_two(tmp_path_factory: pytest.TempPathFactory):
    from ace_assets.demo.generate import LINE_DIRS, generate_demo, small_size

    root = tmp_path_factory.mktemp("denoise_asset")
    data = root / "data"
    generate_demo(data, size=small_size(n_neurons=4), lines=(2,))
    session = data / LINE_DIRS[2]["miniscope"]
    shutil.rmtree(session)
    write_v4_session(session, SyntheticMiniscope(MOVIE), frames_per_file=60)
    paths = lab_paths(root, data, lines=[LINE])
    with catalog_read(all_assets, paths) as instance:
        yield paths, instance


def run(paths: PathsResource, instance, overrides: dict[str, str]) -> dg.ExecuteInProcessResult:
    """session -> denoised -> preprocessed for the line, with analysis-parameter overrides."""
    overrides = {"crop_coords": "None", **overrides}  # the demo row crops a larger frame
    config = {"ops": {"analysis_parameters": {"config": {"overrides": overrides}}}}
    return dg.materialize(
        all_assets,
        selection=dg.AssetSelection.assets(
            "session_files", "analysis_parameters", "denoised_movie", "preprocessed_movie"
        ),
        partition_key=LINE,
        instance=instance,
        resources={"paths": paths},
        run_config=config,
        raise_on_error=False,
    )


def evaluation(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    return next(c for c in result.get_asset_check_evaluations() if c.check_name == name)


def done(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_defaults_store_the_filter_the_rates_and_the_repairs(line_two) -> None:
    paths, instance = line_two
    result = run(paths, instance, {})
    assert {"denoised_movie", "preprocessed_movie"} <= done(result), failure_text(result)
    for name in ("stripes_removed", "corrupted_frames_below_threshold"):
        assert evaluation(result, name).passed, name
    folder = Path(paths.results) / f"line_{LINE}" / "denoised_movie"
    manifest = json.loads((folder / "manifest.json").read_text())
    syn = SyntheticMiniscope(MOVIE)
    # the rate at which the band passes a row: speed * cycles / height * fps
    assert manifest["stripe_frequencies_hz"] == pytest.approx([1.0 * 10 / 96 * 30], rel=0.05)
    # the frozen filter, rebuilt from the manifest alone, removes the generator's band
    stripe = StripeFilter.from_report(manifest)
    assert stripe.method == "auto" and stripe_power_kept(stripe.apply, syn) < 0.05
    assert manifest["corrupted_frames"] == syn.corrupt_frames.tolist()
    qc = load_npz(folder / "qc.npz")
    assert qc["corrupted_frames"].tolist() == syn.corrupt_frames.tolist()
    assert qc["kymograph_before"].shape == (96, 120) == qc["kymograph_after"].shape
    assert qc["kymograph_after"].std() < 0.5 * qc["kymograph_before"].std()
    assert (folder / "kymograph.png").is_file()


@pytest.mark.parametrize(
    ("overrides", "check", "setting", "words"),
    [
        (
            {"stripe_method": "reference"},
            "stripes_removed",
            "max_stripe_power_remaining",
            "stripe_method is 'reference'",
        ),
        (
            {"max_corrupted_frame_fraction": "0.01"},
            "corrupted_frames_below_threshold",
            "max_corrupted_frame_fraction",
            "black",
        ),
    ],
)
def test_blocking_checks_say_why(line_two, overrides, check, setting, words) -> None:
    paths, instance = line_two
    result = run(paths, instance, overrides)
    assert not evaluation(result, check).passed
    assert "denoised_movie" in done(result) and "preprocessed_movie" not in done(result)
    text = failure_text(result)
    assert f"{check} FAILED: measured" in text and setting in text and words in text, text
