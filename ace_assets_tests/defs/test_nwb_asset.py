"""nwb_file on the demo lines: both modalities, Miniscope only, ephys only; read back exactly."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from pynwb import NWBHDF5IO, validate

from ace_assets.definitions import all_assets
from ace_assets.defs.assets.nwb import nwb_file
from ace_assets.defs.line_runs import materialize_line
from ace_assets.defs.manifests import asset_dir
from ace_assets.ephys.band_store import open_signal_store
from ace_assets.io.jsonio import read_json
from ace_assets.miniscope.extraction.result import apply_rejections, load_result
from ace_assets_tests.export.test_nwb import serious_messages
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.projects import catalog_read, lab_paths


def upstream_of(target: dg.AssetsDefinition) -> list[dg.AssetsDefinition]:
    """``target`` and everything it reads: the analyses no export needs are not run."""
    by_key = {a.key: a for a in all_assets}
    keep, todo = set(), [target.key]
    while todo:
        key = todo.pop()
        if key not in keep and key in by_key:
            keep.add(key)
            todo.extend(by_key[key].asset_deps[key])
    return [a for a in all_assets if a.key in keep]


@pytest.fixture(scope="module")
def exported(demo_data: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("nwb_asset")
    paths = lab_paths(root, demo_data, lines=[1, 2, 3])
    assets = upstream_of(nwb_file)
    with catalog_read(assets, paths) as instance:
        runs = {
            line: materialize_line(assets, paths=paths, line=line, instance=instance)
            for line in ("1", "2", "3")
        }
    return paths, runs


def manifest(paths, line: int, asset: str) -> dict:
    return read_json(asset_dir(paths, asset, line) / "manifest.json")


def nwb_path(paths, line: int) -> Path:
    return Path(manifest(paths, line, "nwb_file")["nwb"])


def test_every_line_exports_what_it_has(exported) -> None:
    paths, runs = exported
    for line, run in runs.items():
        assert run.success, failure_text(run)
        assert "nwb_file" in run.materialized(), line
        path = nwb_path(paths, int(line))
        assert path.parent == asset_dir(paths, "nwb_file", int(line))
        assert validate(path=str(path)) == []
        assert serious_messages(path) == []  # includes: the AVIs it names exist
        hidden = [p.name for p in path.parent.iterdir() if p.name.startswith(".")]
        assert hidden == []
    contents = {line: manifest(paths, int(line), "nwb_file")["contents"] for line in runs}
    assert contents == {"1": ["miniscope", "ephys"], "2": ["miniscope"], "3": ["ephys"]}


def curated(paths, line: int):
    sources = manifest(paths, line, "miniscope_sources")["sources"]
    rejected = manifest(paths, line, "calcium_events")["rejected_ids"]
    return apply_rejections(load_result(sources), rejected)


def test_both_modalities_on_the_ephys_clock(exported) -> None:
    paths, _ = exported
    result = curated(paths, 1)
    align = manifest(paths, 1, "multimodal_alignment")
    frame_times = np.load(align["frame_times"])["frame_times_s"] + align["zero_time_s"]
    filtered = open_signal_store(manifest(paths, 1, "filtered_ephys")["store"])
    events = pd.read_csv(manifest(paths, 1, "ephys_channels")["events_csv"])
    with NWBHDF5IO(str(nwb_path(paths, 1)), "r") as io:
        nwb = io.read()
        assert nwb.subject.subject_id == "DemoRat" and nwb.subject.weight == "0.512 kg"
        assert nwb.session_start_time.replace(tzinfo=None) == dt.datetime(2024, 1, 1, 12, 0)
        ophys = nwb.processing["ophys"]
        assert result.n_components > 0
        np.testing.assert_array_equal(ophys["Fluorescence"]["denoised"].data[:], result.C.T)
        np.testing.assert_array_equal(ophys["Fluorescence"]["raw"].data[:], result.C_raw.T)
        np.testing.assert_array_equal(ophys["Deconvolved"]["deconvolved"].data[:], result.S.T)
        np.testing.assert_array_equal(ophys["Fluorescence"]["denoised"].timestamps[:], frame_times)
        seg = ophys["ImageSegmentation"]["PlaneSegmentation"]
        assert list(seg.id[:]) == result.ids.tolist()
        a = result.A.tocsc()
        for k in range(result.n_components):
            mask = np.asarray(seg["pixel_mask"][k].tolist())
            pixels = (mask[:, 1] * result.dims[1] + mask[:, 0]).astype(int)
            np.testing.assert_array_equal(pixels, a.indices[a.indptr[k] : a.indptr[k + 1]])
            np.testing.assert_array_equal(
                mask[:, 2].astype(np.float32), a.data[a.indptr[k] : a.indptr[k + 1]]
            )
        series = nwb.processing["ecephys"]["FilteredEphys"]["filtered"]
        np.testing.assert_array_equal(series.data[:], filtered.read())
        electrodes = nwb.electrodes.to_dataframe()
        assert electrodes.loc[electrodes["is_emg"], "channel_name"].tolist() == ["EMG"]
        ttl = nwb.events["nev_events"].to_dataframe()
        np.testing.assert_array_equal(ttl["timestamp"].to_numpy(), events["timestamp_s"])
        # every frame lies within the ephys recording: one clock
        end = series.starting_time + len(series.data) / series.rate if series.rate else None
        if end is not None:
            assert 0 <= frame_times[0] and frame_times[-1] <= end


def test_miniscope_only_line_uses_the_camera_clock(exported) -> None:
    paths, _ = exported
    result = curated(paths, 2)
    with NWBHDF5IO(str(nwb_path(paths, 2)), "r") as io:
        nwb = io.read()
        assert "ecephys" not in nwb.processing and len(nwb.electrodes or []) == 0
        movie = nwb.acquisition["raw_movie"]
        assert sum(1 for _ in movie.external_file[:]) == len(movie.starting_frame)
        traces = nwb.processing["ophys"]["Fluorescence"]["denoised"]
        np.testing.assert_array_equal(traces.data[:], result.C.T)
        assert len(traces.timestamps[:]) == result.n_frames


def test_ephys_only_line_has_no_imaging(exported) -> None:
    paths, _ = exported
    filtered = open_signal_store(manifest(paths, 3, "filtered_ephys")["store"])
    with NWBHDF5IO(str(nwb_path(paths, 3)), "r") as io:
        nwb = io.read()
        assert "ophys" not in nwb.processing and "raw_movie" not in nwb.acquisition
        series = nwb.processing["ecephys"]["FilteredEphys"]["filtered"]
        np.testing.assert_array_equal(series.data[:], filtered.read())
