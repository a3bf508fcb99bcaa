"""A backfill of every demo line through the real ``process_line`` job and the multiprocess executor.

What the backfill daemon does for a partitioned job: one run per partition, each launched
in its own process and running at the same time, each run executing its steps in child
processes (``ACE_MAX_CONCURRENT`` at a time). The runs go through the deployed code path:
``dg.reconstructable`` job, executor chosen from the environment, paths as run config, and a
persistent instance whose ``ace_heavy`` pool allows one movie-sized step at a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import dagster as dg
import pytest

from ace_assets.definitions import all_assets
from ace_assets.defs.executors import ENV_BROKER, ENV_CONFIG, ENV_MAX_CONCURRENT
from ace_assets.defs.line_assets import HEAVY_POOL
from ace_assets.defs.line_runs import applicable_partitions
from ace_assets.defs.partitions import LINE_PARTITIONS_NAME
from ace_assets.defs.resources import PathsResource
from ace_assets.defs.run_health import prepare_pools
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.paths import REPO
from ace_assets_tests.helpers.step_windows import max_overlap, step_windows

pytestmark = pytest.mark.slow  # starts processes; the inner loop skips it

HEAVY_STEPS = {
    a.key.to_user_string() for a in all_assets if getattr(a.node_def, "pool", None) == HEAVY_POOL
}

INSTANCE_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""


@pytest.mark.timeout(1800)  # six lines, heavy steps one at a time, on a shared 2-core machine
def test_backfill_of_all_demo_lines_with_the_multiprocess_executor(
    demo_project: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv(ENV_CONFIG, raising=False)
    monkeypatch.delenv(ENV_BROKER, raising=False)
    monkeypatch.setenv(ENV_MAX_CONCURRENT, "2")
    paths = {
        "project_path": str(demo_project),
        "data_path": str(demo_data),
        "results_path": str(tmp_path / "results"),
    }
    instance = dg.DagsterInstance.from_config(str(home))
    catalog = dg.materialize(
        all_assets,
        selection="experiments",
        instance=instance,
        resources={"paths": PathsResource(**paths)},
    )
    assert catalog.success, failure_text(catalog)
    lines = sorted(instance.get_dynamic_partitions(LINE_PARTITIONS_NAME), key=int)
    assert lines == ["1", "2", "3", "4", "5", "6"]
    # what the release_dead_runs sensor does each minute: give the pool its slot count up
    # front (six runs making the first claim at once would otherwise each allocate one)
    assert prepare_pools(instance) == {HEAVY_POOL: 1}

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # each run's output goes to files, not pipes: a pipe nobody is reading yet fills up,
    # and a run blocked writing its logs would hold the heavy slot the others wait for
    logs = tmp_path / "logs"
    logs.mkdir()
    launched = {}
    for line in lines:
        with (logs / f"{line}.out").open("w") as out, (logs / f"{line}.err").open("w") as err:
            launched[line] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ace_assets_tests.helpers.partition_run",
                    line,
                    json.dumps(paths),
                ],
                env=env,
                stdout=out,
                stderr=err,
                text=True,
            )
    windows: dict[str, dict[str, tuple[float, float, int]]] = {}
    for line, proc in launched.items():
        proc.wait(timeout=1700)
        out = (logs / f"{line}.out").read_text()
        err = (logs / f"{line}.err").read_text()
        assert proc.returncode == 0, f"line {line}:\n{out[-3000:]}\n{err[-3000:]}"
        run = json.loads(out.strip().splitlines()[-1])
        assert run["success"] and run["line"] == line
        windows[line] = step_windows(instance, run["run_id"])

    # every line got exactly the assets its recordings allow
    want = {
        "miniscope_results": {"1", "2", "4"},
        "calcium_events": {"1", "2", "4"},
        "ephys_results": {"1", "3", "4", "5", "6"},
        "ephys_spectrogram": {"1", "3", "4", "5", "6"},
        "multimodal_results": {"1", "4"},
    }
    for asset, partitions in want.items():
        assert applicable_partitions(instance, asset) == partitions, asset
        # the other lines hold a "not applicable" record, so no line shows as missing
        assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(lines), asset

    # steps ran in child processes, never in this one, and two at a time within a run
    pids_by_line = defaultdict(set)
    for line, steps in windows.items():
        pids_by_line[line] = {pid for _, _, pid in steps.values()}
        assert os.getpid() not in pids_by_line[line]
        assert len(pids_by_line[line]) == len(steps)  # one process per step
    # branches of a line overlap, never above 2 (which line's do depends on who holds the
    # heavy pool: with three movie lines, line 1's movie steps may wait out its ephys ones)
    overlaps = {
        line: max_overlap([(s, e) for s, e, _ in steps.values()]) for line, steps in windows.items()
    }
    assert max(overlaps.values()) == 2 and all(v <= 2 for v in overlaps.values()), overlaps

    # the runs really ran together, but the pool let one heavy step at a time across all runs
    everything = [(s, e) for steps in windows.values() for s, e, _ in steps.values()]
    assert max_overlap(everything) > 2
    heavy = [
        (s, e) for steps in windows.values() for k, (s, e, _) in steps.items() if k in HEAVY_STEPS
    ]
    assert all(HEAVY_STEPS <= set(windows[line]) for line in ("1", "2"))  # the movie lines
    assert max_overlap(heavy) == 1, sorted(heavy)

    # results computed out of process are the science, not just files
    sources = json.loads((tmp_path / "results/line_1/miniscope_sources/manifest.json").read_text())
    assert sources["ground_truth"]["recall"] >= 0.9, sources["ground_truth"]
