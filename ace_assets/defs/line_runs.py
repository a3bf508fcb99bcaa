"""Materializing one line in-process (the demo, notebooks, tests) with only its applicable assets.

A line with one modality would otherwise put the other modality's assets in the run only
for them to skip. Dagster 1.13's in-process executor never finishes a run in which a step
becomes skippable while an upstream failure is being propagated (e.g. ``multimodal_results``
on a Miniscope-only line whose movie chain failed): it handles skips before abandons and
then waits forever. So the run first resolves the session, then selects by modality tag,
and no step is ever skipped for a missing recording. Deployed runs (multiprocess or Celery
executors) re-process skips every loop and are not affected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from ace_assets.defs.line_assets import MODALITY_NEEDS, MODALITY_TAG, line_modalities
from ace_assets.defs.resources import PathsResource

#: Assets every line run starts with: what the rest of the run is chosen from.
SESSION_ASSETS = ("analysis_parameters", "session_files")


def applicable_assets(
    assets: Iterable[dg.AssetsDefinition], modalities: Iterable[str]
) -> list[str]:
    """Names of the per-line assets whose ``ace/modality`` needs are all present."""
    have = set(modalities)
    names: list[str] = []
    for asset in assets:
        for key in asset.keys:
            modality = asset.tags_by_key.get(key, {}).get(MODALITY_TAG)
            if modality is not None and set(MODALITY_NEEDS[modality]) <= have:
                names.append(key.to_user_string())
    return names


def repository_of(
    context: dg.SensorEvaluationContext | dg.ScheduleEvaluationContext,
) -> dg.RepositoryDefinition | None:
    """The code location's repository (always there under the daemon; maybe not in a test)."""
    try:
        return context.repository_def
    except dg.DagsterInvariantViolationError:
        return None


def run_asset_keys(
    repository: dg.RepositoryDefinition | None, modalities: Iterable[str]
) -> list[dg.AssetKey] | None:
    """What a sensor or schedule run of a line should select: the session assets and the
    assets its recordings allow. None (the whole job) when no repository is at hand."""
    if repository is None:
        return None
    names = [
        *SESSION_ASSETS,
        *applicable_assets(repository.assets_defs_by_key.values(), modalities),
    ]
    return [dg.AssetKey(n) for n in dict.fromkeys(names)]


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

    def materialized(self) -> list[str]:
        return sorted(e.asset_key.to_user_string() for e in self.get_asset_materialization_events())


def materialize_line(
    assets: Sequence[dg.AssetsDefinition],
    *,
    paths: PathsResource,
    line: str,
    instance: dg.DagsterInstance,
    run_config: Mapping[str, Any] | None = None,
) -> LineRun:
    """Session first, then every asset the line's recordings allow; failures are returned."""
    result = LineRun(line=line)
    resources = {"paths": paths}

    def run(names: Sequence[str]) -> dg.ExecuteInProcessResult:
        outcome = dg.materialize(
            assets,
            selection=dg.AssetSelection.assets(*names),
            partition_key=line,
            instance=instance,
            resources=resources,
            run_config=_op_config(run_config, names),
            raise_on_error=False,
        )
        result.runs.append(outcome)
        return outcome

    if not run(SESSION_ASSETS).success:
        return result
    result.modalities = line_modalities(paths, line)
    names = applicable_assets(assets, result.modalities)
    if names:
        run(names)
    return result
