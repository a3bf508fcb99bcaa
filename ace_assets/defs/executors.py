"""How steps leave the run process: local subprocesses, or Celery workers across the lab.

A lab has a data server, a few big workstations and maybe an HPC allocation, but rarely
Kubernetes (so not dagster-k8s). Celery over Redis covers all three: workers are plain
processes on workstations, or Slurm jobs that start the same worker command, and a step's
op tag picks the queue, so movie-sized steps only land on big-memory workers.

``dagster_celery`` is an optional extra (``pip install 'ace_assets[cluster]'``); it is
imported only when a Celery executor is actually built, so the base install never needs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from ace_assets.errors import AceInputError

#: Queue every step goes to unless tagged otherwise (dagster_celery's default queue name).
DEFAULT_QUEUE = "dagster"
#: Queue for steps that hold a movie or a long recording in flight: big-memory workers only.
HEAVY_QUEUE = "ace_heavy"
#: Op tag read by dagster_celery's executor to pick a step's queue.
CELERY_QUEUE_TAG = "dagster-celery/queue"
#: Op tag read by dagster_celery's executor to order steps waiting in a queue.
CELERY_PRIORITY_TAG = "dagster-celery/priority"

#: Environment switches read by :func:`executor_from_env` (same values on the webserver,
#: the daemon and every run worker, or runs would disagree about where steps go).
ENV_CONFIG = "ACE_CELERY_CONFIG"
ENV_BROKER = "ACE_CELERY_BROKER"
ENV_BACKEND = "ACE_CELERY_BACKEND"
ENV_MAX_CONCURRENT = "ACE_MAX_CONCURRENT"

#: Longer than the slowest step: Redis re-delivers a fetched but unacknowledged task after
#: this many seconds, which would run a long step twice.
REDIS_VISIBILITY_TIMEOUT_S = 12 * 3600
_REDIS_SCHEMES = ("redis", "rediss")


def heavy_op_tags(queue: str = HEAVY_QUEUE, priority: int | None = None) -> dict[str, str]:
    """``op_tags`` for an asset whose steps must run on a big-memory worker."""
    tags = {CELERY_QUEUE_TAG: queue}
    if priority is not None:
        tags[CELERY_PRIORITY_TAG] = str(int(priority))
    return tags


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _check_url(url: str, what: str) -> None:
    if not _scheme(url):
        raise AceInputError(
            f"expected a Celery {what} URL such as redis://dataserver:6379/0, got {url!r}",
            column=what,
        )


def celery_executor_config(
    broker: str,
    backend: str | None = None,
    *,
    config_source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The executor config block; ``deploy/cluster/celery.yaml`` holds the same block.

    ``backend`` None means: the broker's Redis for a Redis broker, else ``rpc://``.
    Executor and workers must agree on broker and backend, or steps are never picked up.
    """
    if not broker:
        raise AceInputError("a Celery broker URL is required", column="broker")
    _check_url(broker, "broker")
    if backend is None:
        backend = broker if _scheme(broker) in _REDIS_SCHEMES else "rpc://"
    _check_url(backend, "backend")
    source: dict[str, Any] = {
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": DEFAULT_QUEUE,
        "task_default_priority": 5,
        # dagster_celery's own retry defaults, which a config_source key would otherwise drop
        "broker_transport_options": {
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
    }
    if _scheme(broker) in _REDIS_SCHEMES:
        source["broker_transport_options"]["visibility_timeout"] = REDIS_VISIBILITY_TIMEOUT_S
        source["result_backend_transport_options"] = {
            "visibility_timeout": REDIS_VISIBILITY_TIMEOUT_S
        }
        # a worker takes a task only when a pool slot is free (Celery >= 5.6, Redis only)
        source["worker_disable_prefetch"] = True
    for key, value in (config_source or {}).items():
        if key == "broker_transport_options" and isinstance(value, Mapping):
            source[key] = {**source[key], **value}
        else:
            source[key] = value
    return {"broker": broker, "backend": backend, "config_source": source}


def celery_executor_def(
    broker: str,
    backend: str | None = None,
    *,
    config_source: Mapping[str, Any] | None = None,
    name: str = "ace_celery",
) -> dg.ExecutorDefinition:
    """dagster_celery's executor, configured for this lab's broker (imported lazily)."""
    config = celery_executor_config(broker, backend, config_source=config_source)
    try:
        from dagster_celery import celery_executor
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the Celery executor needs the cluster extra: pip install 'ace_assets[cluster]'"
        ) from exc
    return celery_executor.configured(config, name=name)


