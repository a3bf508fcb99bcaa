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

#: Environment switches read by :func:`executor_from_env` (same values on the webserver,
#: the daemon and every run worker, or runs would disagree about where steps go).
ENV_CONFIG = "ACE_CELERY_CONFIG"
ENV_BROKER = "ACE_CELERY_BROKER"
ENV_BACKEND = "ACE_CELERY_BACKEND"
ENV_MAX_CONCURRENT = "ACE_MAX_CONCURRENT"
ENV_MAX_HEAVY = "ACE_MAX_HEAVY"

#: Longer than the slowest step: Redis re-delivers a fetched but unacknowledged task after
#: this many seconds, which would run a long step twice.
REDIS_VISIBILITY_TIMEOUT_S = 12 * 3600
_REDIS_SCHEMES = ("redis", "rediss")


def heavy_op_tags(queue: str = HEAVY_QUEUE) -> dict[str, str]:
    """``op_tags`` for an asset whose steps must run on a big-memory worker."""
    return {CELERY_QUEUE_TAG: queue}


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


def _string_source(value: Any, path: Path, key: str) -> str | None:
    """A plain string, or Dagster's ``{env: VAR}`` form (keeps a Redis password out of files)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"env"}:
        resolved = os.environ.get(str(value["env"]), "")
        if not resolved:
            raise AceInputError(
                f"environment variable {value['env']} named for {key} is not set",
                file=path,
                column=f"execution.config.{key}",
            )
        return resolved
    raise AceInputError(
        f"expected a URL or {{env: VAR}} for {key}, got {value!r}",
        file=path,
        column=f"execution.config.{key}",
    )


def read_celery_yaml(path: str | Path) -> dict[str, Any]:
    """The ``execution.config`` block of a worker's ``celery.yaml``, ``{env: VAR}`` resolved."""
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
    source = config.get("config_source") or {}
    if not isinstance(source, dict):
        raise AceInputError(
            "expected a mapping of Celery settings",
            file=path,
            column="execution.config.config_source",
        )
    return {
        "broker": _string_source(config["broker"], path, "broker"),
        "backend": _string_source(config.get("backend"), path, "backend"),
        "config_source": source,
    }


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


def local_executor_config(
    max_concurrent: int = 2, heavy_limit: int | None = None
) -> dict[str, Any]:
    """Config of Dagster's multiprocess executor for one machine (see local_executor_def)."""
    if max_concurrent < 1:
        raise AceInputError(
            f"max_concurrent must be >= 1, got {max_concurrent}", column=ENV_MAX_CONCURRENT
        )
    config: dict[str, Any] = {"max_concurrent": int(max_concurrent)}
    if heavy_limit is not None:
        if heavy_limit < 1:
            raise AceInputError(
                f"heavy_limit must be >= 1, got {heavy_limit}", column=ENV_MAX_HEAVY
            )
        config["tag_concurrency_limits"] = [
            {"key": CELERY_QUEUE_TAG, "value": HEAVY_QUEUE, "limit": int(heavy_limit)}
        ]
    return config


def local_executor_def(
    max_concurrent: int = 2, heavy_limit: int | None = None
) -> dg.ExecutorDefinition:
    """One machine: each step in its own process, at most ``max_concurrent`` at once.

    Bounds peak memory on a workstation: a run never holds more than ``max_concurrent``
    steps in flight. ``heavy_limit`` additionally caps the steps tagged for the heavy queue
    (the same tag the Celery executor routes on), e.g. 1 movie at a time.
    """
    config = local_executor_config(max_concurrent, heavy_limit)
    name = f"local_x{config['max_concurrent']}"
    if heavy_limit is not None:
        name += f"_heavy{int(heavy_limit)}"
    return dg.multiprocess_executor.configured(config, name=name)


def _env_int(env: Mapping[str, str], key: str) -> int | None:
    raw = env.get(key, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise AceInputError(f"expected an integer, got {raw!r}", column=key) from None


def executor_from_env(environ: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    """Celery when ``ACE_CELERY_CONFIG`` (a celery.yaml) or ``ACE_CELERY_BROKER`` is set,
    else the local multiprocess executor: ``ACE_MAX_CONCURRENT`` steps (default 2), of
    which at most ``ACE_MAX_HEAVY`` heavy ones (default: no separate cap).

    One code location then serves a laptop demo and the lab cluster without edits.
    """
    env = os.environ if environ is None else environ
    config_path = env.get(ENV_CONFIG, "").strip()
    if config_path:
        return celery_executor_from_yaml(config_path)
    broker = env.get(ENV_BROKER, "").strip()
    if broker:
        return celery_executor_def(broker, env.get(ENV_BACKEND, "").strip() or None)
    max_concurrent = _env_int(env, ENV_MAX_CONCURRENT)
    return local_executor_def(
        2 if max_concurrent is None else max_concurrent, _env_int(env, ENV_MAX_HEAVY)
    )
