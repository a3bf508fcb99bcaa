"""Nightly reconciliation: every line whose results are missing or out of date is run again."""

import dagster as dg

from ace_assets.catalog.experiments import ExperimentCatalog, read_experiments
from ace_assets.catalog.parameters import read_parameter_table, resolve_parameters
from ace_assets.defs.assets.catalog import line_parameters, parameters_digest
from ace_assets.defs.manifests import NotMaterializedError
from ace_assets.defs.resources import PathsResource, paths_tags
from ace_assets.defs.sensors import PROCESS_JOB
from ace_assets.errors import AceInputError


def stale_lines(paths: PathsResource, catalog: ExperimentCatalog | None = None) -> dict[int, str]:
    """Lines to run, with why: never processed, or the CSV settings changed since."""
    if catalog is None:
        catalog = read_experiments(paths.experiments_csv, paths.path_rules)
    table = read_parameter_table(paths.parameters_csv) if paths.parameters_csv.is_file() else None
    out: dict[int, str] = {}
    for line in catalog.experiments:
        try:
            stored = line_parameters(paths, line).manifest
        except NotMaterializedError:
            out[line] = "never processed"
            continue
        except (OSError, ValueError) as exc:  # one unreadable manifest costs only its line
            out[line] = f"stored parameters unreadable ({type(exc).__name__}: {exc})"[:300]
            continue
        try:
            current = resolve_parameters(table, line).to_json()["values"]
        except AceInputError:
            continue  # the parameters asset reports this line's bad cell itself
        overridden = {k for k, s in stored["sources"].items() if s == "run_config"}
        current.update({k: stored["values"][k] for k in overridden})
        if parameters_digest(current) != parameters_digest(stored["values"]):
            out[line] = "analysis parameters changed"
    return out


@dg.schedule(
    name="nightly_reconcile",
    cron_schedule="0 2 * * *",
    job_name=PROCESS_JOB,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def nightly_reconcile(context: dg.ScheduleEvaluationContext, paths: PathsResource):
    """At 02:00, one run per missing or stale line; the run key makes reruns of a tick idempotent."""
    try:
        catalog = read_experiments(paths.experiments_csv, paths.path_rules)
        lines = stale_lines(paths, catalog)
    except AceInputError as exc:
        return dg.SkipReason(str(exc))
    if not lines:
        return dg.SkipReason("every line is up to date")
    stamp = context.scheduled_execution_time.strftime("%Y%m%d")
    return [
        dg.RunRequest(
            run_key=f"nightly-{stamp}-{line}",
            partition_key=str(line),
            tags={"ace/trigger": "nightly_reconcile", "ace/reason": why, **paths_tags(paths)},
        )
        for line, why in sorted(lines.items())
    ]
