"""Partitions are experiment line numbers, registered when experiments.csv is read."""

from __future__ import annotations

import dagster as dg

LINE_PARTITIONS_NAME = "line_number"
line_partitions = dg.DynamicPartitionsDefinition(name=LINE_PARTITIONS_NAME)


def line_of(context: dg.AssetExecutionContext) -> int:
    return int(context.partition_key)
