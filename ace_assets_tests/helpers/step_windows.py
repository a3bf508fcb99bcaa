"""When each step of a run ran, from the event log, and how many ran at once."""

from __future__ import annotations

import dagster as dg


def max_overlap(windows: list[tuple[float, float]]) -> int:
    """Most windows open at one instant (a window closing at t does not meet one opening at t)."""
    events = sorted([(s, 1) for s, _ in windows] + [(e, -1) for _, e in windows])
    open_now = peak = 0
    for _, delta in events:
        open_now += delta
        peak = max(peak, open_now)
    return peak


def step_windows(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float, int]]:
    """(start, end, pid) of every step that ran, from the run's event log."""
    starts: dict[str, tuple[float, int]] = {}
    windows: dict[str, tuple[float, float, int]] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = (record.timestamp, int(event.pid or 0))
        elif event.event_type in (
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
        ):
            start, pid = starts[event.step_key]
            windows[event.step_key] = (start, record.timestamp, pid)
    return windows
