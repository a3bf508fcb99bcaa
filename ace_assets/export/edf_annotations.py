"""What an EDF+ of a line annotates besides its pauses: the ``.nev`` events and the analysis
periods of ``analysis_parameters``, on the file's timeline (seconds after its first sample)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ace_assets.export.edf import Annotation
from ace_assets.multimodal.phase_locking import parse_periods
from ace_assets.multimodal.ttl import port_events, port_words

#: analysis_parameters column -> annotation text of each of its periods
PERIODS = {
    "periods of high slow wave power (s)": "high slow wave power period",
    "control periods (s)": "control period",
}
BASELINE = "baseline period (min)"


def event_annotations(events: pd.DataFrame, t0_s: float = 0.0) -> list[Annotation]:
    """Every event: a port change as ``TTL 0x0001`` (the whole 16-bit word, so any bit's
    pulses can be read off), any other event by its string ("Starting Recording", ...)."""
    if events.empty:
        return []
    port = port_events(events)
    texts = (
        events["string"].fillna("").astype(str).str.strip()
        if "string" in events
        else pd.Series("", index=events.index)
    )
    texts = texts.where(texts != "", "event id " + events["event_id"].astype(str))
    texts.loc[port.index] = [f"TTL 0x{w:04X}" for w in port_words(port).tolist()]
    onsets = events["timestamp_s"].to_numpy(dtype=np.float64) - t0_s
    return [Annotation(t, text) for t, text in zip(onsets.tolist(), texts.tolist(), strict=True)]


def period_annotations(params: Mapping[str, Any], t0_s: float = 0.0) -> list[Annotation]:
    """The analysis periods (seconds on the shared clock, i.e. after ``zero time (s)``) and
    the baseline, read as the first ``baseline period (min)`` minutes from zero time."""
    zero = float(params.get("zero time (s)") or 0.0)
    out = []
    for column, text in PERIODS.items():
        for start, end in parse_periods(params.get(column)).tolist():
            out.append(Annotation(start + zero - t0_s, text, end - start))
    minutes = params.get(BASELINE)
    if minutes is not None and np.isfinite(float(minutes)) and float(minutes) > 0:
        out.append(Annotation(zero - t0_s, "baseline period", float(minutes) * 60.0))
    return out
