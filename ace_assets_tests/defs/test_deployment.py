"""A lab's own project, configured once for the deployment, is what sensor and automation runs use."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest

from ace_assets.defs import assets as defs_assets
from ace_assets.defs.partitions import LINE_PARTITIONS_NAME
from ace_assets.defs.resources import DEMO_PROJECT, DEPLOYMENT_ENV

pytestmark = pytest.mark.slow  # sensor and automation runs, as the daemon starts them

MINISCOPE_LINE = "miniscope/DemoRat/2024_01_02/12_00_00"


@pytest.fixture()
def lab(tmp_path: Path, demo_data: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A lab project (line 7 = the demo's Miniscope-only recording, two components rejected)
    with its own data and results folders, set through the deployment's ACE_* variables."""
    project, data, results = tmp_path / "lab", tmp_path / "raw", tmp_path / "out"
    project.mkdir()
    shutil.copytree(demo_data / MINISCOPE_LINE, data / "rat9" / "day1", dirs_exist_ok=True)
    old = time.time() - 600  # copied long ago: settled
    for f in (data / "rat9").rglob("*"):
        os.utime(f, (old, old))
    (project / "experiments.csv").write_text(
        "line number,id,date (YYMMDD),calcium imaging directory,ephys directory,"
        "emg channel,events filename,LFP and EEG CSCs\n7,Rat9,240102,rat9/day1,NA,NA,NA,NA\n"
    )
    demo_params = (DEMO_PROJECT / "analysis_parameters.csv").read_text().splitlines()
    row = next(r for r in demo_params if r.startswith("2,"))
    (project / "analysis_parameters.csv").write_text(
        demo_params[0] + "\n" + row.replace("2,", "7,", 1).replace("2024_01_02", "x") + "\n"
    )
    (project / "curation.csv").write_text('line number,rejected component ids\n7,"[3, 7]"\n')
    for field, value in (("project_path", project), ("data_path", data), ("results_path", results)):
        monkeypatch.setenv(DEPLOYMENT_ENV[field], str(value))
    return {"project": project, "data": data, "results": results}


def _events(result: dg.ExecuteInProcessResult, asset: str) -> dg.AssetMaterialization:
    return next(
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset
    )


def test_sensor_and_automation_runs_use_the_deployment_paths_and_curation(lab) -> None:
    from ace_assets.definitions import build_definitions

    defs = build_definitions()
    job = defs.resolve_job_def("process_line")
    assert job.tags["ace/project_path"] == str(lab["project"])
    with dg.instance_for_test() as instance:
        # the sensor reads the lab's catalog and data with the code location's own resource
        cursor = None
        sensor = defs.get_repository_def().get_sensor_def("new_recordings")
        for _ in range(2):
            context = dg.build_sensor_context(
                instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
            )
            tick = sensor(context)
            for req in tick.dynamic_partitions_requests or []:
                instance.add_dynamic_partitions(LINE_PARTITIONS_NAME, list(req.partition_keys))
            cursor = tick.cursor
        (request,) = tick.run_requests
        assert request.partition_key == "7"
        assert request.tags["ace/data_path"] == str(lab["data"])
        run = job.execute_in_process(
            instance=instance, partition_key="7", tags=request.tags, raise_on_error=False
        )
        assert run.success
        events = _events(run, "calcium_events")
        assert events.metadata["components_rejected"].value == "[3, 7]"
        manifest = json.loads((lab["results"] / "line_7/calcium_events/manifest.json").read_text())
        assert manifest["rejected_ids"] == [3, 7]
        assert run.dagster_run.tags["ace/project_path"] == str(lab["project"])

        # a sensor switched on afresh does not process the unchanged recording again
        fresh = None
        for _ in range(2):
            fresh = sensor(
                dg.build_sensor_context(
                    instance=instance,
                    cursor=fresh.cursor if fresh else None,
                    definitions=defs,
                    resources=defs.resources,
                )
            )
            assert fresh.run_requests == []

        # the sensor's run was the whole line: automation finds nothing left to do
        quiet = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert quiet.total_requested == 0, [r.asset_selection for r in quiet.run_requests]

        # edited settings of line 7: the automation re-runs its analysis, in one run, with the
        # deployment's paths (the curation is read again from the lab's project folder)
        implicit = defs.resolve_implicit_global_asset_job_def()
        assert implicit.execute_in_process(
            instance=instance,
            partition_key="7",
            asset_selection=[dg.AssetKey("analysis_parameters")],
            run_config={
                "ops": {"analysis_parameters": {"config": {"overrides": {"event_height": "4"}}}}
            },
        ).success
        evaluation = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=quiet.cursor
        )
        requested = {
            key: evaluation.get_requested_partitions(key)
            for key in defs.resolve_asset_graph().get_all_asset_keys()
        }
        selection = [k for k, parts in requested.items() if parts]
        assert all(requested[k] == {"7"} for k in selection)  # this line only
        assert dg.AssetKey("calcium_events") in selection
        assert dg.AssetKey("analysis_parameters") not in selection
        tags = {
            "ace/trigger": "follow_upstream",
            **defs.resolve_sensor_def("follow_upstream").run_tags,
        }
        follow = implicit.execute_in_process(
            instance=instance,
            partition_key="7",
            asset_selection=selection,
            tags=tags,
        )
        assert follow.success
        assert _events(follow, "calcium_events").metadata["event_height_sd"].value == 4.0
        assert _events(follow, "calcium_events").metadata["components_rejected"].value == "[3, 7]"
        assert follow.dagster_run.tags["ace/project_path"] == str(lab["project"])


def test_code_location_loads_every_asset_module_with_source_links() -> None:
    """Assets are found by walking ``defs/assets``; each links to its own body in the UI."""
    from ace_assets.definitions import all_assets, defs

    modules = {p.stem for p in (Path(defs_assets.__file__).parent).glob("*.py")} - {"__init__"}
    assert modules == {
        "catalog", "session", "movie", "calcium", "ephys", "multimodal", "coupling", "edf", "nwb",
        "cohort", "registration",
    }  # fmt: skip
    assert {a.key for a in all_assets} == set(defs.resolve_asset_graph().get_all_asset_keys())
    for a in all_assets:
        (ref,) = a.metadata_by_key[a.key]["dagster/code_references"].code_references
        source = Path(ref.file_path)
        assert source.parent == Path(defs_assets.__file__).parent, (a.key, source)
        lines = source.read_text().splitlines()[ref.line_number - 1 : ref.line_number + 15]
        assert lines[0].startswith("@"), (a.key, lines[0])  # the decorator above the body
        assert any(x.startswith(f"def {a.key.path[-1]}(") for x in lines), a.key


def test_no_asset_name_is_spelled_outside_its_own_module() -> None:
    """Assets name their upstream as typed inputs, not as strings (``defs/`` holds no
    quoted asset name except in the module that defines the asset)."""
    import re

    from ace_assets.definitions import all_assets

    home = {
        a.key.path[-1]: Path(
            a.metadata_by_key[a.key]["dagster/code_references"].code_references[0].file_path
        )
        for a in all_assets
    }
    quoted = re.compile(r"[\"'](" + "|".join(home) + r")[\"']")
    defs_dir = Path(defs_assets.__file__).parents[1]
    stray = [
        f"{path.relative_to(defs_dir)}: {m.group(1)}"
        for path in defs_dir.rglob("*.py")
        for m in quoted.finditer(path.read_text())
        if path.resolve() != home[m.group(1)].resolve()
    ]
    assert not stray, stray
