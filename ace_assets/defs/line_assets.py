"""What every per-line asset shares: partitioning, eager automation, skipping a missing modality."""

import functools
import inspect
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from ace_assets.defs.assets.session import line_session
from ace_assets.defs.checks import CHECK_DESCRIPTIONS, blocking_failure_text
from ace_assets.defs.executors import heavy_op_tags
from ace_assets.defs.manifests import asset_dir
from ace_assets.defs.partitions import line_of, line_partitions
from ace_assets.defs.presentation import REPORT_ORDER, present
from ace_assets.defs.resources import PathsResource
from ace_assets.defs.results import NotApplicable, results_asset

HEAVY_POOL = "ace_heavy"
#: Metadata key of an asset's links to its source (shown in the UI).
CODE_REFERENCES = "dagster/code_references"


#: Asset tag naming the recordings an asset needs; run selections for a line are built from it.
MODALITY_TAG = "ace/modality"
#: What each tag value needs in ``session_files``.
MODALITY_NEEDS: dict[str, tuple[str, ...]] = {
    "miniscope": ("miniscope",),
    "ephys": ("ephys",),
    "multimodal": ("miniscope", "ephys"),
    "any": (),  # whatever the line has (exports)
}


def line_asset(
    *,
    group: str,
    modality: str,
    kinds: set[str],
    checks: Iterable[tuple[str, bool]] = (),
    heavy: bool = False,
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """``@dg.asset`` for one line: partitioned, eager, optional output, ``(check, blocking)`` specs.

    Upstream assets are the body's parameters, annotated with their result type
    (:mod:`ace_assets.defs.results`); the body yields a ``MaterializeResult`` whose value is
    the asset's own handle.

    ``modality`` (a key of :data:`MODALITY_NEEDS`) becomes the ``ace/modality`` tag. On a
    line without those recordings the body never runs: the wrapper records a "not
    applicable" materialization (so the UI shows it as such, not as missing, and no step
    is ever skipped) and not-applicable check results.

    ``heavy`` puts the step in the ``ace_heavy`` pool (and Celery queue) so a
    backfill of many lines runs one movie-sized step at a time.

    A failed blocking check fails the step with the check's own description (what was
    measured, the threshold, the setting), after its result and the materialization are
    recorded: Dagster's text would only name the check.
    """

    if modality not in MODALITY_NEEDS:
        raise ValueError(f"modality must be one of {sorted(MODALITY_NEEDS)}, got {modality!r}")

    def decorate(fn: Callable[..., Any]) -> dg.AssetsDefinition:
        with warnings.catch_warnings():
            # partitioned checks are a preview in Dagster 1.13; the per-line tests pin them down
            warnings.simplefilter("ignore", dg.PreviewWarning)
            specs = [
                dg.AssetCheckSpec(
                    name,
                    asset=fn.__name__,
                    blocking=b,
                    partitions_def=line_partitions,
                    description=CHECK_DESCRIPTIONS[name],
                )
                for name, b in checks
            ]
        blocking = {spec.name for spec in specs if spec.blocking}
        name = fn.__name__
        summary = (inspect.getdoc(fn) or name).split("\n\n")[0].replace("\n", " ")
        REPORT_ORDER.append(name)
        if not inspect.isgeneratorfunction(fn):
            raise TypeError(f"{fn.__name__}: a line asset body must yield its results")
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def skip_or_compute(*args: Any, **kwargs: Any) -> Iterator[Any]:
            bound = signature.bind(*args, **kwargs)
            context, paths = bound.arguments["context"], bound.arguments["paths"]
            line = line_of(context)
            if why := missing_modality(paths, line, MODALITY_NEEDS[modality]):
                yield from not_applicable(context, line, why)
                return
            failed: list[str] = []
            for event in fn(*args, **kwargs):
                if text := blocking_failure_text(event, blocking):
                    failed.append(text)
                if isinstance(event, dg.MaterializeResult):
                    event = present(
                        event,
                        folder=asset_dir(paths, name, line),
                        line_dir=paths.line_dir(line),
                        asset=name,
                        description=summary,
                        run_id=context.run.run_id,
                    )
                yield event
            if failed:
                raise dg.Failure(
                    description=f"line {line}: " + "\n".join(failed), allow_retries=False
                )

        extra: dict[str, Any] = {"pool": HEAVY_POOL, "op_tags": heavy_op_tags()} if heavy else {}
        return results_asset(
            metadata={CODE_REFERENCES: source_reference(fn)},
            group_name=group,
            partitions_def=line_partitions,
            kinds=kinds,
            output_required=False,
            automation_condition=dg.AutomationCondition.eager(),
            check_specs=specs or None,
            tags={MODALITY_TAG: modality},
            **extra,
        )(skip_or_compute)

    return decorate


def source_reference(fn: Callable[..., Any]) -> dg.CodeReferencesMetadataValue:
    """A UI link to the body of ``fn``, not to the wrapper Dagster is given."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.CodeReferencesMetadataValue(
            code_references=[
                dg.LocalFileCodeReference(
                    file_path=str(Path(inspect.getsourcefile(fn) or "").resolve()),
                    line_number=inspect.getsourcelines(fn)[1],
                )
            ]
        )


def line_modalities(paths: PathsResource, line: int | str) -> frozenset[str]:
    """The recordings ``session_files`` found for a line ("miniscope", "ephys")."""
    return line_session(paths, int(line)).modalities


def missing_modality(paths: PathsResource, line: int, needs: Iterable[str]) -> str | None:
    """Why this line cannot have the asset (e.g. no Miniscope recording), or None."""
    have = line_modalities(paths, line)
    lacking = [m for m in needs if m not in have]
    if not lacking:
        return None
    return (
        "no "
        + " and no ".join({"miniscope": "Miniscope", "ephys": "ephys"}[m] for m in lacking)
        + " recording"
    )


#: Tag and value of a materialization that records "no such recording".
STATUS_TAG, NOT_APPLICABLE = "ace/status", "not_applicable"


def is_not_applicable(materialization: dg.AssetMaterialization) -> bool:
    """Whether a materialization records "no such recording" rather than a result."""
    return (materialization.tags or {}).get(STATUS_TAG) == NOT_APPLICABLE


def not_applicable(
    context: dg.AssetExecutionContext, line: int, why: str
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Record that the line has nothing to compute here, with why, and not-applicable checks."""
    context.log.info(f"line {line}: {why}; not applicable")
    yield dg.MaterializeResult(
        metadata={"status": dg.MetadataValue.text("not applicable"), "reason": why},
        tags={STATUS_TAG: NOT_APPLICABLE},
        value=NotApplicable(why),
    )
    for spec in context.assets_def.check_specs:
        yield dg.AssetCheckResult(
            check_name=spec.name,
            passed=True,
            description=f"not applicable: {why}",
            metadata={"not_applicable": why},
        )
