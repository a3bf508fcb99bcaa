"""nwb_file: one line as an NWB file, for sharing, DANDI and the field's tools.

Everything the line has goes in (Miniscope, ephys, or both, on one clock); the raw movie
is referenced, not copied. Written into the staged folder and swapped in whole.
"""

from datetime import date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from ace_assets.defs.assets.catalog import experiment_row
from ace_assets.defs.assets.ephys import store_channels
from ace_assets.defs.failures import input_errors_as_failures
from ace_assets.defs.line_assets import line_asset
from ace_assets.defs.manifests import write_manifest
from ace_assets.defs.partitions import line_of
from ace_assets.defs.resources import PathsResource
from ace_assets.defs.results import (
    AlignmentResult,
    EphysStore,
    EventsResult,
    Parameters,
    Result,
    SessionFiles,
    SourcesResult,
    staged,
)
from ace_assets.errors import AceInputError
from ace_assets.export.nwb import (
    SessionMeta,
    local_time,
    miniscope_start,
    neuralynx_start,
    write_nwb,
)
from ace_assets.export.nwb_ephys import EphysData
from ace_assets.export.nwb_imaging import ImagingData
from ace_assets.io.frame_times import FrameTimingParams
from ace_assets.io.jsonio import read_json
from ace_assets.io.miniscope import open_with_timing
from ace_assets.io.neuralynx import load_clock, read_ncs_header
from ace_assets.io.session import movie_folders
from ace_assets.miniscope.extraction.result import apply_rejections, load_result

EXPORT_GROUP = "export"


@line_asset(group=EXPORT_GROUP, modality="any", kinds={"nwb"}, heavy=True)
def nwb_file(
    context: dg.AssetExecutionContext,
    paths: PathsResource,
    session_files: SessionFiles,
    analysis_parameters: Parameters,
    miniscope_sources: SourcesResult,
    calcium_events: EventsResult,
    ephys_channels: EphysStore,
    filtered_ephys: EphysStore,
    multimodal_alignment: AlignmentResult,
):
    """The line as one NWB file: session, subject, Miniscope, ephys, TTLs, settings.

    Subject and session from experiments.csv (id, date, weight, drug, dose); the raw AVIs
    as an external ``OnePhotonSeries``; curated footprints, C, C_raw and S, calcium events;
    the filtered channels (EMG marked) streamed with gzip; the .nev events; every analysis
    setting. With ephys, time zero is the first ephys sample and frames are placed by the
    TTL alignment; without, it is the Miniscope's recording start. Open it with pynwb,
    NWB Widgets, or upload it to DANDI with the AVIs beside it.
    """
    line = line_of(context)
    own = Result.of(context, paths)
    has = session_files.modalities
    with input_errors_as_failures():
        row, _source = experiment_row(paths, line)
        ephys = _ephys(session_files, ephys_channels, filtered_ephys) if "ephys" in has else None
        imaging = (
            _imaging(
                paths,
                line,
                session_files,
                analysis_parameters,
                miniscope_sources,
                calcium_events,
                multimodal_alignment if ephys is not None else None,
            )
            if "miniscope" in has
            else None
        )
        start, source, reference = _session_start(row, session_files, ephys is not None)
        meta = SessionMeta.from_row(
            row,
            start_time=start,
            start_source=source,
            parameters=analysis_parameters.manifest.get("values", {}),
            time_reference=reference,
        )
        name = f"line_{line}.nwb"
        with staged(context, paths) as out:
            write_nwb(out / name, meta, imaging=imaging, ephys=ephys, final_folder=own.folder)
            size = (out / name).stat().st_size
            contents = [m for m, part in (("miniscope", imaging), ("ephys", ephys)) if part]
            write_manifest(
                out,
                {
                    "nwb": str(own.folder / name),
                    "contents": contents,
                    "session_start_time": start.isoformat(),
                    "time_zero": reference,
                    "bytes": size,
                },
            )
    yield dg.MaterializeResult(
        metadata={
            "nwb": dg.MetadataValue.path(str(own.folder / name)),
            "contents": dg.MetadataValue.text(", ".join(contents)),
            "size_mb": round(size / 1e6, 2),
            "session_start_time": dg.MetadataValue.text(start.isoformat()),
            "time_zero": dg.MetadataValue.text(reference),
            "rois": imaging.result.n_components if imaging else 0,
            "electrodes": len(ephys.channel_names) if ephys else 0,
        },
        value=own,
    )


