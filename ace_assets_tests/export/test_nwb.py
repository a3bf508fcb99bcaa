"""The NWB writer on synthetic inputs: schema-valid, inspector-clean, read back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from nwbinspector import Importance, inspect_nwbfile
from pynwb import NWBHDF5IO, validate

from ace_assets.export.nwb import write_nwb
from ace_assets.export.nwb_common import time_args
from ace_assets.export.nwb_ephys import regular_start
from ace_assets_tests.helpers.nwb_synth import (
    ephys_inputs,
    frame_times,
    imaging_inputs,
    session_meta,
)

SERIOUS = {Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION}


def serious_messages(path: Path) -> list[str]:
    return [
        f"{m.importance.name} {m.check_function_name} {m.location}: {m.message}"
        for m in inspect_nwbfile(nwbfile_path=str(path))
        if m.importance in SERIOUS
    ]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("nwb_both")
    times = frame_times(600)
    ephys = ephys_inputs(
        root, seconds=25.0, fs=2000.0, n_channels=3, gap_after_s=10.0, frame_times=times, block=4096
    )
    imaging = imaging_inputs(root, n_frames=600, n_components=6, times=times, per_file=250)
    out = root / "out"
    out.mkdir()
    path = write_nwb(out / "line.nwb", session_meta(), imaging=imaging, ephys=ephys)
    return path, imaging, ephys


def test_file_is_schema_valid_and_inspector_clean(both) -> None:
    path, _, _ = both
    assert validate(path=str(path)) == []
    assert serious_messages(path) == []


def test_read_back_is_exact(both) -> None:
    path, imaging, ephys = both
    result = imaging.result
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        ophys = nwb.processing["ophys"]
        fluo = ophys["Fluorescence"]
        np.testing.assert_array_equal(fluo["denoised"].data[:], result.C.T)
        np.testing.assert_array_equal(fluo["raw"].data[:], result.C_raw.T)
        np.testing.assert_array_equal(ophys["Deconvolved"]["deconvolved"].data[:], result.S.T)
        np.testing.assert_array_equal(fluo["denoised"].timestamps[:], imaging.frame_times)
        movie = nwb.acquisition["raw_movie"]
        np.testing.assert_array_equal(movie.timestamps[:], imaging.frame_times)
        assert list(movie.starting_frame) == [0, 250, 500]
        assert [Path(f).name for f in movie.external_file[:]] == ["0.avi", "1.avi", "2.avi"]
        seg = ophys["ImageSegmentation"]["PlaneSegmentation"]
        assert list(seg.id[:]) == result.ids.tolist()
        dense = result.footprints()
        for k in range(result.n_components):
            got = np.zeros(result.dims, np.float32)
            for x, y, w in seg["pixel_mask"][k]:
                got[y, x] = w
            np.testing.assert_array_equal(got, dense[k])
        table = ophys["calcium_events"].to_dataframe()
        assert len(table) == len(imaging.events)
        np.testing.assert_array_equal(
            table["time"].to_numpy(), imaging.frame_times[imaging.events["frame"].to_numpy()]
        )
        series = nwb.processing["ecephys"]["FilteredEphys"]["filtered"]
        np.testing.assert_array_equal(series.data[:], ephys.store.read())
        # a pause in the recording: the per-sample times are written, as the clock gives them
        np.testing.assert_array_equal(
            series.timestamps[:], ephys.clock.times(0, ephys.store.n_frames)
        )
        electrodes = nwb.electrodes.to_dataframe()
        assert electrodes["channel_name"].tolist() == ephys.channel_names
        assert electrodes["is_emg"].tolist() == [False, False, True]
        ttl = nwb.events["nev_events"].to_dataframe()
        np.testing.assert_array_equal(ttl["timestamp"].to_numpy(), imaging.frame_times)
        assert (ttl["ttl"] == 1).all()
        assert nwb.subject.weight == "0.512 kg" and nwb.subject.subject_id == "SynthRat"
        assert list(nwb.experimenter) == ["Doe, Jane"]
        assert nwb.institution == "Synth University"
        assert "dexmedetomidine" in nwb.pharmacology and "0.5" in nwb.pharmacology
        params = nwb.analysis["analysis_parameters"].to_dataframe()
        assert dict(zip(params["setting"], params["value"], strict=True))["event_height"] == "3.0"


def test_one_modality_files_are_valid(tmp_path: Path) -> None:
    times = frame_times(200, start_s=0.0)
    imaging = imaging_inputs(tmp_path, n_frames=200, n_components=3, times=times)
    ephys = ephys_inputs(tmp_path, seconds=4.0, fs=1000.0, n_channels=2)
    for name, kwargs in (("imaging", {"imaging": imaging}), ("ephys", {"ephys": ephys})):
        path = write_nwb(tmp_path / f"{name}.nwb", session_meta(), **kwargs)
        assert validate(path=str(path)) == []
        assert serious_messages(path) == []
        with NWBHDF5IO(str(path), "r") as io:
            nwb = io.read()
            assert ("ecephys" in nwb.processing) == (name == "ephys")
            assert ("ophys" in nwb.processing) == (name == "imaging")
            if name == "ephys":
                series = nwb.processing["ecephys"]["FilteredEphys"]["filtered"]
                # no pause, records on the nominal grid: a rate, not 4000 timestamps
                assert series.timestamps is None and series.rate == 1000.0
                np.testing.assert_array_equal(series.data[:], ephys.store.read())


def test_nothing_to_export_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to export"):
        write_nwb(tmp_path / "x.nwb", session_meta())


def test_regular_times_become_a_rate_and_jitter_stays_timestamps(tmp_path: Path) -> None:
    assert time_args(np.arange(10) / 30.0) == {"starting_time": 0.0, "rate": 30.0}
    jittered = frame_times(10)
    np.testing.assert_array_equal(time_args(jittered)["timestamps"], jittered)
    regular = ephys_inputs(tmp_path / "a", seconds=1.0, fs=1000.0, n_channels=1).clock
    paused = ephys_inputs(
        tmp_path / "b", seconds=1.0, fs=1000.0, n_channels=1, gap_after_s=0.5
    ).clock
    assert regular_start(regular) == 0.0
    assert regular_start(paused) is None
