"""A five-asset miniature of the ace_assets graph, importable by out-of-process workers.

Same pattern as the real code location: a dynamic "line" partition, ``PathsResource``
saying where inputs and results live, assets that hand data on through files. Every asset
records which process ran it and when, so tests can prove where and how steps executed.

    raw_trace -> filtered_trace (ace_heavy queue) -> line_summary
              -> event_count ----------------------^
              -> baseline -------------------------^
"""

# No `from __future__ import annotations`: Dagster checks the context annotation at runtime.

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import dagster as dg

from ace_assets.defs.executors import executor_from_env, heavy_op_tags
from ace_assets.defs.resources import PathsResource
from ace_assets.io.store import atomic_write_text

PARTITIONS_NAME = "cluster_test_line"
JOB_NAME = "cluster_line"
WORKER_ENV = "ACE_TEST_WORKER"
MIDDLE = ("filtered_trace", "event_count", "baseline")
ALL_ASSETS = ("raw_trace", *MIDDLE, "line_summary")

cluster_lines = dg.DynamicPartitionsDefinition(name=PARTITIONS_NAME)


class StepTiming(dg.ConfigurableResource):
    """``sibling_wait_s`` > 0: a middle step waits (up to that long) until another middle
    step of its line has started, so parallel execution shows as overlapping windows
    however slow process start-up is; a serial executor just times out and shows none."""

    sibling_wait_s: float = 0.0
    work_s: float = 0.2


def trace_file(data: Path, line: int | str) -> Path:
    return data / f"line_{int(line)}" / "trace.txt"


def record_file(results: Path, line: int | str, asset: str) -> Path:
    return results / f"line_{int(line)}" / f"{asset}.json"


def read_record(results: Path, line: int | str, asset: str) -> dict[str, Any]:
    return json.loads(record_file(results, line, asset).read_text())


def _started_marker(results: Path, line: int | str, asset: str) -> Path:
    return results / f"line_{int(line)}" / f".{asset}.started"


def _write(paths: PathsResource, line: int, asset: str, start: float, value: Any) -> None:
    record = {
        "asset": asset,
        "line": line,
        "value": value,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "worker": os.environ.get(WORKER_ENV),
        "start": start,
        "end": time.time(),
    }
    target = record_file(paths.results, line, asset)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(record))


def _middle_step(paths: PathsResource, timing: StepTiming, line: int, asset: str) -> float:
    start = time.time()
    marker = _started_marker(paths.results, line, asset)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(start))
    if timing.sibling_wait_s > 0:
        others = [_started_marker(paths.results, line, a) for a in MIDDLE if a != asset]
        deadline = time.monotonic() + timing.sibling_wait_s
        while not any(m.exists() for m in others) and time.monotonic() < deadline:
            time.sleep(0.05)
    time.sleep(timing.work_s)
    return start


def _line(context: dg.AssetExecutionContext) -> int:
    return int(context.partition_key)


@dg.asset(partitions_def=cluster_lines)
def raw_trace(context: dg.AssetExecutionContext, paths: PathsResource) -> None:
    """The line's input numbers, read from the (read-only) data folder."""
    start, line = time.time(), _line(context)
    text = trace_file(paths.data, line).read_text()
    values = [float(v) for v in text.split()]
    _write(paths, line, "raw_trace", start, values)


@dg.asset(partitions_def=cluster_lines, deps=[raw_trace], op_tags=heavy_op_tags())
def filtered_trace(
    context: dg.AssetExecutionContext, paths: PathsResource, timing: StepTiming
) -> None:
    """3-point moving average: stands in for a step that needs a big-memory worker."""
    line = _line(context)
    start = _middle_step(paths, timing, line, "filtered_trace")
    raw = read_record(paths.results, line, "raw_trace")["value"]
    smooth = [sum(raw[i : i + 3]) / 3.0 for i in range(len(raw) - 2)]
    _write(paths, line, "filtered_trace", start, smooth)


@dg.asset(partitions_def=cluster_lines, deps=[raw_trace])
def event_count(
    context: dg.AssetExecutionContext, paths: PathsResource, timing: StepTiming
) -> None:
    """Samples above zero."""
    line = _line(context)
    start = _middle_step(paths, timing, line, "event_count")
    raw = read_record(paths.results, line, "raw_trace")["value"]
    _write(paths, line, "event_count", start, sum(1 for v in raw if v > 0))


@dg.asset(partitions_def=cluster_lines, deps=[raw_trace])
def baseline(context: dg.AssetExecutionContext, paths: PathsResource, timing: StepTiming) -> None:
    """Median of the raw trace."""
    line = _line(context)
    start = _middle_step(paths, timing, line, "baseline")
    raw = read_record(paths.results, line, "raw_trace")["value"]
    _write(paths, line, "baseline", start, statistics.median(raw))


@dg.asset(partitions_def=cluster_lines, deps=[filtered_trace, event_count, baseline])
def line_summary(context: dg.AssetExecutionContext, paths: PathsResource) -> None:
    """Joins the three branches, so it can only be right if all of them ran first."""
    start, line = time.time(), _line(context)
    value = {
        "filtered_sum": sum(read_record(paths.results, line, "filtered_trace")["value"]),
        "events": read_record(paths.results, line, "event_count")["value"],
        "baseline": read_record(paths.results, line, "baseline")["value"],
    }
    _write(paths, line, "line_summary", start, value)


def expected_summary(values: list[float]) -> dict[str, float]:
    """What ``line_summary`` must contain for an input trace, computed independently."""
    smooth = [(values[i] + values[i + 1] + values[i + 2]) / 3.0 for i in range(len(values) - 2)]
    return {
        "filtered_sum": sum(smooth),
        "events": sum(1 for v in values if v > 0),
        "baseline": statistics.median(values),
    }


def line_job() -> dg.JobDefinition:
    """Reconstructable entry point; the executor comes from the environment, as deployed."""
    defs = dg.Definitions(
        assets=[raw_trace, filtered_trace, event_count, baseline, line_summary],
        jobs=[dg.define_asset_job(JOB_NAME)],
        resources={"paths": PathsResource(), "timing": StepTiming()},
        executor=executor_from_env(),
    )
    return defs.resolve_job_def(JOB_NAME)


def run_config(project: Path, data: Path, results: Path, **timing: float) -> dict[str, Any]:
    return {
        "resources": {
            "paths": {
                "config": {
                    "project_path": str(project),
                    "data_path": str(data),
                    "results_path": str(results),
                }
            },
            "timing": {"config": dict(timing)},
        }
    }


def write_traces(data: Path, lines: list[str], seed: int = 0) -> dict[str, list[float]]:
    """Synthetic input traces (ground truth for :func:`expected_summary`), one per line."""
    import random

    rng = random.Random(seed)
    traces: dict[str, list[float]] = {}
    for line in lines:
        values = [round(rng.uniform(-5.0, 5.0), 3) for _ in range(rng.randint(8, 20))]
        target = trace_file(data, line)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(" ".join(str(v) for v in values) + "\n")
        traces[line] = values
    return traces


def persistent_instance(home: Path, lines: list[str]) -> dg.DagsterInstance:
    """A sqlite-backed instance in ``home`` (created before any worker opens it)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = dg.DagsterInstance.from_config(str(home))
    instance.add_dynamic_partitions(PARTITIONS_NAME, lines)
    return instance
