"""Partitions are experiment line numbers, registered when experiments.csv is read."""

from __future__ import annotations

import dagster as dg

LINE_PARTITIONS_NAME = "line_number"
line_partitions = dg.DynamicPartitionsDefinition(name=LINE_PARTITIONS_NAME)


def line_of(context: dg.AssetExecutionContext) -> int:
    """The run's line number; a key typed into the UI that is not a number is refused."""
    key = context.partition_key
    try:
        return int(key)
    except ValueError:
        raise dg.Failure(
            description=f"partition key {key!r} is not a line number: keys are the 'line "
            "number' column of experiments.csv; delete this partition key",
            allow_retries=False,
        ) from None
