"""Small helpers for running assets and reading Dagster results in tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every failure message of a run, including the causes Dagster wraps around them."""
    parts: list[str] = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:
            parts.append(error.message)
            error = error.cause
        user = event.step_failure_data.user_failure_data
        if user is not None and user.description:
            parts.append(user.description)
    return "\n".join(parts)


def session_run(
    assets: Sequence[dg.AssetsDefinition],
    instance: dg.DagsterInstance,
    resources: Mapping[str, Any],
    line: int | str,
) -> dg.ExecuteInProcessResult:
    """One line's ``session_files``, its failure returned rather than raised."""
    return dg.materialize(
        assets,
        selection="session_files",
        partition_key=str(line),
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
