"""Does an events table belong with the channels it was listed beside?

Real folders hold ``.nev`` files from another session (a copy gone wrong, a renamed file:
times 1.7e9 s away from the channels), and Cheetah writes some events out of time order.
Both pass through a reader silently, and then frame times land outside the recording.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: events this close outside the channels' span still belong (Cheetah logs "Starting
#: Recording" a little before the first sample and "Stopping Recording" after the last)
EDGE_TOLERANCE_S = 1.0


def events_sanity(
    events: pd.DataFrame, t_start_s: float, t_stop_s: float, *, file: str | None = None
) -> dict[str, Any]:
    """Counts of events outside ``[t_start_s, t_stop_s]`` (with tolerance) and of events
    earlier than the one before them, plus one warning sentence per problem."""
    t = events["timestamp_s"].to_numpy(dtype=np.float64)
    ts = events["timestamp_us"].to_numpy(dtype=np.int64)
    where = file or "events file"
    outside = (t < t_start_s - EDGE_TOLERANCE_S) | (t > t_stop_s + EDGE_TOLERANCE_S)
    back = np.flatnonzero(np.diff(ts) < 0) + 1
    warnings: list[str] = []
    if outside.any():
        far = float(np.max(np.maximum(t_start_s - t, t - t_stop_s)[outside]))
        warnings.append(
            f"{where}: {int(outside.sum())} of {t.size} events lie outside the channels' time "
            f"range ({t_start_s:.3f} to {t_stop_s:.3f} s), up to {far:.6g} s away: the events "
            "file may belong to another session (check the 'events filename' column of "
            "experiments.csv)"
        )
    if back.size:
        i = int(back[0])
        warnings.append(
            f"{where}: {back.size} events are earlier than the event before them (first: event "
            f"{i} at {t[i]:.6f} s after event {i - 1} at {t[i - 1]:.6f} s); event times are "
            "not monotonic"
        )
    return {
        "n_events": int(t.size),
        "outside_recording": int(outside.sum()),
        "not_monotonic": int(back.size),
        "first_event_s": float(t.min()) if t.size else None,
        "last_event_s": float(t.max()) if t.size else None,
        "recording_span_s": [float(t_start_s), float(t_stop_s)],
        "warnings": warnings,
    }
