"""analysis_parameters parses a line's periods: the UI shows them as a table, and a period
the line cannot mean fails the asset naming file, row, line and column (or the run config)."""

from __future__ import annotations

import csv
from pathlib import Path

import dagster as dg
import pytest

from ace_assets.defs.assets.catalog import analysis_parameters, experiments
from ace_assets.defs.resources import PathsResource
from ace_assets_tests.helpers.dagster_helpers import failure_text

HIGH, CONTROL = "periods of high slow wave power (s)", "control periods (s)"


def set_cell(csv_path: Path, line: str, column: str, value: str) -> int:
    """Write one cell of analysis_parameters.csv; returns the row (header = 1)."""
    with csv_path.open(newline="") as f:
        rows = list(csv.reader(f))
    at = rows[0].index(column)
    (row,) = [i for i, r in enumerate(rows) if r and r[0] == line]
    rows[row][at] = value
    with csv_path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return row + 1


def run(paths: PathsResource, line: str, overrides: dict[str, str] | None = None):
    with dg.instance_for_test() as instance:
        res = {"paths": paths}
        assert dg.materialize([experiments], instance=instance, resources=res).success
        return dg.materialize(
            [analysis_parameters],
            partition_key=line,
            instance=instance,
            resources=res,
            run_config={"ops": {"analysis_parameters": {"config": {"overrides": overrides or {}}}}},
            raise_on_error=False,
        )


def test_a_lines_periods_are_shown_as_a_table(demo_paths: PathsResource) -> None:
    result = run(demo_paths, "1")
    assert result.success, failure_text(result)
    (mat,) = result.asset_materializations_for_node("analysis_parameters")
    table = mat.metadata["periods"].value
    rows = [(r.data["period"], r.data["start_s"], r.data["end_s"]) for r in table.records]
    assert rows == [("high_slow_wave", 2.5, 12.5), ("control", 12.5, 22.5)]
    assert {c.name for c in table.schema.columns} >= {"column", "ephys_start_s", "ephys_end_s"}
    # a line without periods says where to set them
    none = run(demo_paths, "3")
    (mat,) = none.asset_materializations_for_node("analysis_parameters")
    assert (
        "no periods" in mat.metadata["periods"].value and CONTROL in mat.metadata["periods"].value
    )


@pytest.mark.parametrize(
    ("column", "cell", "said"),
    [
        (CONTROL, "[[10, 30]]", "overlaps the high slow wave period [2.5, 12.5]"),
        (HIGH, "[[-5, 2.5]]", "starts before zero time"),
        (CONTROL, "[[22.5, 12.5]]", "[start, end] pairs"),  # reversed: refused by the grammar
        (CONTROL, "[[12.5, 22.5, 30]]", "[start, end]"),
    ],
)
def test_a_bad_period_fails_naming_file_row_line_and_column(
    demo_paths: PathsResource, column: str, cell: str, said: str
) -> None:
    row = set_cell(demo_paths.parameters_csv, "1", column, cell)
    result = run(demo_paths, "1")
    assert not result.success
    text = failure_text(result)
    assert str(demo_paths.parameters_csv) in text and f"row {row}" in text
    assert "line number 1" in text and f"column '{column}'" in text and said in text
    assert not (Path(demo_paths.results) / "line_1/analysis_parameters").exists()


def test_a_bad_period_from_the_run_config_is_said_to_come_from_there(
    demo_paths: PathsResource,
) -> None:
    result = run(demo_paths, "1", {CONTROL: "[[5, 20]]"})
    assert not result.success
    text = failure_text(result)
    assert "run config" in text and "overrides" in text and f"column '{CONTROL}'" in text
    assert "analysis_parameters.csv" not in text
