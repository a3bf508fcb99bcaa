"""Through Dagster: edf_file of the demo's lines, read back with edfio.

Line 3 (ephys only, a 0.25 s recording pause) runs as the line job does; line 1 (TTL pulses,
analysis periods) and line 2 (Miniscope only: not applicable) run the ephys side only.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import edfio
import numpy as np
import pandas as pd
import pytest

from ace_assets.definitions import all_assets
from ace_assets.io.store import ArrayStore
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.projects import catalog_read, lab_paths

EPHYS_SIDE = ("session_files", "analysis_parameters", "ephys_channels", "edf_file")


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory, demo_data: Path):
    from ace_assets.defs.line_runs import materialize_line

    paths = lab_paths(tmp_path_factory.mktemp("edf_asset"), demo_data, lines=[1, 2, 3])
    with catalog_read(all_assets, paths) as instance:
        run = materialize_line(all_assets, paths=paths, line="3", instance=instance)
        assert run.success, failure_text(run.runs[-1]) if run.runs else ""
        results = {}
        for line in ("1", "2"):
            results[line] = dg.materialize(
                all_assets,
                selection=dg.AssetSelection.assets(*EPHYS_SIDE),
                partition_key=line,
                instance=instance,
                resources={"paths": paths},
            )
        yield Path(paths.results), results


def _manifest(results: Path, line: int, asset: str) -> dict:
    return json.loads((results / f"line_{line}" / asset / "manifest.json").read_text())


def test_line_3_reads_back_within_resolution_with_the_pause_in_place(lines) -> None:
    results, _ = lines
    m = _manifest(results, 3, "edf_file")
    store = ArrayStore(_manifest(results, 3, "ephys_channels")["store"])
    read = edfio.read_edf(m["edf"])
    fs = float(store.meta["sampling_rate_hz"])
    assert read.signals[0].sampling_frequency == fs == m["sampling_rate_hz"]
    (seg0, seg1) = store.meta["segments"]
    (pause,) = store.meta["gaps"]
    assert not pause["filled"] and pause["duration_s"] == pytest.approx(0.25, abs=1e-3)
    after = int(round(seg1["t_start_s"] * fs))
    assert after - seg0["stop_index"] == round(pause["duration_s"] * fs)  # the pause kept
    x = store.read().astype(np.float64) * 1e6
    for c, channel in enumerate(m["channels"]):
        got = read.signals[c].data
        step = channel["resolution_uV"]
        assert step < 0.05  # µV per digital unit on a ±300 µV demo recording
        np.testing.assert_allclose(got[: seg0["stop_index"]], x[: seg0["stop_index"], c], atol=step)
        n1 = seg1["stop_index"] - seg1["start_index"]
        np.testing.assert_allclose(got[after : after + n1], x[seg1["start_index"] :, c], atol=step)
    skips = [(a.onset, a.duration) for a in read.annotations if a.text == "BAD_ACQ_SKIP"]
    assert skips[0] == (pytest.approx(pause["start_s"]), pytest.approx(0.25, abs=1e-3))
    events = pd.read_csv(_manifest(results, 3, "ephys_channels")["events_csv"])
    starts = [a.onset for a in read.annotations if a.text == "Starting Recording"]
    want = events.loc[events["string"] == "Starting Recording", "timestamp_s"]
    np.testing.assert_allclose(starts, want, atol=1e-6)
    assert m["timing_error_max_ms"] < 1e3 / fs


def test_emg_labelled_and_the_catalog_in_the_header(lines) -> None:
    results, _ = lines
    m = _manifest(results, 3, "edf_file")
    read = edfio.read_edf(m["edf"])
    labels = [s.label for s in read.signals]
    assert m["emg_label"] == "EMG" and m["channel_of_label"]["EMG"] == "EMG"
    assert [lb.split()[0] for lb in labels] == ["EEG", "EEG", "EMG"]
    assert read.patient.code == "DemoRat"
    assert read.recording.startdate.isoformat() == "2024-01-03"
    assert "drug=isoflurane" in read.recording.additional
    assert read.startdate.isoformat() == "2024-01-03" and m["start_from"] == "TimeCreated"


def test_line_1_ttl_pulses_and_analysis_periods(lines) -> None:
    results, runs = lines
    assert runs["1"].success
    m = _manifest(results, 1, "edf_file")
    read = edfio.read_edf(m["edf"])
    events = pd.read_csv(_manifest(results, 1, "ephys_channels")["events_csv"])
    rising = events.loc[events["ttl"] == 1, "timestamp_s"].to_numpy()
    got = np.array([a.onset for a in read.annotations if a.text == "TTL 0x0001"])
    assert rising.size > 100
    np.testing.assert_allclose(got, rising, atol=1e-6)
    periods = {a.text: (a.onset, a.duration) for a in read.annotations if "period" in a.text}
    assert periods == {  # demo row of line 1: [[2.5, 12.5]] and [[12.5, 22.5]], zero time 0
        "high slow wave power period": (2.5, 10.0),
        "control period": (12.5, 10.0),
    }


def test_a_miniscope_only_line_is_not_applicable(lines) -> None:
    results, runs = lines
    event = next(
        e
        for e in runs["2"].get_asset_materialization_events()
        if e.asset_key.to_user_string() == "edf_file"
    )
    meta = event.materialization.metadata
    assert meta["status"].value == "not applicable"
    assert meta["reason"].value == "no ephys recording"
    assert not (results / "line_2" / "edf_file").exists()
