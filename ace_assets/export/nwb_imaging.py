"""The Miniscope recording and its CNMF-E class extraction as NWB optical physiology.

The raw movie stays in its AVI files: the ``OnePhotonSeries`` names them (relative to the
NWB file, as DANDI expects) with each file's first frame. Footprints are pixel masks (the
sparse footprints as stored, weights exact in float32); traces are ``(frames, ROIs)`` with
the frame times of the file's clock; ROI ids are the extraction's component ids.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hdmf.common import DynamicTable, DynamicTableRegion, VectorData
from hdmf.data_utils import GenericDataChunkIterator
from ndx_miniscope import Miniscope
from pynwb import NWBFile
from pynwb.base import Images
from pynwb.image import GrayscaleImage
from pynwb.ophys import (
    Fluorescence,
    ImageSegmentation,
    OnePhotonSeries,
    OpticalChannel,
    PlaneSegmentation,
    RoiResponseSeries,
)

from ace_assets.export.nwb_common import compressed, time_args
from ace_assets.miniscope.extraction.result import ExtractionResult

#: bytes of one HDF5 chunk of traces
CHUNK_BYTES = 1 << 21
#: metaData.json entries ndx-miniscope's Miniscope device holds, with their types
_DEVICE_FIELDS: dict[str, type] = {
    "compression": str,
    "deviceType": str,
    "frameRate": str,
    "framesPerFile": int,
    "gain": str,
    "led0": int,
    "excitation": int,
    "msCamExposure": int,
}


@dataclass
class ImagingData:
    """One line's Miniscope files, frame times and curated extraction."""

    avi_files: list[str]
    frames_per_file: list[int]
    frame_rate: float
    frame_shape: tuple[int, int]
    frame_times: np.ndarray  #: seconds on the file's clock, one per frame
    result: ExtractionResult  #: curated: rejected components removed
    events: pd.DataFrame  #: component, frame, time_s, amplitude, height_sd
    device: dict[str, Any] = field(default_factory=dict)  #: the Miniscope's metaData.json
    version: str = "V4"
    rejected_ids: list[int] = field(default_factory=list)
    field_of_view: str = "the motion-corrected movie"  #: what the footprints' pixels index


