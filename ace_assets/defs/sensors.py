"""The overnight watcher: new catalog lines and finished copies become runs, once each."""

import json

import dagster as dg

from ace_assets.catalog.cells import preview
from ace_assets.catalog.csv_table import RowProblem
from ace_assets.catalog.experiments import FOLDER_COLUMNS, Experiment, read_experiments
from ace_assets.catalog.paths import UnsafePathError
from ace_assets.defs.assets.session import processed_fingerprint
from ace_assets.defs.line_runs import LINE_JOB
from ace_assets.defs.partitions import LINE_PARTITIONS_NAME
from ace_assets.defs.resources import PathsResource, paths_tags
from ace_assets.errors import AceInputError
from ace_assets.io.landing import landing_state, now

PROCESS_JOB = LINE_JOB
SETTLE_SECONDS = 120.0


@dg.sensor(
    name="new_recordings",
    job_name=PROCESS_JOB,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Watches experiments.csv and data_path. A line is processed when its raw files are "
        "complete and unchanged for two minutes; a changed recording is processed again."
    ),
)
def new_recordings(context: dg.SensorEvaluationContext, paths: PathsResource) -> dg.SensorResult:
    """Cursor: per line, the fingerprint seen last tick and the one already requested.

    A run is requested only when a fingerprint is seen twice in a row and is
    older than the settle time, so a half-copied recording is never processed
    and repeated ticks never duplicate a run (the run key is the fingerprint).
    A line whose last ``session_files`` materialization saw the same fingerprint is
    not run again when the sensor is first switched on.

    One hostile row never stops a tick: rows the catalog refuses, and lines whose
    files cannot be looked at (a name the disk refuses, a file vanishing mid-scan),
    are reported by row and column while every other line proceeds.
    """
    cursor = json.loads(context.cursor) if context.cursor else {}
    try:
        catalog = read_experiments(paths.experiments_csv, paths.path_rules)
    except AceInputError as exc:
        return dg.SensorResult(skip_reason=str(exc), cursor=context.cursor)
    known = set(context.instance.get_dynamic_partitions(LINE_PARTITIONS_NAME))
    new_partitions: list[str] = []
    requests: list[dg.RunRequest] = []
    waiting: list[str] = []
    problems = [p for p in catalog.problems if p.severity == "error"]
    current = now()
    # a line with problems is a partition too, so the UI shows it (its session_files fails
    # with the problems); it is not watched for files until its row is corrected
    new_partitions.extend(str(n) for n in catalog.invalid if str(n) not in known)
    for line, experiment in catalog.experiments.items():
        key = str(line)
        if key not in known:
            new_partitions.append(key)
        entry = dict(cursor.get(key, {}))
        try:
            request, why = _look_at_line(context.instance, paths, experiment, entry, current)
        except LINE_ERRORS as exc:
            problems.append(line_problem(catalog.file, experiment, exc))
            continue  # the line's cursor entry stays as it was: looked at again next tick
        cursor[key] = entry
        if request is not None:
            requests.append(request)
        elif why:
            waiting.append(f"line {key}: {why}")
    dynamic = (
        [dg.AddDynamicPartitionsRequest(LINE_PARTITIONS_NAME, new_partitions)]
        if new_partitions
        else []
    )
    reported = _problem_summary(problems)
    if requests and reported:
        context.log.warning(reported)  # a tick with runs has no skip reason to carry it
    skip = None if requests else ("; ".join(filter(None, [*waiting, reported])) or "nothing new")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=dynamic,
        cursor=json.dumps(cursor, sort_keys=True),
        skip_reason=skip,
    )


#: What looking at one line's files may raise; each costs that line, never the tick.
LINE_ERRORS = (AceInputError, UnsafePathError, OSError, ValueError)


def _look_at_line(
    instance: dg.DagsterInstance,
    paths: PathsResource,
    experiment: Experiment,
    entry: dict[str, str],
    current: float,
) -> tuple[dg.RunRequest | None, str | None]:
    """(the run to request, or why the line waits); ``entry`` is the line's cursor, updated."""
    key = str(experiment.line_number)
    state = landing_state(paths.data, experiment.as_row())
    if "requested" not in entry and state.complete:
        # first look at a line (a new sensor, or one switched on late): a recording that
        # was already processed as it is now is not processed again
        done = processed_fingerprint(instance, key)
        if done == state.fingerprint:
            entry["requested"] = done
    request = None
    why = None
    if state.ready(entry.get("seen"), SETTLE_SECONDS, current):
        if entry.get("requested") != state.fingerprint:
            request = dg.RunRequest(
                run_key=f"line-{key}-{state.fingerprint}",
                partition_key=key,
                tags={
                    "ace/trigger": "new_recordings",
                    "ace/fingerprint": state.fingerprint,
                    **paths_tags(paths),
                },
            )
            entry["requested"] = state.fingerprint
    elif entry.get("requested") != state.fingerprint:
        why = state.reason if not state.complete else "settling"
    entry["seen"] = state.fingerprint
    return request, why


def line_problem(file: str, experiment: Experiment, exc: Exception) -> RowProblem:
    """A line whose files could not be looked at, named by its row and folder column."""
    present = {
        column: str(getattr(experiment, attr))
        for attr, column in FOLDER_COLUMNS.items()
        if getattr(experiment, attr) is not None
    }
    filename = str(getattr(exc, "filename", None) or "")
    columns = [c for c, folder in present.items() if folder and folder in filename] or list(present)
    return RowProblem(
        file=file,
        row=experiment.row,
        line_number=experiment.line_number,
        column=" / ".join(columns) or None,
        message=(
            f"its raw files could not be checked ({type(exc).__name__}: "
            f"{preview(str(exc), 300)}); the line waits, the other lines go on"
        ),
    )


def _problem_summary(problems: list[RowProblem], limit: int = 10) -> str:
    """Rows left out of this tick, each by row and column, in a skip reason of bounded size."""
    if not problems:
        return ""
    shown = "; ".join(str(p) for p in problems[:limit])
    more = f"; and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"rows not processed: {shown}{more}"


def follow_upstream_sensor() -> dg.AutomationConditionSensorDefinition:
    """The automation sensor; built with the definitions so its runs carry this deployment's
    paths as tags."""
    return dg.AutomationConditionSensorDefinition(
        "follow_upstream",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
        run_tags={"ace/trigger": "follow_upstream", **paths_tags()},
        description=(
            "Evaluates every asset's eager condition: when a line's upstream result is updated "
            "(a new recording, edited parameters), its downstream assets run for that line only."
        ),
    )
