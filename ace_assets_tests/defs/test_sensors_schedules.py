"""The new-recordings sensor and the nightly reconcile schedule, tick by tick."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from ace_assets.defs.partitions import LINE_PARTITIONS_NAME
from ace_assets.defs.resources import PathsResource
from ace_assets.defs.schedules import nightly_reconcile, stale_lines
from ace_assets_tests.helpers.sensor_tick import tick

HEADER = (
    "line number,id,date (YYMMDD),calcium imaging directory,ephys directory,"
    "emg channel,events filename,LFP and EEG CSCs\n"
)


def age(folder: Path, age_s: float) -> None:
    """Files and folders last changed ``age_s`` ago, as a finished copy that kept mtimes."""
    old = time.time() - age_s
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (old, old))


def land_miniscope(data: Path, rel: str, age_s: float = 600.0, n_frames: int = 20) -> None:
    """A real (tiny) V4 session: landing checks AVI headers against timeStamps.csv."""
    from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope
    from ace_assets.demo.miniscope_writer import write_v4_session

    synth = SyntheticMiniscope(
        MiniscopeSynthConfig(height=24, width=32, n_frames=n_frames, n_neurons=2, neuron_radius=2.0)
    )
    write_v4_session(data / rel, synth, frames_per_file=10, overwrite=True)
    age(data / rel, age_s)


def land_ephys(data: Path, rel: str, channels: list[str], age_s: float = 600.0) -> None:
    """Real Neuralynx files: landing checks each is a header plus whole records."""
    import numpy as np

    from ace_assets.demo.neuralynx_writer import write_ncs, write_nev

    (data / rel).mkdir(parents=True, exist_ok=True)
    for i, channel in enumerate(channels):
        samples = np.zeros(1024, np.int16)
        write_ncs(
            data / rel / f"{channel}.ncs", samples, 1000.0, channel_name=channel, channel_id=i
        )
    write_nev(data / rel / "Events.nev", np.array([100, 200]), np.array([1, 0]))
    age(data / rel, age_s)


@pytest.fixture()
def setup(tmp_path: Path):
    project, data = tmp_path / "project", tmp_path / "data"
    project.mkdir()
    data.mkdir()
    paths = PathsResource(
        project_path=str(project), data_path=str(data), results_path=str(tmp_path / "results")
    )
    return project, data, paths


def test_new_line_runs_once_half_landed_waits(setup) -> None:
    project, data, paths = setup
    (project / "experiments.csv").write_text(
        HEADER + "1,RatA,240101,ca/a,NA,NA,NA,NA\n2,RatB,240102,NA,ep/b,NA,Events.nev,LFP1;LFP2\n"
    )
    land_miniscope(data, "ca/a")
    land_ephys(data, "ep/b", ["LFP1"])  # LFP2 still copying
    with dg.instance_for_test() as instance:
        first = tick(instance, paths, None)
        # both lines become partitions at once, but nothing runs before a second look
        assert sorted(instance.get_dynamic_partitions(LINE_PARTITIONS_NAME)) == ["1", "2"]
        assert first.run_requests == []
        second = tick(instance, paths, first.cursor)
        assert [r.partition_key for r in second.run_requests] == ["1"]
        assert "LFP2.ncs" in first.skip_reason.skip_message  # the waiting line says why
        third = tick(instance, paths, second.cursor)
        assert third.run_requests == []  # repeated tick: no duplicate run

        land_ephys(data, "ep/b", ["LFP1", "LFP2"])  # the copy finished
        fourth = tick(instance, paths, third.cursor)
        assert fourth.run_requests == []  # seen once: still settling
        fifth = tick(instance, paths, fourth.cursor)
        assert [r.partition_key for r in fifth.run_requests] == ["2"]
        assert json.loads(fifth.cursor)["2"]["requested"]


def test_recent_files_are_not_processed_until_quiet(setup) -> None:
    project, data, paths = setup
    (project / "experiments.csv").write_text(HEADER + "1,RatA,240101,ca/a,NA,NA,NA,NA\n")
    land_miniscope(data, "ca/a", age_s=5)  # written seconds ago: the copy may be going on
    with dg.instance_for_test() as instance:
        first = tick(instance, paths, None)
        second = tick(instance, paths, first.cursor)
        assert second.run_requests == []
        assert "settling" in second.skip_reason.skip_message


def test_changed_recording_is_requested_again_with_a_new_run_key(setup) -> None:
    project, data, paths = setup
    (project / "experiments.csv").write_text(HEADER + "1,RatA,240101,ca/a,NA,NA,NA,NA\n")
    land_miniscope(data, "ca/a")
    with dg.instance_for_test() as instance:
        cursor = tick(instance, paths, None).cursor
        one = tick(instance, paths, cursor)
        land_miniscope(data, "ca/a", n_frames=30)  # a late movie file arrives
        two = tick(instance, paths, one.cursor)
        three = tick(instance, paths, two.cursor)
        keys = [r.run_key for r in one.run_requests + three.run_requests]
        assert len(keys) == 2 and keys[0] != keys[1]


def test_nightly_reconcile_requests_missing_and_changed_lines(setup) -> None:
    project, data, paths = setup
    (project / "experiments.csv").write_text(
        HEADER + "1,RatA,240101,ca/a,NA,NA,NA,NA\n2,RatB,240102,ca/b,NA,NA,NA,NA\n"
    )
    params = project / "analysis_parameters.csv"
    params.write_text('line number,gSig\n1,"(3, 3)"\n2,"(4, 4)"\n')
    results = Path(paths.results)
    for line, gsig in ((1, [3, 3]), (2, [4, 4])):
        manifest = results / f"line_{line}/analysis_parameters/manifest.json"
        manifest.parent.mkdir(parents=True)
        from ace_assets.catalog.parameters import read_parameter_table, resolve_parameters

        stored = resolve_parameters(read_parameter_table(params), line).to_json()
        assert stored["values"]["gSig"] == gsig
        manifest.write_text(json.dumps(stored))
    assert stale_lines(paths) == {}
    params.write_text('line number,gSig\n1,"(3, 3)"\n2,"(5, 5)"\n')  # line 2 edited
    (results / "line_1/analysis_parameters/manifest.json").unlink()  # line 1 never processed
    assert stale_lines(paths) == {1: "never processed", 2: "analysis parameters changed"}
    import datetime as dt

    context = dg.build_schedule_context(
        resources={"paths": paths}, scheduled_execution_time=dt.datetime(2026, 11, 26, 2)
    )
    requests = nightly_reconcile(context)
    assert [r.partition_key for r in requests] == ["1", "2"]
    # a truncated manifest (a disk filled up) costs only its line: rerun it, check the rest
    params.write_text('line number,gSig\n1,"(3, 3)"\n2,"(4, 4)"\n')
    stored = results / "line_2/analysis_parameters/manifest.json"
    (results / "line_1/analysis_parameters").mkdir(exist_ok=True)
    (results / "line_1/analysis_parameters/manifest.json").write_text(stored.read_text()[:40])
    assert list(stale_lines(paths)) == [1]
    assert "stored parameters unreadable" in stale_lines(paths)[1]


def test_runs_cover_the_whole_line_job(setup) -> None:
    """Sensor and schedule runs are whole ``process_line`` runs of one partition each: what a
    line has no recording for records "not applicable" inside the run (no second run)."""
    from ace_assets.definitions import defs

    project, data, paths = setup
    (project / "experiments.csv").write_text(
        HEADER + "1,RatA,240101,ca/a,NA,NA,NA,NA\n2,RatB,240102,NA,ep/b,NA,Events.nev,LFP1\n"
    )
    land_miniscope(data, "ca/a")
    land_ephys(data, "ep/b", ["LFP1"])
    with dg.instance_for_test() as instance:
        first = tick(instance, paths, None, defs)
        second = tick(instance, paths, first.cursor, defs)
    assert sorted(r.partition_key for r in second.run_requests) == ["1", "2"]
    assert all(r.asset_selection is None for r in second.run_requests)

    import datetime as dt

    context = dg.build_schedule_context(
        resources={"paths": paths},
        scheduled_execution_time=dt.datetime(2026, 11, 26, 2),
        repository_def=defs.get_repository_def(),
    )
    nightly = nightly_reconcile(context)
    assert sorted(r.partition_key for r in nightly) == ["1", "2"]
    assert all(r.asset_selection is None for r in nightly)
