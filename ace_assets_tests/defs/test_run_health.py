"""Which STARTED runs are dead: gone, zombie or reused pids on this host; never a live run or
another machine's."""

from __future__ import annotations

import subprocess
import time

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.utils import make_new_run_id

from ace_assets.defs import run_health
from ace_assets.defs.run_health import HOST_TAG, local_run_tags, release_dead_runs


def _started_run(instance: dg.DagsterInstance, pid: int, tags: dict[str, str]) -> str:
    run = instance.add_run(DagsterRun(job_name="process_line", run_id=make_new_run_id(), tags=tags))
    event = DagsterEvent(DagsterEventType.RUN_START.value, job_name="process_line", pid=pid)
    instance.report_dagster_event(event, run.run_id)
    return run.run_id


def _gone_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def test_only_dead_runs_of_this_host_are_released(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_health, "PID_REUSE_SLACK_S", 0.0)
    with dg.instance_for_test() as instance:
        here = local_run_tags()
        dead = _started_run(instance, _gone_pid(), here)
        live = _started_run(instance, subprocess.os.getpid(), here)
        elsewhere = _started_run(instance, _gone_pid(), {HOST_TAG: "another-machine"})
        released = {r.run_id: r for r in release_dead_runs(instance)}
        assert set(released) == {dead}
        assert "is gone" in released[dead].message
        assert _status(instance, dead) == dg.DagsterRunStatus.FAILURE
        assert _status(instance, live) == dg.DagsterRunStatus.STARTED
        assert _status(instance, elsewhere) == dg.DagsterRunStatus.STARTED
        assert release_dead_runs(instance) == []  # a failed run is not released twice


def test_a_pid_taken_by_a_process_started_after_the_run_is_not_its_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run_health, "PID_REUSE_SLACK_S", 0.0)
    run_started = time.time()
    time.sleep(1.5)  # /proc start times are exact to the boot time's whole second
    later = subprocess.Popen(["sleep", "30"])
    try:
        assert not run_health._alive(later.pid, since=run_started)  # a reused pid
        assert run_health._alive(later.pid, since=time.time())
    finally:
        later.kill()
        later.wait()
    assert not run_health._alive(later.pid, since=time.time())  # reaped: gone
