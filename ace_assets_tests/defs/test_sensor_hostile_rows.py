"""Hostile rows beside good ones, through the sensor and the catalog assets, on demo data."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import dagster as dg
import pytest

from ace_assets.defs import sensors
from ace_assets.defs.assets.catalog import analysis_parameters, experiments
from ace_assets.defs.assets.session import session_files
from ace_assets.defs.partitions import LINE_PARTITIONS_NAME
from ace_assets.defs.resources import PathsResource
from ace_assets_tests.helpers.dagster_helpers import failure_text, session_run
from ace_assets_tests.helpers.hostile_rows import HOSTILE_EXPERIMENTS, add_hostile_experiments
from ace_assets_tests.helpers.projects import catalog_read
from ace_assets_tests.helpers.sensor_tick import tick

GOOD = ["1", "2", "3", "4", "5", "6"]
#: a hostile row keeps a valid line number: it is a partition, whose assets fail with its problem
LINES = GOOD + [str(n) for n in HOSTILE_EXPERIMENTS]
ASSETS = [experiments, analysis_parameters, session_files]


@pytest.fixture()
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo data was written seconds ago; the sensor sees it an hour later, settled."""
    monkeypatch.setattr(sensors, "now", lambda: time.time() + 3600.0)


def test_hostile_rows_never_block_a_tick_the_good_lines_run(demo_paths, settled) -> None:
    where = add_hostile_experiments(Path(demo_paths.project_path))
    with dg.instance_for_test() as instance:
        first = tick(instance, demo_paths, None)
        assert sorted(instance.get_dynamic_partitions(LINE_PARTITIONS_NAME), key=int) == LINES
        reason = first.skip_reason.skip_message
        for line, (column, _, expected) in HOSTILE_EXPERIMENTS.items():
            assert f"row {where[line]}, line number {line}, column '{column}'" in reason
            assert expected in reason
        assert len(reason) < 10_000  # the 200 KB cell is not copied into it
        second = tick(instance, demo_paths, first.cursor)
        assert sorted((r.partition_key for r in second.run_requests), key=int) == GOOD


def test_a_line_whose_files_raise_waits_alone(demo_paths, settled, monkeypatch) -> None:
    """What the disk alone knows (a name too long once joined, a NUL from elsewhere) costs
    that line only, is named by row and folder column, and clears when the fault does."""
    real = sensors.landing_state
    faults = {
        3: OSError(errno.ENAMETOOLONG, "File name too long", "ephys/DemoRat/2024-01-03_12-00-00"),
        4: ValueError("embedded null byte"),
    }

    def flaky(data_path, experiment):
        fault = faults.get(int(experiment["line_number"]))
        if fault is not None:
            raise fault
        return real(data_path, experiment)

    monkeypatch.setattr(sensors, "landing_state", flaky)
    with dg.instance_for_test() as instance:
        first = tick(instance, demo_paths, None)
        reason = first.skip_reason.skip_message
        assert "row 6, line number 3, column 'ephys directory'" in reason
        assert "File name too long" in reason
        assert (
            "row 7, line number 4, column 'calcium imaging directory / ephys directory'" in reason
        )
        assert "embedded null byte" in reason
        second = tick(instance, demo_paths, first.cursor)
        assert sorted(r.partition_key for r in second.run_requests) == ["1", "2", "5", "6"]
        faults.clear()  # the copy was fixed
        third = tick(instance, demo_paths, second.cursor)
        fourth = tick(instance, demo_paths, third.cursor)
        assert sorted(r.partition_key for r in fourth.run_requests) == ["3", "4"]


def test_hostile_line_fails_its_own_assets_good_line_materializes(demo_paths) -> None:
    where = add_hostile_experiments(Path(demo_paths.project_path))
    resources = {"paths": demo_paths}
    with catalog_read(ASSETS, demo_paths) as instance:
        assert sorted(instance.get_dynamic_partitions(LINE_PARTITIONS_NAME), key=int) == LINES
        again = dg.materialize(
            ASSETS, selection="experiments", instance=instance, resources=resources
        )
        (check,) = [c for c in again.get_asset_check_evaluations() if c.check_name == "rows_valid"]
        assert not check.passed
        # the demo's template row ('example') is rejected too
        assert check.metadata["rows_rejected"].value == len(HOSTILE_EXPERIMENTS) + 1
        for line in ("12", "13"):
            column, _, expected = HOSTILE_EXPERIMENTS[int(line)]
            for asset in ("analysis_parameters", "session_files"):
                result = dg.materialize(
                    ASSETS,
                    selection=asset,
                    partition_key=line,
                    instance=instance,
                    resources=resources,
                    raise_on_error=False,
                )
                text = failure_text(result)
                assert not result.success
                assert f"row {where[int(line)]}" in text and f"column '{column}'" in text, text
                assert expected in text, text
            assert not (Path(demo_paths.results) / f"line_{line}").exists()
        good = dg.materialize(
            ASSETS,
            selection=["analysis_parameters", "session_files"],
            partition_key="2",
            instance=instance,
            resources=resources,
        )
        assert good.success
        # a NUL in line 4's parameters row fails line 4's settings only
        params = Path(demo_paths.project_path) / "analysis_parameters.csv"
        lines = params.read_text().splitlines(keepends=True)
        lines = [
            r.replace('"(3, 3)"', '"(3,\x00 3)"', 1) if r.startswith("4,") else r for r in lines
        ]
        params.write_text("".join(lines))
        for line, ok in (("4", False), ("2", True)):
            result = dg.materialize(
                ASSETS,
                selection="analysis_parameters",
                partition_key=line,
                instance=instance,
                resources=resources,
                raise_on_error=False,
            )
            assert result.success is ok, failure_text(result)
            if not ok:
                text = failure_text(result)
                assert "row 5, line number 4, column 'gSig'" in text and "NUL byte" in text, text


def test_raw_file_error_fails_the_line_with_its_row(demo_paths, monkeypatch) -> None:
    """An OSError from reading a line's files is the line's failure, named by row and column."""
    from ace_assets.defs.assets import session

    def refuse(data_path, row, source):
        raise OSError(errno.ENAMETOOLONG, "File name too long", "miniscope/DemoRat/x")

    monkeypatch.setattr(session, "resolve_session", refuse)
    resources = {"paths": demo_paths}
    with catalog_read(ASSETS, demo_paths) as instance:
        result = session_run(ASSETS, instance, resources, "2")
    text = failure_text(result)
    assert not result.success
    assert "row 4" in text and "line number 2" in text, text
    assert "column 'calcium imaging directory'" in text and "File name too long" in text


def test_unreadable_catalog_still_skips_the_tick_with_the_reason(tmp_path: Path) -> None:
    paths = PathsResource(
        project_path=str(tmp_path / "project"),
        data_path=str(tmp_path / "data"),
        results_path=str(tmp_path / "results"),
    )
    with dg.instance_for_test() as instance:
        result = tick(instance, paths, '{"1": {"seen": "abc"}}')
    assert "experiments.csv: file not found" in result.skip_reason.skip_message
    assert result.cursor == '{"1": {"seen": "abc"}}' and result.run_requests == []
