"""Filtered ephys, its electrodes and the .nev TTL events as NWB, streamed from the stores.

Times are the ephys clock: seconds from the first sample of the line's channels
(:mod:`ace_assets.io.neuralynx`), which is the NWB file's time zero. A recording whose
record timestamps follow the nominal rate (to 1 µs) is written with ``rate``; pauses or
clock drift make the per-sample times explicit ``timestamps``, written a buffer at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from hdmf.common import VectorData
from pynwb import NWBFile
from pynwb.ecephys import ElectricalSeries, FilteredEphys
from pynwb.event import EventsTable, TimestampVectorData

from ace_assets.export.nwb_common import StoreIterator, TimesIterator, compressed
from ace_assets.io.neuralynx_grid import SampleClock
from ace_assets.io.store import ArrayStore

#: largest deviation (s) of a record's timestamp from the nominal rate still written as ``rate``
REGULAR_TOLERANCE_S = 1e-6


@dataclass
class EphysData:
    """One line's filtered channels and what describes them."""

    store: ArrayStore  #: (samples, channels) float32 volts
    clock: SampleClock
    channel_names: list[str]
    emg_channel: str | None
    filter_description: str
    acquisition_system: str = "system"
    events: pd.DataFrame | None = None  #: .nev events (timestamp_s on the ephys clock, ttl)
    files: list[str] = field(default_factory=list)


def regular_start(clock: SampleClock) -> float | None:
    """Time of the first sample when every record lies on the nominal grid, else None."""
    first = clock.record_first_index.astype(np.float64)
    t = (clock.record_timestamp_us - clock.origin_us) / 1e6
    if len(t) == 0:
        return 0.0
    predicted = t[0] + (first - first[0]) / clock.fs
    if np.max(np.abs(t - predicted)) <= REGULAR_TOLERANCE_S:
        return float(t[0] - first[0] / clock.fs)
    return None


def add_ephys(nwb: NWBFile, data: EphysData) -> ElectricalSeries:
    """The electrodes table, the filtered series (processing/ecephys) and the TTL events."""
    props = data.clock
    device = nwb.create_device(
        name="NeuralynxSystem",
        description=f"Neuralynx {data.acquisition_system} acquisition; channel files: "
        + (", ".join(data.files) or "not recorded"),
    )
    group = nwb.create_electrode_group(
        name="ChannelGroup",
        description="the line's LFP, EEG and EMG channels as listed in experiments.csv",
        location="unknown",
        device=device,
    )
    nwb.add_electrode_column(name="channel_name", description="the .ncs channel (file stem)")
    nwb.add_electrode_column(
        name="is_emg", description="True for the line's EMG channel ('emg channel' column)"
    )
    for name in data.channel_names:
        nwb.add_electrode(
            group=group,
            location="unknown",
            channel_name=name,
            is_emg=bool(data.emg_channel) and name == data.emg_channel,
        )
    region = nwb.create_electrode_table_region(
        region=list(range(len(data.channel_names))), description="all channels of the line"
    )
    start = regular_start(props)
    timing: dict[str, Any]
    if start is not None:
        timing = {"starting_time": start, "rate": float(props.fs)}
    else:
        timing = {"timestamps": compressed(TimesIterator(props.times, data.store.n_frames))}
    series = ElectricalSeries(
        name="filtered",
        data=compressed(StoreIterator(data.store)),
        electrodes=region,
        filtering=data.filter_description,
        description=f"filtered channels in volts ({data.filter_description}); columns follow "
        "the electrodes table",
        conversion=1.0,
        **timing,
    )
    module = nwb.create_processing_module("ecephys", "filtered ephys (ace_assets filtered_ephys)")
    container = FilteredEphys()
    module.add(container)  # in the file before the series, so its electrodes link resolves
    container.add_electrical_series(series)
    if data.events is not None and len(data.events):
        _add_events(nwb, data.events)
    return series


def _add_events(nwb: NWBFile, events: pd.DataFrame) -> None:
    events = events.sort_values("timestamp_s", kind="stable")
    strings = events["string"] if "string" in events else pd.Series([""] * len(events))
    nwb.add_events_table(
        EventsTable(
            name="nev_events",
            description="Neuralynx .nev events: the digital input port word at each event "
            "(Miniscope frame pulses are the rising edges of one bit of it) and its string",
            source_description="Neuralynx acquisition system (.nev file)",
            columns=[
                TimestampVectorData(
                    name="timestamp",
                    data=events["timestamp_s"].to_numpy(dtype=np.float64),
                    description="event time (s) on the ephys clock",
                ),
                VectorData(
                    name="ttl",
                    data=events["ttl"].to_numpy(dtype=np.int64),
                    description="digital input port word",
                ),
                VectorData(
                    name="annotation",
                    data=strings.fillna("").astype(str).tolist(),
                    description="the event string",
                ),
            ],
        )
    )