def _session_start(row: dict, session: SessionFiles, has_ephys: bool):
    """(start time, where it came from, what time zero is)."""
    if has_ephys:
        first = session.ephys["channels"][0]["path"]
        start = neuralynx_start(read_ncs_header(first).properties)
        reference = "the first ephys sample (Miniscope frames placed by the TTL alignment)"
        if start is not None:
            return start, f"TimeCreated of {Path(first).name}", reference
    else:
        reference = "the Miniscope recording start (camera clock)"
        movie_dir = Path(session.miniscope["files"][0]["path"]).parent
        for candidate in (movie_dir / "metaData.json", movie_dir.parent / "metaData.json"):
            start = miniscope_start(read_json(candidate)) if candidate.is_file() else None
            if start is not None:
                return start, f"recordingStartTime of {candidate.name}", reference
    if not row.get("date"):
        raise AceInputError(
            "no recording start time in the raw files and no date in the catalog: NWB needs a "
            "session start time",
            line=int(row["line_number"]),
            column="date (YYMMDD)",
        )
    day = date.fromisoformat(row["date"])
    return local_time(datetime(day.year, day.month, day.day)), "the catalog date", reference


def _ephys(session: SessionFiles, channels: EphysStore, filtered: EphysStore) -> EphysData:
    store = filtered.store()
    manifest = filtered.manifest
    described = session.ephys
    low, high = manifest["filter_range"]
    first = read_ncs_header(described["channels"][0]["path"]).properties
    events_csv = channels.manifest.get("events_csv")
    emg = described.get("emg")
    return EphysData(
        store=store,
        clock=load_clock(store.path),
        channel_names=store_channels(store),
        emg_channel=emg["name"] if emg else None,
        filter_description=f"{manifest['filter_type']} {low}-{high} Hz, order "
        f"{manifest['filter_order']}, zero-phase",
        acquisition_system=first.get("AcquisitionSystem", "system").strip(),
        events=pd.read_csv(events_csv) if events_csv else None,
        files=[Path(c["path"]).name for c in described["channels"]],
    )


def _imaging(
    paths: PathsResource,
    line: int,
    session: SessionFiles,
    parameters: Parameters,
    sources: SourcesResult,
    events: EventsResult,
    alignment: AlignmentResult | None,
) -> ImagingData:
    ms: dict[str, Any] = session.miniscope
    params = parameters.values
    rejected = list(events.manifest.get("rejected_ids", []))
    result = apply_rejections(load_result(sources.sources), rejected)
    if alignment is not None:
        times = alignment.frame_times() + alignment.zero_time_s
    else:
        timing = FrameTimingParams.from_mapping(params.group("timing"))
        recording = open_with_timing(movie_folders(ms), timing, paths.data)
        times = np.asarray(recording.timestamps_ms, dtype=np.float64) / 1e3
    if len(times) != result.n_frames:
        raise AceInputError(
            f"{len(times)} frame times for {result.n_frames} frames of traces",
            file=sources.sources,
            line=line,
        )
    movie_dir = Path(ms["files"][0]["path"]).parent
    device_file = movie_dir / "metaData.json"
    crop = params["crop_coords"]
    return ImagingData(
        avi_files=[f["path"] for f in ms["files"]],
        frames_per_file=[int(f["frames"]) for f in ms["files"]],
        frame_rate=float(ms["frame_rate"]),
        frame_shape=(int(ms["frame_shape"][0]), int(ms["frame_shape"][1])),
        frame_times=times,
        result=result,
        events=events.events(),
        device=read_json(device_file) if device_file.is_file() else {},
        version=str(ms["version"]),
        rejected_ids=[int(i) for i in rejected],
        field_of_view="the motion-corrected movie"
        + (f", cropped to crop_coords {list(crop)}" if crop else ""),
    )
