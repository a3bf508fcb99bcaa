"""The catalog assets under Dagster: partitions registered, parameters per line, errors, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from ace_assets.defs.assets.catalog import analysis_parameters, experiments
from ace_assets.defs.partitions import LINE_PARTITIONS_NAME
from ace_assets.defs.resources import PathsResource
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.projects import demo_catalog_copy


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return demo_catalog_copy(tmp_path / "project")


def resources(project: Path, tmp_path: Path) -> dict[str, PathsResource]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return {
        "paths": PathsResource(
            project_path=str(project), data_path=str(data), results_path=str(tmp_path / "results")
        )
    }


def test_experiments_registers_partitions_and_parameters_resolve(
    project: Path, tmp_path: Path
) -> None:
    with dg.instance_for_test() as instance:
        res = resources(project, tmp_path)
        result = dg.materialize([experiments], instance=instance, resources=res)
        assert result.success
        assert sorted(instance.get_dynamic_partitions(LINE_PARTITIONS_NAME)) == [
            "1",
            "2",
            "3",
            "4",
            "5",
            "6",
        ]
        mat = result.asset_materializations_for_node("experiments")[0]
        assert mat.metadata["dagster/row_count"].value == 6
        assert mat.metadata["rows_rejected"].value == 1  # the 'example' template row
        (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "rows_valid"]
        assert not check.passed and "example" in check.metadata["problems"].value

        run = dg.materialize(
            [analysis_parameters],
            partition_key="1",
            instance=instance,
            resources=res,
            run_config={"ops": {"analysis_parameters": {"config": {"overrides": {"p": "2"}}}}},
        )
        assert run.success
        stored = json.loads(
            (tmp_path / "results/line_1/analysis_parameters/manifest.json").read_text()
        )
        assert stored["values"]["gSig"] == [3, 3] and stored["sources"]["gSig"] == "csv"
        assert stored["values"]["p"] == 2 and stored["sources"]["p"] == "run_config"
        assert stored["values"]["indices of TTL events to delete"] == [0, 302]


def test_bad_parameter_cell_fails_the_line_and_writes_nothing(
    project: Path, tmp_path: Path
) -> None:
    csv = project / "analysis_parameters.csv"
    csv.write_text(csv.read_text().replace('"(3, 3)"', '"(3, 3"', 1))
    with dg.instance_for_test() as instance:
        res = resources(project, tmp_path)
        assert dg.materialize([experiments], instance=instance, resources=res).success
        result = dg.materialize(
            [analysis_parameters],
            partition_key="1",
            instance=instance,
            resources=res,
            raise_on_error=False,
        )
        assert not result.success
        failure = failure_text(result)
        assert "analysis_parameters.csv" in failure and "line number 1" in failure
        assert "column 'gSig'" in failure
        assert not (tmp_path / "results/line_1/analysis_parameters").exists()
        # the other lines are unaffected
        assert dg.materialize(
            [analysis_parameters], partition_key="2", instance=instance, resources=res
        ).success


def test_missing_experiments_csv_is_a_clear_failure(project: Path, tmp_path: Path) -> None:
    (project / "experiments.csv").unlink()
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [experiments],
            instance=instance,
            resources=resources(project, tmp_path),
            raise_on_error=False,
        )
        message = failure_text(result)
        assert "experiments.csv: file not found" in message
        assert instance.get_dynamic_partitions(LINE_PARTITIONS_NAME) == []
