"""A lab's existing catalog under Dagster: every line a partition, problems on the line,
path_map from the resource and the deployment, and partitions whose row is gone."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from ace_assets.defs.assets.catalog import analysis_parameters, experiments
from ace_assets.defs.assets.session import session_files
from ace_assets.defs.partitions import LINE_PARTITIONS_NAME
from ace_assets.defs.resources import DEPLOYMENT_ENV, PathsResource
from ace_assets_tests.helpers.dagster_helpers import failure_text, session_run
from ace_assets_tests.helpers.reference_catalog import (
    ABSOLUTE,
    LINES,
    NO_CHANNELS_LINE,
    PART_GAP_H,
    PATH_MAP,
    SPLIT_LINE,
    build_tree,
    mapped_catalog,
    materialize,
    reference_project,
)
from ace_assets_tests.helpers.sensor_tick import tick

ASSETS = [experiments, analysis_parameters, session_files]
#: an absolute calcium row, an absolute ephys row, a relative row, a session split across
#: two folders, an ephys folder with no channels listed
MATERIALIZED = (3, 8, 12, SPLIT_LINE, NO_CHANNELS_LINE)


@pytest.fixture()
def lab(tmp_path: Path, demo_data: Path) -> dict[str, Path]:
    """The reference-shaped project, its Linux copy (three lines hold recordings), results."""
    project = reference_project(tmp_path / "project")
    data = tmp_path / "data"
    catalog = mapped_catalog(project)
    build_tree(data, catalog)
    for line in MATERIALIZED:
        materialize(data, demo_data, catalog, line)
    old = time.time() - 3600  # copied an hour ago: settled
    for path in data.rglob("*"):
        os.utime(path, (old, old))
    return {"project": project, "data": data, "results": tmp_path / "results"}


def paths_for(lab: dict[str, Path], path_map: str = "") -> PathsResource:
    return PathsResource(
        project_path=str(lab["project"]),
        data_path=str(lab["data"]),
        results_path=str(lab["results"]),
        path_map=path_map,
    )


def rows_valid(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    return next(c for c in result.get_asset_check_evaluations() if c.check_name == "rows_valid")


def test_without_a_map_every_line_is_a_partition_and_fails_with_its_problem(lab) -> None:
    resources = {"paths": paths_for(lab)}
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            ASSETS, selection="experiments", instance=instance, resources=resources
        )
        keys = instance.get_dynamic_partitions(LINE_PARTITIONS_NAME)
        assert sorted(keys, key=int) == [str(n) for n in LINES]
        mat = result.asset_materializations_for_node("experiments")[0]
        invalid = sorted(ABSOLUTE)
        assert mat.metadata["lines_with_problems"].value == ", ".join(map(str, invalid))
        table = mat.metadata["table"].value
        line_three = next(r for r in table.splitlines() if r.startswith("| 3 |"))
        assert "absolute Windows path" in line_three
        # empty cells (no ephys folder, no channels, no problems) stay empty, never 'nan'
        line_ten = next(r for r in table.splitlines() if r.startswith("| 10 |"))
        assert line_ten.endswith("/2022_07_22/13_40_42 |  |  |  |")
        assert "nan" not in table.lower()
        check = rows_valid(result)
        assert not check.passed and "line number 3" in check.metadata["problems"].value
        for line, column in ABSOLUTE.items():
            run = session_run(ASSETS, instance, resources, line)
            text = failure_text(run)
            assert not run.success
            assert f"row {line + 1}, line number {line}, column '{column}'" in text, text
            assert "absolute Windows path" in text and "ACE_PATH_MAP" in text
        assert not lab["results"].joinpath("line_3").exists()


def test_with_a_map_the_mapped_lines_resolve_and_missing_files_fail_their_line(lab) -> None:
    resources = {"paths": paths_for(lab, json.dumps(PATH_MAP))}
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            ASSETS, selection="experiments", instance=instance, resources=resources
        )
        mat = result.asset_materializations_for_node("experiments")[0]
        assert mat.metadata["lines_with_problems"].value == "none"
        outcomes = {}
        for line in (*MATERIALIZED, 4):
            run = session_run(ASSETS, instance, resources, line)
            outcomes[line] = (run.success, failure_text(run))
    for line in MATERIALIZED:
        assert outcomes[line][0], outcomes[line][1]
    stored = json.loads((lab["results"] / "line_3/session_files/manifest.json").read_text())
    assert stored["miniscope"]["folder"] == str(
        (lab["data"] / "K99/miniscope_data/R201110/2021_01_12/09_15_40").resolve()
    )
    assert not outcomes[4][0] and "no Miniscope movie found" in outcomes[4][1]
    # the split session: both folders, one movie, the pause between them not a drop
    split = json.loads(
        (lab["results"] / f"line_{SPLIT_LINE}/session_files/manifest.json").read_text()
    )["miniscope"]
    one = stored["miniscope"]
    assert [Path(f).name for f in split["folders"]] == ["14_42_17", "15_54_01"]
    assert split["n_frames"] == 2 * one["n_frames"]
    assert len(split["files"]) == 2 * len(one["files"])
    second = split["segments"][1]
    assert second["first_frame"] == one["n_frames"]
    assert second["start_ms"] - split["segments"][0]["start_ms"] >= PART_GAP_H * 3_600_000
    assert (
        split["dropped_frames"]["estimated_missing"] == one["dropped_frames"]["estimated_missing"]
    )
    # no channels listed: the folder's .ncs files, said in the notes
    ephys = json.loads(
        (lab["results"] / f"line_{NO_CHANNELS_LINE}/session_files/manifest.json").read_text()
    )["ephys"]
    assert [c["name"] for c in ephys["channels"]] == ["EMG", "PFCLFPvsCBEEG"]
    assert any("every .ncs file" in note for note in ephys["notes"])


def test_a_partition_whose_row_is_gone_is_reported_not_deleted(lab) -> None:
    resources = {"paths": paths_for(lab)}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(LINE_PARTITIONS_NAME, ["99", "31", "seven"])
        result = dg.materialize(
            ASSETS, selection="experiments", instance=instance, resources=resources
        )
        check = next(
            c for c in result.get_asset_check_evaluations() if c.check_name == "lines_in_catalog"
        )
        assert not check.passed
        assert check.metadata["partitions_without_row"].value == "31, 99, seven"
        assert "3 partitions without a row (31, 99, seven)" in check.description
        assert "31" in instance.get_dynamic_partitions(LINE_PARTITIONS_NAME)
        run = session_run(ASSETS, instance, resources, "99")
        assert "line 99 is not in experiments.csv" in failure_text(run)
        # rows 31 and 99 are back; the key typed by hand is still named
        csv = lab["project"] / "experiments.csv"
        rows = csv.read_text().splitlines()
        csv.write_text("\n".join([*rows[:31], "31" + rows[30][2:], "99" + rows[30][2:]]) + "\n")
        again = dg.materialize(
            ASSETS, selection="experiments", instance=instance, resources=resources
        )
        check = next(
            c for c in again.get_asset_check_evaluations() if c.check_name == "lines_in_catalog"
        )
        assert check.metadata["partitions_without_row"].value == "seven"


def test_sensor_registers_every_line_and_runs_only_complete_mapped_ones(lab) -> None:
    with dg.instance_for_test() as instance:
        first = tick(instance, paths_for(lab), None)
        assert sorted(instance.get_dynamic_partitions(LINE_PARTITIONS_NAME), key=int) == [
            str(n) for n in LINES
        ]
        assert "row 4, line number 3, column 'calcium imaging directory'" in (
            first.skip_reason.skip_message
        )
        second = tick(instance, paths_for(lab), first.cursor)
        # without the map only the relative rows that hold recordings are complete
        assert sorted(int(r.partition_key) for r in second.run_requests) == [
            n for n in MATERIALIZED if n not in ABSOLUTE
        ]
    with dg.instance_for_test() as instance:
        mapped = paths_for(lab, json.dumps(PATH_MAP))
        first = tick(instance, mapped, None)
        second = tick(instance, mapped, first.cursor)
        assert sorted(int(r.partition_key) for r in second.run_requests) == list(MATERIALIZED)


def test_the_deployment_sets_the_map_with_ace_path_map(lab, tmp_path, monkeypatch) -> None:
    from ace_assets.definitions import build_definitions

    map_file = tmp_path / "path_map.json"
    map_file.write_text(json.dumps(PATH_MAP))
    for field, value in (
        ("project_path", lab["project"]),
        ("data_path", lab["data"]),
        ("results_path", lab["results"]),
        ("path_map", map_file),
    ):
        monkeypatch.setenv(DEPLOYMENT_ENV[field], str(value))
    assert DEPLOYMENT_ENV["path_map"] == "ACE_PATH_MAP"
    defs = build_definitions()
    sensor = defs.get_repository_def().get_sensor_def("new_recordings")
    with dg.instance_for_test() as instance:
        cursor = None
        for _ in range(2):
            context = dg.build_sensor_context(
                instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
            )
            result = sensor(context)
            for req in result.dynamic_partitions_requests or []:
                instance.add_dynamic_partitions(LINE_PARTITIONS_NAME, list(req.partition_keys))
            cursor = result.cursor
    assert sorted(int(r.partition_key) for r in result.run_requests) == list(MATERIALIZED)


def test_a_malformed_map_fails_the_catalog_and_skips_the_tick_with_what_to_write(lab) -> None:
    typed_on_windows = paths_for(lab, '{"D:\\Dropbox": "."}')  # single backslashes: not JSON
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            ASSETS,
            selection="experiments",
            instance=instance,
            resources={"paths": typed_on_windows},
            raise_on_error=False,
        )
        text = failure_text(result)
        assert not result.success and "write each Windows backslash twice" in text, text
        assert instance.get_dynamic_partitions(LINE_PARTITIONS_NAME) == []
        skipped = tick(instance, typed_on_windows, None)
        assert "column 'path_map'" in skipped.skip_reason.skip_message
        assert skipped.run_requests == []
