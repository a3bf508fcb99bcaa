"""Runs whose process died must not keep their pool slots.

A run killed with ``kill -9`` never reports its end: Dagster keeps it STARTED and keeps the
``ace_heavy`` slot it claimed, so every later heavy step waits for ever. Run monitoring frees
slots of runs that *ended*; this module ends the runs whose worker process is gone. A run's
worker pid is in its RUN_START event; the host is the ``ace/host`` tag, or, for an
untagged run, this machine when the instance's storage is a local SQLite file (which no
other machine writes).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from ace_assets.defs.line_assets import HEAVY_POOL

HOST_TAG = "ace/host"
#: Pools the project's heavy steps use, and the slot count each gets when the instance
#: config sets none (``concurrency.pools.default_limit``).
PROJECT_POOLS = (HEAVY_POOL,)
#: A process that started after its run began is another process that reused the pid.
PID_REUSE_SLACK_S = 2.0


def local_run_tags() -> dict[str, str]:
    """Tags of a run whose worker is this process (in-process runs: demo, notebooks)."""
    return {HOST_TAG: socket.gethostname()}


def prepare_pools(instance: dg.DagsterInstance) -> dict[str, int]:
    """Give each project pool an explicit slot count before runs compete for it.

    Dagster allocates a pool's default slots on its first claim; two runs making that first
    claim at the same moment on a fresh SQLite instance each allocate one, and the pool then
    admits two heavy steps. Setting the count once, up front, closes that window.
    """
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    default = instance.global_op_concurrency_default_limit
    out: dict[str, int] = {}
    for pool in PROJECT_POOLS:
        info = storage.get_concurrency_info(pool)
        if info.slot_count == 0 and default:
            storage.set_concurrency_slots(pool, default)
        out[pool] = storage.get_concurrency_info(pool).slot_count
    return out


@dataclass(frozen=True)
class ReleasedRun:
    run_id: str
    pid: int
    host: str
    message: str


def release_dead_runs(instance: dg.DagsterInstance) -> list[ReleasedRun]:
    """Mark runs of this host whose worker process is gone as failed and free their slots."""
    here = socket.gethostname()
    local_storage = _is_local_sqlite(instance)
    released: list[ReleasedRun] = []
    records = instance.get_run_records(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING])
    )
    for record in records:
        run = record.dagster_run
        host = run.tags.get(HOST_TAG) or (here if local_storage else None)
        if host != here:
            continue  # another machine's run: its own monitoring decides
        pid = _worker_pid(instance, run.run_id)
        if pid is None or _alive(
            pid, since=record.start_time or record.create_timestamp.timestamp()
        ):
            continue
        message = (
            f"run worker process {pid} on {host} is gone (killed or crashed) while the run was "
            f"{run.status.value}; the run is marked failed and its pool slots are freed so "
            "waiting heavy steps can start. Re-run the line to produce its results."
        )
        instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(ReleasedRun(run.run_id, pid, host, message))
    return released


def _worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START):
        event = record.dagster_event
        if event is not None and event.pid:
            return int(event.pid)
    return None


def _alive(pid: int, *, since: float) -> bool:
    """Is ``pid`` a running (not zombie) process that started before the run did?"""
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    except OSError:
        return _signal_alive(pid)
    if fields[0] in ("Z", "X"):
        return False
    return _start_time(int(fields[19])) <= since + PID_REUSE_SLACK_S


def _start_time(ticks_since_boot: int) -> float:
    boot = next(
        float(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    return boot + ticks_since_boot / os.sysconf("SC_CLK_TCK")


def _signal_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_local_sqlite(instance: dg.DagsterInstance) -> bool:
    return "sqlite" in type(instance.run_storage).__name__.lower()


def describe(released: Iterable[ReleasedRun]) -> str:
    return "; ".join(
        f"run {r.run_id[:8]} (pid {r.pid} on {r.host}) marked failed" for r in released
    )


@dg.sensor(
    name="release_dead_runs",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Every minute: runs on this server whose process was killed are marked failed and "
        "their pool slots freed, so no heavy step waits on a dead run. Also gives each "
        "project pool its slot count before runs compete for it."
    ),
)
def release_dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    prepare_pools(context.instance)
    released = release_dead_runs(context.instance)
    return dg.SkipReason(describe(released) or "no dead runs")
