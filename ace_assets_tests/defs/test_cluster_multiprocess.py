"""One workstation: a backfill through the multiprocess executor capped at 2 concurrent steps.

A Dagster backfill of a partitioned job is one run per partition; inside each run the three
middle assets are ready together, so a working executor overlaps exactly two of them.
Asserted from the timestamps the steps write, never from wall time. The upstream raw_trace is
materialized in-process first: every spawned step costs seconds of imports on a shared box.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from ace_assets.defs.executors import (
    ENV_BROKER,
    ENV_CONFIG,
    ENV_MAX_CONCURRENT,
    executor_from_env,
)
from ace_assets.defs.resources import PathsResource
from ace_assets_tests.helpers import cluster_job as cj
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.step_windows import max_overlap

LINES = ["11", "12", "13"]


def test_max_overlap_counts_only_simultaneous_windows() -> None:
    assert max_overlap([(0, 1), (1, 2), (2, 3)]) == 1
    assert max_overlap([(0, 2), (1, 3), (1.5, 1.6)]) == 3
    assert max_overlap([(0, 2), (1, 3), (2.5, 4)]) == 2


@pytest.mark.slow  # spawns executor processes
def test_backfill_runs_steps_in_parallel_capped_at_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_CONFIG, raising=False)
    monkeypatch.delenv(ENV_BROKER, raising=False)
    monkeypatch.setenv(ENV_MAX_CONCURRENT, "2")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert executor_from_env().name == "local_x2"

    project, data, results = tmp_path / "project", tmp_path / "data", tmp_path / "results"
    project.mkdir()
    traces = cj.write_traces(data, LINES, seed=3)
    instance = cj.persistent_instance(tmp_path / "home", LINES)
    config = cj.run_config(project, data, results, sibling_wait_s=30.0, work_s=0.3)

    paths = PathsResource(project_path=str(project), data_path=str(data), results_path=str(results))
    for line in LINES:
        upstream = dg.materialize(
            [cj.raw_trace], partition_key=line, instance=instance, resources={"paths": paths}
        )
        assert upstream.success, failure_text(upstream)

    middle_keys = [dg.AssetKey(a) for a in cj.MIDDLE]
    for line in LINES:  # what the daemon does for a backfill: one run per partition
        result = dg.execute_job(
            dg.reconstructable(cj.line_job),
            instance=instance,
            run_config=config,
            tags={"dagster/partition": line},
            asset_selection=middle_keys,
        )
        assert result.success, failure_text(result)

    for line in LINES:
        rec = {a: cj.read_record(results, line, a) for a in cj.MIDDLE}
        want = cj.expected_summary(traces[line])
        assert rec["event_count"]["value"] == want["events"]
        assert rec["baseline"]["value"] == pytest.approx(want["baseline"])
        assert sum(rec["filtered_trace"]["value"]) == pytest.approx(want["filtered_sum"])

        # each step in its own process, none in the orchestrating (test) process
        pids = {r["pid"] for r in rec.values()}
        assert os.getpid() not in pids and len(pids) == len(cj.MIDDLE)

        windows = [(r["start"], r["end"]) for r in rec.values()]
        assert max_overlap(windows) == 2, windows  # parallel, and never above max_concurrent

    for key in middle_keys:
        assert instance.get_materialized_partitions(key) == set(LINES)
