"""One tick of the ``new_recordings`` sensor, with its new partitions added as the daemon would."""

from __future__ import annotations

import dagster as dg

from ace_assets.defs import sensors
from ace_assets.defs.resources import PathsResource


def tick(
    instance: dg.DagsterInstance,
    paths: PathsResource,
    cursor: str | None,
    definitions: dg.Definitions | None = None,
) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"paths": paths}, definitions=definitions
    )
    result = sensors.new_recordings(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result
