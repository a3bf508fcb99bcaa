"""The Dagster code location: ``dagster dev -w workspace.yaml`` loads ``defs``.

Every asset in :mod:`ace_assets.defs.assets` is found by walking the package (one module
per kind of result), and each links to its source file and line in the UI.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import dagster as dg

from ace_assets.defs import assets as asset_modules
from ace_assets.defs.executors import executor_from_env
from ace_assets.defs.line_assets import CODE_REFERENCES
from ace_assets.defs.line_runs import LINE_JOB, per_line_selection
from ace_assets.defs.resources import deployment_paths, paths_tags
from ace_assets.defs.run_health import release_dead_runs_sensor
from ace_assets.defs.schedules import nightly_reconcile
from ace_assets.defs.sensors import follow_upstream_sensor, new_recordings

#: Groups in the order a line is read: its catalog entry, then each modality.
GROUP_ORDER = ("catalog", "miniscope", "ephys", "multimodal", "export", "cohort")


def _graph_order(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """Group by group, upstream before downstream (the package walk is alphabetical)."""
    by_key = {a.key: a for a in assets}
    rank = {g: i for i, g in enumerate(GROUP_ORDER)}
    preferred = sorted(assets, key=lambda a: rank.get(a.group_names_by_key[a.key], len(rank)))
    out: list[dg.AssetsDefinition] = []

    def visit(asset: dg.AssetsDefinition) -> None:
        if asset in out:
            return
        for dep in asset.asset_deps[asset.key]:
            if dep in by_key:
                visit(by_key[dep])
        out.append(asset)

    for asset in preferred:
        visit(asset)
    return out


def _with_source_links(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """Each asset links to its source file and line in the UI.

    ``line_asset`` records its body's location itself (``with_source_code_references``
    would point at the wrapper it returns); the others are linked by Dagster.
    """
    with warnings.catch_warnings():
        # code references are a beta in Dagster 1.13; test_definitions pins them down
        warnings.simplefilter("ignore", dg.BetaWarning)
        return [
            a
            if CODE_REFERENCES in a.metadata_by_key[a.key]
            else dg.with_source_code_references([a])[0]
            for a in assets
        ]


all_assets: list[dg.AssetsDefinition] = _with_source_links(
    _graph_order(dg.load_assets_from_package_module(asset_modules))
)


def build_definitions() -> dg.Definitions:
    """The code location, with the paths of this deployment (``ACE_*`` variables, else demo)."""
    tags = paths_tags()
    process_all = dg.define_asset_job(
        LINE_JOB,
        selection=per_line_selection(all_assets),
        description="Every per-line asset of one line number.",
        tags=tags,
    )
    return dg.Definitions(
        assets=all_assets,
        jobs=[process_all],
        sensors=[new_recordings, follow_upstream_sensor(), release_dead_runs_sensor],
        schedules=[nightly_reconcile],
        resources={"paths": deployment_paths()},
        executor=executor_from_env(),
    )


defs = build_definitions()


def process_line_job() -> dg.JobDefinition:
    """Reconstructable entry point for out-of-process runs (``dg.reconstructable``)."""
    return defs.resolve_job_def(LINE_JOB)