class TracesIterator(GenericDataChunkIterator):
    """``(components, frames)`` traces written as ``(frames, components)`` a block at a time."""

    def __init__(self, traces: np.ndarray) -> None:
        self._traces = traces
        n_roi, n_frames = traces.shape
        rows = max(1, min(n_frames, CHUNK_BYTES // (4 * max(1, n_roi))))
        super().__init__(chunk_shape=(rows, max(1, n_roi)), buffer_gb=0.05)

    def _get_data(self, selection: tuple[slice, ...]) -> np.ndarray:
        rows, cols = selection
        return np.ascontiguousarray(self._traces[cols, rows].T)

    def _get_maxshape(self) -> tuple[int, ...]:
        return (self._traces.shape[1], self._traces.shape[0])

    def _get_dtype(self) -> np.dtype:
        return np.dtype(self._traces.dtype)


def miniscope_device(nwb: NWBFile, data: ImagingData) -> Miniscope:
    typed: dict[str, Any] = {}
    for key, kind in _DEVICE_FIELDS.items():
        value = data.device.get(key)
        if value is None:
            continue
        try:
            typed[key] = kind(value)
        except (TypeError, ValueError):
            continue
    roi = data.device.get("ROI")
    if isinstance(roi, dict) and {"height", "width"} <= roi.keys():
        typed["ROI"] = [int(roi["height"]), int(roi["width"])]
    device = Miniscope(
        name="Miniscope",
        description=f"UCLA Miniscope {data.version} ({data.device.get('deviceName', 'Miniscope')})",
        **typed,
    )
    nwb.add_device(device)
    return device


def add_imaging(nwb: NWBFile, data: ImagingData, nwb_folder: Path) -> PlaneSegmentation:
    """Device, imaging plane, raw movie (external), footprints, traces, events."""
    device = miniscope_device(nwb, data)
    plane = nwb.create_imaging_plane(
        name="ImagingPlane",
        optical_channel=OpticalChannel(
            name="green",
            description="the Miniscope's single channel (emission filter not recorded)",
            emission_lambda=float("nan"),
        ),
        description=f"the Miniscope's field of view, {data.frame_shape[0]} x "
        f"{data.frame_shape[1]} pixels",
        device=device,
        excitation_lambda=float("nan"),
        imaging_rate=float(data.frame_rate),
        indicator="unknown",
        location="unknown",
    )
    starts = np.concatenate([[0], np.cumsum(data.frames_per_file)[:-1]]).astype(np.int64)
    movie = OnePhotonSeries(
        name="raw_movie",
        imaging_plane=plane,
        external_file=[os.path.relpath(f, nwb_folder) for f in data.avi_files],
        starting_frame=starts.tolist(),
        format="external",
        dimension=[int(data.frame_shape[1]), int(data.frame_shape[0])],
        unit="n/a",
        description="the raw Miniscope AVIs, not copied: paths are relative to this file",
        **time_args(data.frame_times),
    )
    nwb.add_acquisition(movie)
    timing: dict[str, Any] = (
        {"timestamps": movie}
        if movie.timestamps is not None
        else {"starting_time": movie.starting_time, "rate": movie.rate}
    )
    module = nwb.create_processing_module(
        "ophys", "CNMF-E class extraction and calcium events (ace_assets)"
    )
    result = data.result
    rejected = ", ".join(str(i) for i in data.rejected_ids) or "none"
    segmentation = PlaneSegmentation(
        name="PlaneSegmentation",
        description=f"footprints (unit L2 norm) of the kept components, pixels of "
        f"{data.field_of_view} ({result.dims[0]} x {result.dims[1]}); ROI ids are component "
        f"ids; curated out: {rejected}",
        imaging_plane=plane,
        reference_images=movie,
    )
    segmentation.add_column("snr", "event exceptionality SNR of the trace")
    segmentation.add_column("r_value", "spatial consistency of the footprint")
    a = result.A.tocsc()
    width = result.dims[1]
    for k, component in enumerate(result.ids):
        lo, hi = a.indptr[k], a.indptr[k + 1]
        pixels = a.indices[lo:hi]
        mask = [
            (int(p % width), int(p // width), float(w))
            for p, w in zip(pixels, a.data[lo:hi], strict=True)
        ]
        segmentation.add_roi(
            id=int(component),
            pixel_mask=mask,
            snr=float(result.snr[k]),
            r_value=float(result.r_values[k]),
        )
    module.add(ImageSegmentation(plane_segmentations=[segmentation]))
    module.add(
        Images(
            name="SummaryImages",
            description="seeding images of the extraction",
            images=[
                GrayscaleImage(
                    name="correlation",
                    data=np.asarray(result.correlation_image),
                    description="local correlation image of the motion-corrected movie",
                ),
                GrayscaleImage(
                    name="peak_to_noise",
                    data=np.asarray(result.pnr_image),
                    description="peak-to-noise ratio image",
                ),
            ],
        )
    )
    if result.n_components == 0:
        return segmentation
    rois = segmentation.create_roi_table_region(
        region=list(range(result.n_components)), description="the kept components"
    )
    fluorescence = Fluorescence(name="Fluorescence")
    deconvolved = Fluorescence(name="Deconvolved")
    module.add(fluorescence)  # in the file before the series, so their ROI links resolve
    module.add(deconvolved)
    for name, traces, what in (
        ("denoised", result.C, "denoised traces C (footprint units)"),
        ("raw", result.C_raw, "raw traces C_raw: C plus residual, baseline removed"),
    ):
        fluorescence.add_roi_response_series(
            RoiResponseSeries(
                name=name,
                data=compressed(TracesIterator(traces)),
                rois=rois,
                unit="a.u.",
                description=what,
                **timing,
            )
        )
    deconvolved.add_roi_response_series(
        RoiResponseSeries(
            name="deconvolved",
            data=compressed(TracesIterator(result.S)),
            rois=rois,
            unit="a.u.",
            description="deconvolved activity S (OASIS spike estimates)",
            **timing,
        )
    )
    if len(data.events):
        module.add(_events_table(data, segmentation))
    return segmentation


def _events_table(data: ImagingData, segmentation: PlaneSegmentation) -> DynamicTable:
    events = data.events
    row_of = {int(c): i for i, c in enumerate(data.result.ids)}
    frames = events["frame"].to_numpy(dtype=np.int64)
    columns = [
        DynamicTableRegion(
            name="roi",
            data=[row_of[int(c)] for c in events["component"]],
            description="the event's component (row of the PlaneSegmentation)",
            table=segmentation,
        ),
        VectorData(name="frame", data=frames, description="frame of the event's peak"),
        VectorData(
            name="time",
            data=np.asarray(data.frame_times, dtype=np.float64)[frames],
            description="time (s) of that frame, on the file's clock",
        ),
        VectorData(
            name="amplitude",
            data=events["amplitude"].to_numpy(dtype=np.float64),
            description="trace amplitude at the event",
        ),
        VectorData(
            name="height_sd",
            data=events["height_sd"].to_numpy(dtype=np.float64),
            description="event height in SDs of the chosen derivative",
        ),
    ]
    return DynamicTable(
        name="calcium_events",
        description="calcium events per kept component (ace_assets calcium_events)",
        columns=columns,
    )
