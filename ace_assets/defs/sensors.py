"""The overnight watcher: new catalog lines and finished copies become runs, once each."""

import json

import dagster as dg

from ace_assets.catalog.experiments import read_experiments
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
    """
    cursor = json.loads(context.cursor) if context.cursor else {}
    try:
        catalog = read_experiments(paths.experiments_csv)
    except AceInputError as exc:
        return dg.SensorResult(skip_reason=str(exc), cursor=context.cursor)
    known = set(context.instance.get_dynamic_partitions(LINE_PARTITIONS_NAME))
    new_partitions: list[str] = []
    requests: list[dg.RunRequest] = []
    waiting: list[str] = []
    current = now()
    for line, experiment in catalog.experiments.items():
        key = str(line)
        state = landing_state(paths.data, experiment.as_row())
        entry = cursor.get(key, {})
        if key not in known:
            new_partitions.append(key)
        if "requested" not in entry and state.complete:
            # first look at a line (a new sensor, or one switched on late): a recording that
            # was already processed as it is now is not processed again
            done = processed_fingerprint(context.instance, key)
            if done == state.fingerprint:
                entry["requested"] = done
        if state.ready(entry.get("seen"), SETTLE_SECONDS, current):
            if entry.get("requested") != state.fingerprint:
                requests.append(
                    dg.RunRequest(
                        run_key=f"line-{key}-{state.fingerprint}",
                        partition_key=key,
                        tags={
                            "ace/trigger": "new_recordings",
                            "ace/fingerprint": state.fingerprint,
                            **paths_tags(paths),
                        },
                    )
                )
                entry["requested"] = state.fingerprint
        elif entry.get("requested") != state.fingerprint:
            waiting.append(f"line {key}: {state.reason if not state.complete else 'settling'}")
        entry["seen"] = state.fingerprint
        cursor[key] = entry
    dynamic = (
        [dg.AddDynamicPartitionsRequest(LINE_PARTITIONS_NAME, new_partitions)]
        if new_partitions
        else []
    )
    skip = None if requests else ("; ".join(waiting) or "nothing new")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=dynamic,
        cursor=json.dumps(cursor, sort_keys=True),
        skip_reason=skip,
    )


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
