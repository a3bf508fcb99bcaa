"""What every per-line asset shares: partitioning, eager automation, skipping a missing modality."""

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import dagster as dg

from ace_assets.defs.executors import heavy_op_tags
from ace_assets.defs.manifests import read_manifest
from ace_assets.defs.partitions import line_partitions
from ace_assets.defs.resources import PathsResource

HEAVY_POOL = "ace_heavy"


def line_asset(
    *,
    group: str,
    deps: Sequence[Any],
    kinds: set[str],
    checks: Iterable[tuple[str, bool]] = (),
    heavy: bool = False,
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """``@dg.asset`` for one line: partitioned, eager, optional output, ``(check, blocking)`` specs.

    ``heavy`` puts the step in the ``ace_heavy`` pool (and Celery queue) so a
    backfill of many lines runs one movie-sized step at a time.
    """

    def decorate(fn: Callable[..., Any]) -> dg.AssetsDefinition:
        specs = [dg.AssetCheckSpec(name, asset=fn.__name__, blocking=b) for name, b in checks]
        extra: dict[str, Any] = {"pool": HEAVY_POOL, "op_tags": heavy_op_tags()} if heavy else {}
        return dg.asset(
            group_name=group,
            partitions_def=line_partitions,
            deps=list(deps),
            kinds=kinds,
            output_required=False,
            automation_condition=dg.AutomationCondition.eager(),
            check_specs=specs or None,
            **extra,
        )(fn)

    return decorate


def missing_modality(paths: PathsResource, line: int, needs: Iterable[str]) -> str | None:
    """Why this line cannot have the asset (e.g. no Miniscope recording), or None."""
    session = read_manifest(paths, "session_files", line)
    lacking = [m for m in needs if session.get(m) is None]
    if not lacking:
        return None
    return (
        "no "
        + " and no ".join({"miniscope": "Miniscope", "ephys": "ephys"}[m] for m in lacking)
        + " recording"
    )


def skip_line(
    context: dg.AssetExecutionContext, line: int, why: str
) -> Iterator[dg.AssetCheckResult]:
    """Yield no materialization (Dagster marks the asset skipped) and not-applicable checks."""
    context.log.info(f"line {line}: {why}; nothing to compute")
    for spec in context.assets_def.check_specs:
        yield dg.AssetCheckResult(
            check_name=spec.name, passed=True, metadata={"not_applicable": why}
        )
