"""Beyond one machine, for real: a broker, two Celery worker processes, a partitioned run.

Redis is started on a free loopback port (kombu's filesystem transport over a shared folder
when redis-server is not installed, or ACE_TEST_FILESYSTEM_BROKER=1; still separate worker
processes). A "workstation" worker (the README's `dagster-celery worker start`) consumes the
default queue; a "heavy" worker started by deploy/cluster/worker.sbatch consumes only
``ace_heavy``. The heavy asset's steps must land on the second, everything else on the
first, and none in this (orchestrating) process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import dagster_celery  # noqa: F401  (cluster extra, also in [dev]: fail loudly, never skip)
import pytest

from ace_assets.defs.executors import (
    DEFAULT_QUEUE,
    ENV_BROKER,
    ENV_CONFIG,
    HEAVY_QUEUE,
    celery_yaml_text,
)
from ace_assets_tests.helpers import cluster_job as cj
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.paths import REPO

pytestmark = pytest.mark.slow  # starts processes; the inner loop skips it

BIN = Path(sys.executable).parent
SBATCH = REPO / "deploy" / "cluster" / "worker.sbatch"
LINES = ["101", "102", "103"]
STARTUP_S = 120.0  # worker start-up on a loaded 2-core box: imports dominate
RUN_DEADLINE_S = 180


@dataclass
class Worker:
    name: str
    queue: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text.splitlines()[-n:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the process group this test started (by its id): SIGTERM, then SIGKILL.

    Waits for the whole group, not just the leader: the `celery` process that
    `dagster-celery worker start` runs outlives it during a warm shutdown.
    """
    for sig, wait_s in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            proc.poll()  # reap our direct child so it does not linger as a zombie
            if not group_members(proc.pid):
                return
            time.sleep(0.1)
    proc.poll()


def ancestors(pid: int) -> list[int]:
    """pid's parent, grandparent, ... up to init, from /proc."""
    chain = []
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        chain.append(pid)
    return chain


