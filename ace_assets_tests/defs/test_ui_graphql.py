"""The UI's own API, against a real dagster-webserver and dagster-daemon on loopback.

A lab project set up the way a deployment does it (ACE_* variables in the service's
environment, nothing passed per run) is picked up by the ``new_recordings`` sensor that
the daemon ticks; the runs it launches read that project; and the per-line status of a
check is visible for two lines with different outcomes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from ace_assets.defs.resources import DEMO_PROJECT, REPO_ROOT

pytestmark = pytest.mark.slow  # starts processes; the inner loop skips it

MINISCOPE_LINE = "miniscope/DemoRat/2024_01_02/12_00_00"
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab(root: Path, demo_data: Path) -> dict[str, str]:
    """Lines 7 and 8 (two copies of the demo's Miniscope recording); line 8 bounds motion at
    1 px, so its motion check fails while line 7's passes."""
    project, data = root / "lab", root / "raw"
    project.mkdir()
    old = time.time() - 600
    for day in ("day1", "day2"):
        shutil.copytree(demo_data / MINISCOPE_LINE, data / "rat9" / day)
    for f in data.rglob("*"):
        os.utime(f, (old, old))
    (project / "experiments.csv").write_text(
        "line number,id,date (YYMMDD),calcium imaging directory,ephys directory,"
        "emg channel,events filename,LFP and EEG CSCs\n"
        "7,Rat9,240102,rat9/day1,NA,NA,NA,NA\n8,Rat9,240103,rat9/day2,NA,NA,NA,NA\n"
    )
    lines = (DEMO_PROJECT / "analysis_parameters.csv").read_text().splitlines()
    header, row = lines[0], next(r for r in lines if r.startswith("2,"))
    cols = header.split(",")
    assert cols[cols.index("max_shifts")] == "max_shifts"
    seven = row.replace("2,", "7,", 1)
    eight = row.replace("2,", "8,", 1).replace('"(8, 8)"', '"(1, 1)"', 1)
    assert eight != row.replace("2,", "8,", 1)  # the demo row bounds motion at (8, 8)
    (project / "analysis_parameters.csv").write_text("\n".join([header, seven, eight]) + "\n")
    return {
        "ACE_PROJECT_PATH": str(project),
        "ACE_DATA_PATH": str(data),
        "ACE_RESULTS_PATH": str(root / "results"),
    }


class GraphQL:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/graphql"

    def __call__(self, query: str, **variables) -> dict:
        body = json.dumps({"query": query, "variables": variables}).encode()
        req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                out = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # GraphQL validation errors come back as 400
            raise AssertionError(exc.read().decode()[:2000]) from None
        assert "errors" not in out, out["errors"]
        return out["data"]


def _wait(what: str, probe, timeout: float, every: float = 3.0):
    end = time.time() + timeout
    while time.time() < end:
        value = probe()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture()
def services(tmp_path: Path, demo_data: Path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # create the SQLite storages (and their migration stamps) once, as `dagster dev` and
    # run_demo do before anything else starts: processes that each create a fresh storage
    # at the same moment can stamp it twice ("more than one head present")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
        instance.event_log_storage.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.RUN_START), limit=1
        )
        instance.schedule_storage.all_instigator_state()  # type: ignore[union-attr]
    env = {**os.environ, "DAGSTER_HOME": str(home), **_lab(tmp_path, demo_data)}
    port = _free_port()
    logs = [open(tmp_path / f"{name}.log", "w") for name in ("webserver", "daemon")]
    procs = [
        subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
            + ["-w", "workspace.yaml"],
            cwd=REPO_ROOT,
            env=env,
            stdout=logs[0],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
        subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=REPO_ROOT,
            env=env,
            stdout=logs[1],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    ]
    gql = GraphQL(port)

    def up():
        try:
            return gql("{ version }")
        except OSError:
            return None

    try:
        _wait("the webserver", up, 120, 1.0)
        yield gql, env, tmp_path
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        for f in logs:
            f.close()


def test_sensor_runs_use_the_deployment_project_and_checks_show_per_line(services) -> None:
    gql, env, tmp = services

    def loaded():
        entry = gql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {"
            " __typename ... on RepositoryLocation { repositories { name } }"
            " ... on PythonError { message } } } } } }"
        )["workspaceOrError"]["locationEntries"][0]
        found = entry["locationOrLoadError"]
        assert found is None or found["__typename"] != "PythonError", found
        return entry if found else None

    repo = _wait("the code location to load", loaded, 180, 2.0)
    location = repo["name"]
    repository = repo["locationOrLoadError"]["repositories"][0]["name"]

    # the resource config the UI shows comes from the deployment's environment
    resources = gql(
        "query($s: ResourceSelector!) { topLevelResourceDetailsOrError(resourceSelector: $s) {"
        " ... on ResourceDetails { configFields { name description }"
        " configuredValues { key value type } } } }",
        s={
            "repositoryLocationName": location,
            "repositoryName": repository,
            "resourceName": "paths",
        },
    )["topLevelResourceDetailsOrError"]
    configured = {v["key"]: v for v in resources["configuredValues"]}
    assert configured["project_path"]["type"] == "ENV_VAR"
    assert configured["project_path"]["value"] == "ACE_PROJECT_PATH"
    assert all(f["description"] for f in resources["configFields"])

    started = gql(
        "mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) {"
        " ... on Sensor { sensorState { status } } ... on PythonError { message } } }",
        s={
            "repositoryLocationName": location,
            "repositoryName": repository,
            "sensorName": "new_recordings",
        },
    )["startSensor"]
    assert started.get("sensorState", {}).get("status") == "RUNNING", started

    runs_query = (
        '{ runsOrError(filter: {tags: [{key: "ace/trigger", value: "new_recordings"}]}) {'
        " ... on Runs { results { runId status tags { key value } } } } }"
    )

    def finished():
        runs = gql(runs_query)["runsOrError"]["results"]
        done = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
        return runs if len(runs) == 2 and len(done) == 2 else None

    runs = _wait("two sensor runs to finish", finished, 900, 5.0)
    by_line = {}
    for run in runs:
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags["ace/project_path"] == env["ACE_PROJECT_PATH"]
        assert tags["ace/data_path"] == env["ACE_DATA_PATH"]
        by_line[tags["dagster/partition"]] = run["status"]
    assert by_line == {"7": "SUCCESS", "8": "FAILURE"}
    # the runs read the lab's project and wrote where the deployment says
    results = Path(env["ACE_RESULTS_PATH"])
    assert (results / "line_7" / "miniscope_sources" / "manifest.json").is_file()
    assert (results / "line_8" / "motion_corrected_movie" / "manifest.json").is_file()

    checks = gql(
        '{ assetNodes(assetKeys: [{path: ["motion_corrected_movie"]}]) { assetChecksOrError {'
        " ... on AssetChecks { checks { name description partitionStatuses {"
        " ... on AssetCheckDefaultPartitionStatuses { succeededPartitions failedPartitions }"
        " } } } } } }"
    )["assetNodes"][0]["assetChecksOrError"]["checks"]
    motion = next(c for c in checks if c["name"] == "motion_within_max_shifts")
    assert "max_shifts" in motion["description"]
    assert motion["partitionStatuses"]["succeededPartitions"] == ["7"]
    assert motion["partitionStatuses"]["failedPartitions"] == ["8"]
