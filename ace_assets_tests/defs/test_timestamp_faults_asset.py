"""Through Dagster: a timeStamps.csv with a swap and a 5 s step back, repaired or refused.

A small Miniscope-only demo line whose timestamp table is edited the way the
fault-injection pass did it: two rows traded places and the clock stepped back 5 s.
"""

from __future__ import annotations

import csv
from pathlib import Path

import dagster as dg
import pytest

from ace_assets.definitions import all_assets
from ace_assets.defs.resources import PathsResource
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.projects import catalog_read, lab_paths

LINE = "2"
SWAP = (30, 31)
STEP_AT = 80


def _edit_timestamps(path: Path) -> None:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    a, b = SWAP
    body[a], body[b] = body[b], body[a]
    for row in body[STEP_AT:]:
        row[1] = str(int(float(row[1])) - 5000)
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *body])


@pytest.fixture(scope="module")
def faulty_line(tmp_path_factory: pytest.TempPathFactory):
    from ace_assets.demo.generate import LINE_DIRS, generate_demo, small_size

    root = tmp_path_factory.mktemp("timestamp_faults")
    data = root / "data"
    generate_demo(data, size=small_size(n_neurons=4), lines=(2,))
    table = next((data / LINE_DIRS[2]["miniscope"]).rglob("timeStamps.csv"))
    _edit_timestamps(table)
    paths = lab_paths(root, data, lines=[LINE])
    with catalog_read(all_assets, paths) as instance:
        yield paths, instance, table


def run(paths: PathsResource, instance, overrides: dict[str, str]) -> dg.ExecuteInProcessResult:
    config = {"ops": {"analysis_parameters": {"config": {"overrides": overrides}}}}
    return dg.materialize(
        all_assets,
        selection=dg.AssetSelection.assets(
            "session_files", "analysis_parameters", "denoised_movie"
        ),
        partition_key=LINE,
        instance=instance,
        resources={"paths": paths},
        run_config=config,
        raise_on_error=False,
    )


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    event = next(
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset
    )
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def evaluation(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    return next(c for c in result.get_asset_check_evaluations() if c.check_name == name)


def test_repaired_and_reported_as_what_they_are(faulty_line) -> None:
    paths, instance, _ = faulty_line
    result = run(paths, instance, {"crop_coords": "None"})
    assert result.success, failure_text(result)
    for asset in ("session_files", "denoised_movie"):
        meta = metadata(result, asset)
        assert meta["dropped_frames"] == 0, asset  # formerly ~150 for the 5 s step
        assert meta["swapped_rows"] == 1 and meta["backward_jumps"] == 1, asset
        assert meta["duplicated_timestamps"] == 0, asset
    session = metadata(result, "session_files")
    assert session["swapped_rows_frames"] == list(SWAP)
    assert session["backward_jumps_frames"] == [STEP_AT]
    assert evaluation(result, "dropped_frames_below_threshold").passed
    order = evaluation(result, "timestamps_in_order")
    assert not order.passed and order.severity == dg.AssetCheckSeverity.WARN
    text = order.description or ""
    assert "[30, 31]" in text and "[80]" in text and "repaired" in text


def test_fail_mode_names_file_frames_and_parameter(faulty_line) -> None:
    paths, instance, table = faulty_line
    result = run(paths, instance, {"crop_coords": "None", "timestamp_faults": "fail"})
    assert not result.success
    text = failure_text(result)
    assert str(table) in text and "Time Stamp (ms)" in text
    assert "[30, 31]" in text and "[80]" in text
    assert "ops.analysis_parameters.config.overrides.timestamp_faults" in text