@contextmanager
def broker(tmp: Path) -> Iterator[tuple[str, str, dict[str, object]]]:
    """(broker URL, result backend URL, extra Celery options) of a private broker."""
    server = shutil.which("redis-server")
    if server is None or os.environ.get("ACE_TEST_FILESYSTEM_BROKER") == "1":
        queue = tmp / "queue"
        for sub in ("data", "control", "results"):
            (queue / sub).mkdir(parents=True)
        options = {
            "broker_transport_options": {
                "data_folder_in": str(queue / "data"),
                "data_folder_out": str(queue / "data"),
                "control_folder": str(queue / "control"),
            }
        }
        yield "filesystem://", (queue / "results").as_uri(), options
        return
    port = free_port()
    log = (tmp / "redis.log").open("wb")
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not redis_ping(port):
            assert proc.poll() is None, (tmp / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            time.sleep(0.1)
        url = f"redis://127.0.0.1:{port}/0"
        yield url, url, {}
    finally:
        stop(proc)
        log.close()


def worker_env(name: str, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DAGSTER_HOME=str(home),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # dagster-celery execs `celery`
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        **{cj.WORKER_ENV: name},
    )
    return env


def launch(name: str, queue: str, cmd: list[str], env: dict[str, str], tmp: Path) -> Worker:
    log = tmp / f"worker_{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Worker(name, queue, proc, log)


def workstation_worker(name: str, queue: str, celery_yaml: Path, home: Path, tmp: Path) -> Worker:
    """The README's workstation command, verbatim apart from the test's paths."""
    cmd = [
        str(BIN / "dagster-celery"),
        "worker",
        "start",
        "-A",
        "dagster_celery.app",
        "-y",
        str(celery_yaml),
        "-q",
        queue,
        "-n",
        name,
        "-i",
        "ace_assets_tests.helpers.cluster_job",  # imported before the pool forks: warm children
        "--",
        "--concurrency",
        "2",
    ]
    return launch(name, queue, cmd, worker_env(name, home), tmp)


def sbatch_worker(name: str, queue: str, celery_yaml: Path, home: Path, tmp: Path) -> Worker:
    """deploy/cluster/worker.sbatch run as Slurm would run it, minus Slurm."""
    env = worker_env(name, home)
    env.update(
        ACE_ENV=str(BIN.parent),
        ACE_CELERY_CONFIG=str(celery_yaml),
        ACE_QUEUES=queue,
        ACE_WORKER_NAME=name,
        ACE_PRELOAD="ace_assets_tests.helpers.cluster_job",
    )
    return launch(name, queue, ["bash", str(SBATCH)], env, tmp)


def wait_ready(workers: list[Worker]) -> None:
    deadline = time.monotonic() + STARTUP_S
    pending = list(workers)
    while pending:
        for w in list(pending):
            assert w.proc.poll() is None, "worker exited early\n" + w.tail()
            if f"{w.name}@" in (text := w.log.read_text(errors="replace")) and " ready." in text:
                pending.remove(w)
        assert time.monotonic() < deadline, "workers not ready\n" + "\n".join(
            w.tail() for w in pending
        )
        time.sleep(0.2)


@contextmanager
def alarm(seconds: int) -> Iterator[None]:
    """Fail instead of hanging if a step never comes back from the workers."""

    def _raise(signum: int, frame: object) -> None:
        raise TimeoutError(f"celery run did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_partitioned_job_runs_on_celery_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    project, data, results = tmp_path / "project", tmp_path / "data", tmp_path / "results"
    project.mkdir()
    traces = cj.write_traces(data, LINES, seed=7)
    # created before any worker opens it: two processes migrating one fresh sqlite collide
    instance = cj.persistent_instance(home, LINES)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv(ENV_BROKER, raising=False)

    with broker(tmp_path) as (broker_url, backend_url, options):
        celery_yaml = tmp_path / "celery.yaml"
        celery_yaml.write_text(celery_yaml_text(broker_url, backend_url, config_source=options))
        monkeypatch.setenv(ENV_CONFIG, str(celery_yaml))  # the executor reads the workers' file

        workers = [
            workstation_worker("light", DEFAULT_QUEUE, celery_yaml, home, tmp_path),
            sbatch_worker("heavy", HEAVY_QUEUE, celery_yaml, home, tmp_path),
        ]
        try:
            wait_ready(workers)
            config = cj.run_config(project, data, results, work_s=0.1)
            run_ids: dict[str, str] = {}
            for line in LINES:
                with alarm(RUN_DEADLINE_S):
                    result = dg.execute_job(
                        dg.reconstructable(cj.line_job),
                        instance=instance,
                        run_config=config,
                        tags={"dagster/partition": line},
                    )
                logs = "\n".join(w.tail() for w in workers)
                assert result.success, failure_text(result) + "\n" + logs
                run_ids[line] = result.run_id

            by_name = {w.name: w for w in workers}
            for line in LINES:
                rec = {a: cj.read_record(results, line, a) for a in cj.ALL_ASSETS}
                want = cj.expected_summary(traces[line])
                got = rec["line_summary"]["value"]
                assert got["events"] == want["events"]
                assert got["baseline"] == pytest.approx(want["baseline"])
                assert got["filtered_sum"] == pytest.approx(want["filtered_sum"])

                for asset, r in rec.items():
                    expected_worker = "heavy" if asset == "filtered_trace" else "light"
                    assert r["worker"] == expected_worker, (asset, r)
                    assert r["pid"] != os.getpid()
                    # pool child -> celery main process -> ... -> the process this test started
                    assert by_name[r["worker"]].proc.pid in ancestors(r["ppid"]), (asset, r)

                messages = [
                    e.dagster_event.message or ""
                    for e in instance.all_logs(run_ids[line])
                    if e.dagster_event is not None and e.dagster_event.is_engine_event
                ]
                assert (
                    f'Submitting celery task for step "filtered_trace" to queue "{HEAVY_QUEUE}".'
                    in messages
                )
                assert (
                    f'Submitting celery task for step "raw_trace" to queue "{DEFAULT_QUEUE}".'
                    in messages
                )
                executed = [m for m in messages if m.endswith("in celery worker")]
                assert len(executed) == len(cj.ALL_ASSETS), messages

            assert instance.get_materialized_partitions(dg.AssetKey("line_summary")) == set(LINES)
        finally:
            for w in workers:
                stop(w.proc)
    for w in workers:
        assert not group_members(w.proc.pid), f"worker {w.name} still running"
