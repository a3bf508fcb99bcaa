"""End to end on generated demo data: experiments -> analysis_parameters -> session_files."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from ace_assets.defs.assets.catalog import analysis_parameters, experiments
from ace_assets.defs.assets.session import session_files
from ace_assets.defs.resources import PathsResource
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.projects import catalog_read

ASSETS = [experiments, analysis_parameters, session_files]


def manifest(paths: PathsResource, line: int) -> dict:
    return json.loads(
        (Path(paths.results) / f"line_{line}/session_files/manifest.json").read_text()
    )


def run_line(instance, resources, line: str, selection) -> dg.ExecuteInProcessResult:
    """One line's catalog assets, failures returned rather than raised."""
    return dg.materialize(
        ASSETS,
        selection=selection,
        partition_key=line,
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )


def test_every_demo_line_resolves(demo_paths: PathsResource) -> None:
    resources = {"paths": demo_paths}
    with catalog_read(ASSETS, resources["paths"]) as instance:
        for line in ("1", "2", "3"):
            result = run_line(instance, resources, line, ["analysis_parameters", "session_files"])
            assert result.success, failure_text(result)
    one, two, three = (manifest(demo_paths, n) for n in (1, 2, 3))
    assert one["miniscope"]["n_frames"] == 600 and one["miniscope"]["frame_rate"] == 30.0
    assert [f["name"] for f in one["miniscope"]["files"]] == ["0.avi", "1.avi", "2.avi"]
    assert [c["name"] for c in one["ephys"]["channels"]] == [
        "PFCLFPvsCBEEG",
        "PFCEEGvsCBEEG",
        "EMG",
    ]
    assert one["ephys"]["channels"][0]["sampling_rate"] == 2000.0
    assert one["ephys"]["events_file"].endswith("Events.nev")
    assert two["ephys"] is None and "ephys" in two["missing"][0]
    assert three["miniscope"] is None and three["ephys"]["emg"]["name"] == "EMG"


def test_missing_channel_names_file_line_and_column(demo_paths: PathsResource) -> None:
    csv = Path(demo_paths.project_path) / "experiments.csv"
    csv.write_text(
        csv.read_text().replace(
            "PFCLFPvsCBEEG;PFCEEGvsCBEEG;EMG,Ephys only", "PFCLFPvsCBEEG;HPC;EMG,Ephys only"
        )
    )
    resources = {"paths": demo_paths}
    with catalog_read(ASSETS, resources["paths"]) as instance:
        result = run_line(instance, resources, "3", "session_files")
        text = failure_text(result)
        assert not result.success
        assert "experiments.csv" in text and "line number 3" in text
        assert "column 'LFP and EEG CSCs'" in text and "HPC" in text
        assert not (Path(demo_paths.results) / "line_3/session_files").exists()


def test_escaping_directory_is_rejected_without_reading(demo_paths: PathsResource) -> None:
    """Line 2 was fine yesterday; today its row points outside data_path."""
    csv = Path(demo_paths.project_path) / "experiments.csv"
    resources = {"paths": demo_paths}
    with catalog_read(ASSETS, resources["paths"]) as instance:
        csv.write_text(
            csv.read_text().replace("miniscope/DemoRat/2024_01_02/12_00_00", "../../etc")
        )
        again = dg.materialize(
            ASSETS, selection="experiments", instance=instance, resources=resources
        )
        (check,) = [c for c in again.get_asset_check_evaluations() if c.check_name == "rows_valid"]
        assert not check.passed and "line number 2" in check.metadata["problems"].value
        result = run_line(instance, resources, "2", "session_files")
        text = failure_text(result)
        assert "line number 2" in text and "escapes data_path" in text
        assert "column 'calcium imaging directory'" in text
        assert not (Path(demo_paths.results) / "line_2/session_files").exists()


def test_line_added_after_the_last_catalog_run_resolves(demo_paths: PathsResource) -> None:
    """The sensor's run for a line added tonight reads the CSV, not yesterday's catalog."""
    csv = Path(demo_paths.project_path) / "experiments.csv"
    resources = {"paths": demo_paths}
    with catalog_read(ASSETS, resources["paths"]) as instance:
        row_two = next(r for r in csv.read_text().splitlines() if r.startswith("2,"))
        csv.write_text(csv.read_text().rstrip("\n") + "\n" + "7" + row_two[1:] + "\n")
        instance.add_dynamic_partitions("line_number", ["7"])
        result = run_line(instance, resources, "7", ["analysis_parameters", "session_files"])
        assert result.success, failure_text(result)
    assert manifest(demo_paths, 7)["miniscope"] == manifest_like_line_two(demo_paths)


def manifest_like_line_two(paths: PathsResource) -> dict:
    """Line 7 points at line 2's recording, so it resolves to the same files."""
    from ace_assets.defs.assets.catalog import experiment_row
    from ace_assets.io.session import resolve_session

    row, source = experiment_row(paths, 2)
    return json.loads(json.dumps(resolve_session(paths.data, row, source).to_json()["miniscope"]))


def test_partition_keys_outside_the_catalog_are_refused(demo_paths: PathsResource) -> None:
    """A key typed into the UI's "add partition" box runs nothing and says what to do."""
    resources = {"paths": demo_paths}
    with catalog_read(ASSETS, resources["paths"]) as instance:
        instance.add_dynamic_partitions("line_number", ["99", "seven"])
        for key, expected in (
            ("99", "line 99 is not in experiments.csv (its lines: 1, 2, 3, 4, 5, 6)"),
            ("seven", "partition key 'seven' is not a line number"),
        ):
            result = run_line(instance, resources, key, ["session_files"])
            assert not result.success
            text = failure_text(result)
            assert expected in text and "'line number'" in text, text
            assert not (Path(demo_paths.results) / f"line_{key}").exists()
