"""The new-recordings sensor during an rsync copy: no run while it copies, one after."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from ace_assets.defs.resources import PathsResource
from ace_assets_tests.helpers.copiers import (
    EPHYS_DIR,
    EXPERIMENTS_CSV,
    rsync,
    source_files,
    write_source,
)
from ace_assets_tests.helpers.sensor_tick import tick as _tick


@pytest.mark.parametrize("stalls", [False, True])
def test_sensor_requests_one_run_only_after_the_copy(tmp_path: Path, stalls: bool) -> None:
    """The ephys files, the behaviour camera and the session's metaData.json land first, the
    Miniscope device folder last, small files before movies. ``stalls``: the copier pauses
    for a tick after every step, so each half-copied state is seen twice in a row."""
    source = write_source(tmp_path / "acquisition")
    order = sorted(
        source_files(source),
        key=lambda r: (
            not str(r).startswith(EPHYS_DIR),
            "/Miniscope/" in str(r),
            (source / r).stat().st_size,
        ),
    )
    project, data = tmp_path / "project", tmp_path / "data"
    project.mkdir()
    data.mkdir()
    (project / "experiments.csv").write_text(EXPERIMENTS_CSV)
    paths = PathsResource(
        project_path=str(project), data_path=str(data), results_path=str(tmp_path / "results")
    )
    requests: list[dg.RunRequest] = []
    cursor = None
    with dg.instance_for_test() as instance:
        for step in rsync(source, data, order):
            if step == "done":
                break
            for _ in range(2 if stalls else 1):
                result = _tick(instance, paths, cursor)
                cursor = result.cursor
                assert result.run_requests == [], f"a run was requested after: {step}"
                assert "line 1: " in result.skip_reason.skip_message
        for _ in range(4):  # the copy is done: seen twice, then requested once
            result = _tick(instance, paths, cursor)
            cursor = result.cursor
            requests += result.run_requests
    assert [r.partition_key for r in requests] == ["1"]
