"""Through Dagster: a timeStamps.csv with a swap and a 5 s step back, repaired or refused.

A small Miniscope-only demo line whose timestamp table is edited the way the
fault-injection pass did it: two rows traded places and the clock stepped back 5 s.
"""

from __future__ import annotations

import csv
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from ace_assets.definitions import all_assets
from ace_assets.defs.resources import PathsResource
from ace_assets.io.store import load_npz
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


# --- multimodal_alignment: lost TTL pulses beside a swap of two timeStamps rows ---

ALIGN_ASSETS = ("session_files", "analysis_parameters", "ephys_channels", "multimodal_alignment")
LOST = (40, 41)  # frames whose TTL pulse is lost
ALIGN_SWAP = (40, 41)  # and whose timestamp rows traded places


@pytest.fixture(scope="module")
def swapped_line(tmp_path_factory: pytest.TempPathFactory):
    from ace_assets.demo.generate import LINE_DIRS, generate_demo, small_size

    root = tmp_path_factory.mktemp("alignment_faults")
    data = root / "data"
    generate_demo(data, size=small_size(n_neurons=4), lines=(1,))
    table = next((data / LINE_DIRS[1]["miniscope"]).rglob("timeStamps.csv"))
    with table.open(newline="") as fh:
        rows = list(csv.reader(fh))
    a, b = (i + 1 for i in ALIGN_SWAP)
    rows[a], rows[b] = rows[b], rows[a]
    with table.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    truth = load_npz(data / "truth" / "line_1.npz")
    spurious = sorted(int(i) for i in truth["spurious_ttl_indices"])
    n_raw = truth["frame_times_ephys_s"].size + len(spurious)
    real = [i for i in range(n_raw) if i not in spurious]  # raw edge index of each frame
    delete = sorted(spurious + [real[f] for f in LOST])
    paths = lab_paths(root, data, lines=[1])
    with catalog_read(all_assets, paths) as instance:
        yield paths, instance, {"indices of TTL events to delete": str(delete)}


def align(paths: PathsResource, instance, overrides: dict[str, str]):
    config = {"ops": {"analysis_parameters": {"config": {"overrides": overrides}}}}
    return dg.materialize(
        all_assets,
        selection=dg.AssetSelection.assets(*ALIGN_ASSETS),
        partition_key="1",
        instance=instance,
        resources={"paths": paths},
        run_config=config,
        raise_on_error=False,
    )


def test_lost_pulses_and_a_swap_align_within_tolerance_of_truth(swapped_line) -> None:
    paths, instance, overrides = swapped_line
    result = align(paths, instance, overrides)
    assert result.success, failure_text(result)
    meta = metadata(result, "multimodal_alignment")
    assert meta["swapped_rows"] == 1 and meta["repaired_frames"] == len(LOST)
    # every frame against the generator's truth, not only the worst one the asset reports
    folder = Path(paths.results) / "line_1" / "multimodal_alignment"
    times = load_npz(folder / "frame_times.npz")["frame_times_s"]
    truth = load_npz(Path(paths.data_path) / "truth" / "line_1.npz")["frame_times_ephys_s"]
    error_ms = np.abs(times - truth) * 1e3  # zero time is 0 in the demo row
    assert error_ms.max() == pytest.approx(meta["truth_max_frame_time_error_ms"], abs=1e-3)
    assert error_ms.max() < meta["alignment_tolerance_ms"] and error_ms.max() < 2.0  # was 34


def test_lost_pulses_and_a_swap_fail_naming_the_frames(swapped_line) -> None:
    paths, instance, overrides = swapped_line
    result = align(paths, instance, {**overrides, "timestamp_faults": "fail"})
    assert not result.success
    text = failure_text(result)
    assert "timeStamps.csv" in text and "[40, 41]" in text and "timestamp_faults" in text
