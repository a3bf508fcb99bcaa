"""A killed in-process run gives its ``ace_heavy`` slot back.

The demo (``run_demo``) is killed with SIGKILL in the middle of a heavy step, as a user
closing a notebook or the machine's OOM killer would. A second in-process run that needs
the pool then waits (without burning a core) until the ``release_dead_runs`` sensor ticks,
and completes; a line run started afterwards completes without help.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log.base import EventLogStorage

from ace_assets.definitions import all_assets
from ace_assets.defs.line_assets import HEAVY_POOL
from ace_assets.defs.line_runs import materialize_line
from ace_assets.defs.resources import PathsResource
from ace_assets.defs.run_health import release_dead_runs_sensor
from ace_assets.run_demo import write_instance_config
from ace_assets_tests.helpers.paths import REPO

pytestmark = pytest.mark.slow  # starts and kills processes

#: A waiting run may check for a slot now and then; a spinning one uses most of a core.
MAX_CPU_FRACTION_WHILE_BLOCKED = 0.25


def _wait_for(predicate, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kill_demo_in_a_heavy_step(
    env: dict[str, str], folders: list[Path], storage: EventLogStorage
) -> None:
    """Start ``run_demo`` on line 2 and SIGKILL it once it holds the heavy pool's slot."""
    project, data, results = (str(f) for f in folders)
    demo = subprocess.Popen(
        [sys.executable, "-m", "ace_assets.run_demo", "--project", project, "--data", data,
         "--results", results, "--lines", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(
            lambda: demo.poll() is None and storage.get_concurrency_info(HEAVY_POOL).claimed_slots,
            "the demo to enter a heavy step",
        )
    finally:
        demo.send_signal(signal.SIGKILL)
        demo.wait()


def _blocked_runs(instance: dg.DagsterInstance) -> int:
    """Runs that logged a step blocked by a pool."""
    return sum(
        any("blocked" in (r.message or "") for r in instance.all_logs(run.dagster_run.run_id))
        for run in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    )


def test_killed_in_process_run_frees_the_heavy_pool(
    demo_project: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    write_instance_config(home)  # what run_demo deploys: one heavy step at a time
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    env = {**os.environ, "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(home)}
    results = tmp_path / "results"
    instance = dg.DagsterInstance.get()
    storage = instance.event_log_storage
    kill_demo_in_a_heavy_step(env, [demo_project, demo_data, results], storage)
    (dead,) = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    assert _blocked_runs(instance) == 0
    assert [s.run_id for s in storage.get_concurrency_info(HEAVY_POOL).claimed_slots] == [
        dead.dagster_run.run_id
    ]

    # a notebook's run and a run worker's multiprocess run need the pool: they wait, quietly
    waiters = {
        executor: (
            tmp_path / f"{executor}_ran",
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ace_assets_tests.helpers.pool_wait",
                    str(tmp_path / f"{executor}_ran"),
                    executor,
                ],
                env=env,
            ),  # fmt: skip
        )
        for executor in ("in_process", "multiprocess")
    }
    try:
        _wait_for(
            lambda: _blocked_runs(instance) == 2,
            "both waiting runs to report that their step is blocked by the pool",
        )
        cpu0 = {e: _cpu_seconds(p.pid) for e, (_, p) in waiters.items()}
        t0 = time.monotonic()
        time.sleep(8.0)
        elapsed = time.monotonic() - t0
        for executor, (marker, proc) in waiters.items():
            cpu = (_cpu_seconds(proc.pid) - cpu0[executor]) / elapsed
            assert not marker.exists() and proc.poll() is None, f"{executor}: ran on a held slot"
            assert cpu < MAX_CPU_FRACTION_WHILE_BLOCKED, (
                f"blocked {executor} run used {cpu:.0%} of a core"
            )

        # the sensor tick marks the dead run failed and frees its slot; the waiters finish
        tick = release_dead_runs_sensor(dg.build_sensor_context(instance=instance))
        assert dead.dagster_run.run_id[:8] in tick.skip_message
        for executor, (marker, proc) in waiters.items():
            assert proc.wait(timeout=180) == 0 and marker.exists(), executor
    finally:
        for _, proc in waiters.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    failed = instance.get_run_by_id(dead.dagster_run.run_id)
    assert failed is not None and failed.status == dg.DagsterRunStatus.FAILURE
    assert not storage.get_concurrency_info(HEAVY_POOL).claimed_slots

    # kill again; this time the next in-process line run frees the slot itself
    kill_demo_in_a_heavy_step(env, [demo_project, demo_data, results], storage)
    paths = PathsResource(
        project_path=str(demo_project), data_path=str(demo_data), results_path=str(results)
    )
    line = materialize_line(all_assets, paths=paths, line="2", instance=instance, log_level="ERROR")
    assert line.success
    assert "miniscope_sources" in line.materialized()
    assert not storage.get_concurrency_info(HEAVY_POOL).claimed_slots
