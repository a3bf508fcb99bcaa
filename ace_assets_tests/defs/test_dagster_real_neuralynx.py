"""The real Pegasus recording through the Dagster assets: gapped vs intact channels, a
mixed-rate line, non-monotonic events, and a window longer than the recording."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from ace_assets.definitions import all_assets
from ace_assets.defs.line_runs import materialize_line
from ace_assets.defs.resources import DEMO_PROJECT, PathsResource
from ace_assets.io.store import ArrayStore
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.paths import DATA
from ace_assets_tests.helpers.projects import catalog_read

# every real line through the assets (tens of seconds); the reader and filters on the same
# recordings stay in the inner loop (test_neuralynx_real)
pytestmark = pytest.mark.slow

LINES = {
    11: "LAHC1_3_gaps;LAHC2_3_gaps",  # real gaps of 50, 3.5 and 11.5 ms
    12: "LAHC1;LAHC2",  # the same channels without gaps
    13: "LAHC1;LAHCu1",  # 2 kHz beside 32 kHz
    14: "LAHC1_3_gaps;LAHC3",  # one channel with gaps, one without
}


def _manifest(paths: PathsResource, line: int, asset: str) -> dict:
    return json.loads((Path(paths.results) / f"line_{line}/{asset}/manifest.json").read_text())


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("real")
    project = root / "project"
    project.mkdir()
    header = (DEMO_PROJECT / "experiments.csv").read_text().splitlines()[0]
    rows = [
        f"{n},Pegasus,231102,,NA,,neuralynx_pegasus,NA,NA,NA,NA,NA,NA,Events.nev,{chans},real,"
        for n, chans in LINES.items()
    ]
    (project / "experiments.csv").write_text("\n".join([header, *rows]) + "\n")
    (project / "analysis_parameters.csv").write_text(
        "line number,filter_range\n" + "".join(f'{n},"[0.5, 4]"\n' for n in LINES)
    )
    paths = PathsResource(
        project_path=str(project), data_path=str(DATA), results_path=str(root / "results")
    )
    with catalog_read(all_assets, paths) as instance:
        runs = {
            n: materialize_line(all_assets, paths=paths, line=str(n), instance=instance)
            for n in LINES
        }
        yield paths, runs, instance


def test_every_real_line_runs(real) -> None:
    _, runs, _ = real
    for n, run in runs.items():
        assert run.success, (n, failure_text(run.runs[-1]))
        assert {"filtered_ephys", "ephys_spectrogram", "ephys_results"} <= set(run.materialized())


def test_gapped_channels_filtered_rms_within_1_5x_of_intact(real) -> None:
    paths, runs, _ = real
    gapped = _manifest(paths, 11, "filtered_ephys")["rms_recorded_uV"]
    intact = _manifest(paths, 12, "filtered_ephys")["rms_recorded_uV"]
    for g, i in (("LAHC1_3_gaps", "LAHC1"), ("LAHC2_3_gaps", "LAHC2")):
        assert 1 / 1.5 < gapped[g] / intact[i] < 1.5, (gapped, intact)
    power_gapped = _manifest(paths, 11, "ephys_results")["mean_band_power_uV2"]
    power_intact = _manifest(paths, 12, "ephys_results")["mean_band_power_uV2"]
    assert power_gapped["LAHC1_3_gaps"] / power_intact["LAHC1"] < 1.5
    channels = _manifest(paths, 11, "ephys_channels")
    assert [g["filled"] for g in channels["gaps"]] == [True, True, True]
    assert _manifest(paths, 11, "ephys_spectrogram")["windows"]["masked_windows"] == 0
    gap = next(
        c for c in runs[11].get_asset_check_evaluations() if c.check_name == "no_recording_gaps"
    )
    assert gap.severity == dg.AssetCheckSeverity.WARN and "3 filled by interpolation" in (
        gap.description
    )


def test_mixed_rates_and_mixed_structures(real) -> None:
    paths, _, _ = real
    mixed = _manifest(paths, 13, "ephys_channels")
    assert mixed["channel_rates_hz"] == [2000.0, 32000.0]
    assert mixed["resampled_channels"] == ["LAHCu1"]
    stream = ArrayStore(mixed["stream_stores"]["32000Hz"])  # at its own rate, as counts
    assert stream.meta["sampling_rate_hz"] == 32000.0 and stream.stored.dtype == np.int16
    assert np.isfinite(stream.read(0, 1000)).all()
    both = _manifest(paths, 14, "ephys_channels")
    assert both["n_segments"] == 1 and not both["gaps"]
    assert {r["channel"] for r in both["channel_runs"]} == {"LAHC1_3_gaps"}


def test_non_monotonic_events_are_reported(real) -> None:
    paths, runs, _ = real
    sanity = _manifest(paths, 12, "ephys_channels")["events_sanity"]
    assert sanity["not_monotonic"] == 1 and sanity["outside_recording"] == 0
    check = next(
        c
        for c in runs[12].get_asset_check_evaluations()
        if c.check_name == "events_match_recording"
    )
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "1 out of time order" in check.description


def test_short_recording_window_adapts_or_names_the_setting(real) -> None:
    """5.8 s of signal: an 8 s window shrinks to the recording (logged, in the metadata);
    a 20 s window is refused with the setting to change; never NaN results."""
    paths, _, instance = real

    def spectrogram(window: str):
        config = {
            "ops": {"analysis_parameters": {"config": {"overrides": {"ephys_window_s": window}}}}
        }
        return dg.materialize(
            all_assets,
            selection=["analysis_parameters", "ephys_spectrogram", "ephys_results"],
            partition_key="12",
            instance=instance,
            resources={"paths": paths},
            run_config=config,
            raise_on_error=False,
        )

    adapted = spectrogram("8")
    assert adapted.success, failure_text(adapted)
    windows = _manifest(paths, 12, "ephys_spectrogram")["windows"]
    assert windows["adapted"] and windows["window_s"] == pytest.approx(5.8455, abs=1e-3)
    assert "longer than the longest stretch" in windows["warnings"][0]
    power = _manifest(paths, 12, "ephys_results")["mean_band_power_uV2"]
    assert all(v == v and v > 0 for v in power.values())  # finite, not NaN
    refused = spectrogram("20")
    assert not refused.success
    text = failure_text(refused)
    assert "ephys_window_s" in text and "line number 12" in text and "5.846 s" in text, text


def test_band_above_the_resampled_grid_names_the_column_and_why(real) -> None:
    """Line 13 analyses on the 2 kHz grid (LAHCu1 resampled): a 1.5 kHz band cannot work."""
    paths, _, instance = real
    config = {
        "ops": {"analysis_parameters": {"config": {"overrides": {"filter_range": "[300, 1500]"}}}}
    }
    run = dg.materialize(
        all_assets,
        selection=["analysis_parameters", "filtered_ephys"],
        partition_key="13",
        instance=instance,
        resources={"paths": paths},
        run_config=config,
        raise_on_error=False,
    )
    assert not run.success
    text = failure_text(run)
    assert "line number 13" in text and "column 'filter_range'" in text, text
    assert "LAHCu1 were resampled" in text and "'LFP and EEG CSCs'" in text, text