def celery_yaml_text(
    broker: str,
    backend: str | None = None,
    *,
    config_source: Mapping[str, Any] | None = None,
) -> str:
    """``celery.yaml`` for ``dagster-celery worker start -y``: the very block the executor uses."""
    config = celery_executor_config(broker, backend, config_source=config_source)
    return yaml.safe_dump({"execution": {"config": config}}, sort_keys=False)


def read_celery_yaml(path: str | Path) -> dict[str, Any]:
    """The ``execution.config`` block of a worker's ``celery.yaml``."""
    path = Path(path)
    try:
        parsed = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise AceInputError(f"cannot read the Celery config: {exc}", file=path) from None
    config = (parsed or {}).get("execution", {}).get("config") if isinstance(parsed, dict) else None
    if not isinstance(config, dict) or not config.get("broker"):
        raise AceInputError(
            "expected 'execution: config: broker: <url>' (the dagster-celery worker format)",
            file=path,
            column="execution.config.broker",
        )
    unknown = set(config) - {"broker", "backend", "config_source"}
    if unknown:
        raise AceInputError(
            f"unknown keys {sorted(unknown)} under execution.config", file=path, column="config"
        )
    return config


def celery_executor_from_yaml(path: str | Path, name: str = "ace_celery") -> dg.ExecutorDefinition:
    """The executor for the exact broker/backend/options the workers were started with.

    Pointing both ``-y`` of the workers and ``ACE_CELERY_CONFIG`` at one shared file is what
    keeps the two sides from drifting apart (a mismatch means steps that wait forever).
    """
    config = read_celery_yaml(path)
    return celery_executor_def(
        config["broker"],
        config.get("backend"),
        config_source=config.get("config_source"),
        name=name,
    )


def local_executor_def(max_concurrent: int = 2) -> dg.ExecutorDefinition:
    """One machine: each step in its own process, at most ``max_concurrent`` at once.

    Bounds peak memory on a workstation: a backfill of many lines never holds more than
    ``max_concurrent`` movies in flight per run.
    """
    if max_concurrent < 1:
        raise AceInputError(
            f"max_concurrent must be >= 1, got {max_concurrent}", column=ENV_MAX_CONCURRENT
        )
    return dg.multiprocess_executor.configured(
        {"max_concurrent": int(max_concurrent)}, name=f"local_x{int(max_concurrent)}"
    )


def executor_from_env(environ: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    """Celery when ``ACE_CELERY_CONFIG`` (a celery.yaml) or ``ACE_CELERY_BROKER`` is set,
    else the local multiprocess executor with ``ACE_MAX_CONCURRENT`` (default 2) steps.

    One code location then serves a laptop demo and the lab cluster without edits.
    """
    env = os.environ if environ is None else environ
    config_path = env.get(ENV_CONFIG, "").strip()
    if config_path:
        return celery_executor_from_yaml(config_path)
    broker = env.get(ENV_BROKER, "").strip()
    if broker:
        return celery_executor_def(broker, env.get(ENV_BACKEND, "").strip() or None)
    raw = env.get(ENV_MAX_CONCURRENT, "2").strip() or "2"
    try:
        max_concurrent = int(raw)
    except ValueError:
        raise AceInputError(
            f"expected an integer number of concurrent steps, got {raw!r}",
            column=ENV_MAX_CONCURRENT,
        ) from None
    return local_executor_def(max_concurrent)
