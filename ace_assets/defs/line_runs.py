"""Materializing one line in-process (the demo, notebooks, tests).

The session is resolved first (its own run), so a failure there is reported before any
movie or channel is opened; then every other per-line asset runs. Assets a line has no
recording for record "not applicable" themselves (:func:`ace_assets.defs.line_assets.line_asset`),
so no step is ever skipped: Dagster 1.13's in-process executor never finishes a run in which
a step becomes skippable while an upstream failure is being propagated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from ace_assets.defs.assets.catalog import analysis_parameters
from ace_assets.defs.assets.session import session_files
from ace_assets.defs.line_assets import is_not_applicable, line_modalities
from ace_assets.defs.resources import PathsResource, paths_tags
from ace_assets.defs.run_health import local_run_tags, prepare_pools, release_dead_runs

#: Assets every line run starts with: what the rest of the run reads.
SESSION_ASSETS = tuple(a.key.to_user_string() for a in (analysis_parameters, session_files))
#: The job every line run belongs to (in the UI, on the CLI, from sensors and schedules).
LINE_JOB = "process_line"


def per_line_selection(assets: Sequence[dg.AssetsDefinition]) -> dg.AssetSelection:
    """Every partitioned (per-line) asset: what ``process_line`` runs."""
    return dg.AssetSelection.assets(*[a for a in assets if a.partitions_def is not None])


def per_line_assets(assets: Sequence[dg.AssetsDefinition]) -> list[str]:
    """Names of the partitioned assets after the session ones, in definition order."""
    return [
        key.to_user_string()
        for asset in assets
        if asset.partitions_def is not None
        for key in asset.keys
        if key.to_user_string() not in SESSION_ASSETS
    ]


def _op_config(run_config: Mapping[str, Any] | None, names: Sequence[str]) -> dict[str, Any]:
    """The run config restricted to ops in this run (Dagster rejects config for absent ops)."""
    if not run_config:
        return {}
    ops = {k: v for k, v in (run_config.get("ops") or {}).items() if k in names}
    rest = {k: v for k, v in run_config.items() if k != "ops"}
    return {**rest, "ops": ops} if ops else rest


@dataclass
class LineRun:
    """The runs that materialized one line, read as one."""

    line: str
    modalities: frozenset[str] = frozenset()
    runs: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return bool(self.runs) and all(r.success for r in self.runs)

    def get_asset_materialization_events(self) -> list[dg.DagsterEvent]:
        return [e for r in self.runs for e in r.get_asset_materialization_events()]

    def get_asset_check_evaluations(self) -> list[dg.AssetCheckEvaluation]:
        return [c for r in self.runs for c in r.get_asset_check_evaluations()]

    def get_step_failure_events(self) -> list[dg.DagsterEvent]:
        return [e for r in self.runs for e in r.get_step_failure_events()]

    def materialized(self, *, applicable_only: bool = True) -> list[str]:
        """Assets materialized by these runs; by default without "not applicable" records."""
        return sorted(
            e.asset_key.to_user_string()
            for e in self.get_asset_materialization_events()
            if not applicable_only
            or not is_not_applicable(e.step_materialization_data.materialization)
        )

    def not_applicable(self) -> list[str]:
        done = set(self.materialized(applicable_only=False))
        return sorted(done - set(self.materialized()))


def applicable_partitions(instance: dg.DagsterInstance, asset: str) -> set[str]:
    """Lines whose latest materialization of ``asset`` holds a result, not "not applicable"."""
    key = dg.AssetKey(asset)
    lines = set()
    for line in instance.get_materialized_partitions(key):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[line]), limit=1
        ).records
        mat = records[0].asset_materialization if records else None
        if mat is not None and not is_not_applicable(mat):
            lines.add(line)
    return lines


def materialize_line(
    assets: Sequence[dg.AssetsDefinition],
    *,
    paths: PathsResource,
    line: str,
    instance: dg.DagsterInstance,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    log_level: str = "DEBUG",
) -> LineRun:
    """Session first, then every other per-line asset; failures are returned, not raised.

    Both runs are runs of the named job ``process_line`` (what the UI lists them under);
    ``log_level`` sets what Dagster's console logger prints. Runs of an earlier process
    that was killed are marked failed first, so their pool slots do not block these.
    """
    prepare_pools(instance)
    release_dead_runs(instance)
    result = LineRun(line=line)
    job = dg.Definitions(
        assets=list(assets),
        jobs=[dg.define_asset_job(LINE_JOB, selection=per_line_selection(assets))],
        resources={"paths": paths},
    ).resolve_job_def(LINE_JOB)
    quiet = {"loggers": {"console": {"config": {"log_level": log_level}}}}

    def run(names: Sequence[str]) -> dg.ExecuteInProcessResult:
        outcome = job.execute_in_process(
            run_config={**_op_config(run_config, names), **quiet},
            instance=instance,
            partition_key=line,
            asset_selection=[dg.AssetKey(n) for n in names],
            raise_on_error=False,
            tags={**paths_tags(paths), **local_run_tags(), **dict(tags or {})},
        )
        result.runs.append(outcome)
        return outcome

    if not run(SESSION_ASSETS).success:
        return result
    result.modalities = line_modalities(paths, line)
    names = per_line_assets(assets)
    if names:
        run(names)
    return result
