"""edf_file: a line's EEG/EMG as EDF+, the format sleep-staging tools read."""

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from ace_assets.defs.assets.catalog import experiment_row
from ace_assets.defs.assets.ephys import store_channels
from ace_assets.defs.failures import input_errors_as_failures
from ace_assets.defs.line_assets import line_asset
from ace_assets.defs.manifests import write_manifest
from ace_assets.defs.partitions import line_of
from ace_assets.defs.resources import PathsResource
from ace_assets.defs.results import EphysStore, Parameters, Result, SessionFiles, staged
from ace_assets.errors import AceInputError
from ace_assets.export.edf import (
    EdfIdentity,
    EdfSignal,
    patient_field,
    recording_field,
    signal_labels,
    write_edf,
)
from ace_assets.export.edf_annotations import event_annotations, period_annotations
from ace_assets.io.neuralynx import load_clock, read_ncs_header

EXPORT_GROUP = "export"
#: how the header says "start unknown": EDF's placeholder date, ``Startdate X``
UNKNOWN_START = "unknown (EDF's placeholder 01.01.85)"


def edf_name(line: int) -> str:
    return f"line_{line}.edf"


def _prefilter(props: dict[str, str]) -> str:
    """The acquisition system's own filters, EDF+ style (``HP:0.1Hz LP:900Hz``)."""
    parts = []
    for enabled, freq, tag in (
        ("DSPLowCutFilterEnabled", "DspLowCutFrequency", "HP"),
        ("DSPHighCutFilterEnabled", "DspHighCutFrequency", "LP"),
    ):
        if props.get(enabled, "").split()[:1] == ["True"] and props.get(freq, "").split():
            parts.append(f"{tag}:{props[freq].split()[0]}Hz")
    return " ".join(parts)


def _signals(session: dict[str, Any], names: list[str], emg: str | None) -> list[EdfSignal]:
    files = {c["name"]: c["path"] for c in session["channels"]}
    if session.get("emg"):
        files.setdefault(session["emg"]["name"], session["emg"]["path"])
    out = []
    for label, name in zip(signal_labels(names, emg), names, strict=True):
        path = files.get(name)
        props = read_ncs_header(path).properties if path else {}
        source = f"Neuralynx CSC {Path(path).name if path else name}"
        out.append(EdfSignal(label, transducer=source, prefilter=_prefilter(props)))
    return out


def _start(session: dict[str, Any], row: dict[str, Any]) -> tuple[dt.datetime, str]:
    """Wall-clock time of the first sample: the .ncs header's TimeCreated (to the second),
    else the catalog's date at midnight."""
    for channel in session["channels"]:
        created = read_ncs_header(channel["path"]).properties.get("TimeCreated", "")
        try:
            return dt.datetime.strptime(created.strip()[:19], "%Y/%m/%d %H:%M:%S"), "TimeCreated"
        except ValueError:
            continue
    if row.get("date"):
        return dt.datetime.fromisoformat(row["date"]), "catalog date (time unknown)"
    return dt.datetime(1985, 1, 1), UNKNOWN_START


def _identity(row: dict[str, Any], line: int, start: dt.datetime, known: bool) -> EdfIdentity:
    """Subject and session from the catalog row, EDF+ subfields (spaces become ``_``)."""
    weight = row.get("weight_kg")
    subject = [f"weight={weight:g}kg"] if weight is not None else []
    drug = [
        f"{key}={row[attr]}"
        for key, attr in (
            ("drug", "systemic_drug"),
            ("dose", "systemic_dose"),
            ("concentration_mg/mL", "systemic_drug_concentration"),
            ("systemic_min", "total_systemic_time_min"),
        )
        if row.get(attr) not in (None, "")
    ]
    return EdfIdentity(
        patient=patient_field(row.get("animal_id"), extra=subject),
        recording=recording_field(
            start.date() if known else None,
            admin_code=f"line_{line}",
            equipment="Neuralynx",
            extra=drug,
        ),
        start=start,
    )


@line_asset(group=EXPORT_GROUP, modality="ephys", kinds={"edf"})
def edf_file(
    context: dg.AssetExecutionContext,
    paths: PathsResource,
    session_files: SessionFiles,
    analysis_parameters: Parameters,
    ephys_channels: EphysStore,
):
    """The line's ephys channels as one EDF+ file for sleep staging (YASA, SleepEEGpy,
    AccuSleep) and viewers (EDFbrowser, MNE).

    Unfiltered, in µV, at the recorded rate of the analysis grid (the tools filter and
    resample on load); the catalog's 'emg channel' labelled EMG, the others EEG. The .nev
    events (TTL port words, recording start/stop) and the analysis periods are annotations;
    recording pauses keep their length, interpolated and annotated BAD_ACQ_SKIP. Physical
    ranges come from the data, so one digital unit (stated per channel) is small.
    """
    line = line_of(context)
    own = Result.of(context, paths)
    params = analysis_parameters.values
    with input_errors_as_failures():
        store = ephys_channels.store()
        session = session_files.ephys
        row, _ = experiment_row(paths, line)
        names = store_channels(store)
        emg = (session.get("emg") or {}).get("name")
        if emg is not None and emg not in names:
            raise AceInputError(
                f"EMG channel {emg!r} is not among the recorded channels {names}",
                file=store.path,
                line=line,
                column="emg channel",
            )
        signals = _signals(session, names, emg)
        start, start_source = _start(session, row)
        t0 = float((store.meta.get("segments") or [{"t_start_s": 0.0}])[0]["t_start_s"])
        events_csv = ephys_channels.manifest.get("events_csv")
        events = pd.read_csv(events_csv) if events_csv else pd.DataFrame()
        annotations = event_annotations(events, t0) + period_annotations(params.values, t0)
        with staged(context, paths) as out:
            written = write_edf(
                out / edf_name(line),
                store,
                signals,
                annotations,
                _identity(row, line, start, start_source != UNKNOWN_START),
                clock=load_clock(store.path),
            )
            final = own.folder / edf_name(line)
            written["file"] = str(final)
            channel_of = dict(zip([s.label for s in signals], names, strict=True))
            write_manifest(
                out,
                {
                    **written,
                    "edf": str(final),
                    "source": str(store.path),
                    "channel_of_label": channel_of,
                    "emg_label": next((lb for lb, n in channel_of.items() if n == emg), None),
                    "start": start.isoformat(),
                    "start_from": start_source,
                    "n_events": len(events),
                },
            )
    yield dg.MaterializeResult(
        metadata={
            "edf": dg.MetadataValue.path(str(final)),
            "format": dg.MetadataValue.text(
                f"{written['format']}, {written['sampling_rate_hz']:g} Hz, "
                f"{written['n_records']} records of {written['record_duration_s']:g} s"
            ),
            "channels": dg.MetadataValue.md(
                "| label | source | range (µV) | µV per digital unit |\n|---|---|---|---|\n"
                + "\n".join(
                    f"| {c['label']} | {c['transducer']} | {c['physical_min_uV']:g} to "
                    f"{c['physical_max_uV']:g} | {c['resolution_uV']:.4g} |"
                    for c in written["channels"]
                )
            ),
            "resolution_uV": dg.MetadataValue.json(
                {c["label"]: c["resolution_uV"] for c in written["channels"]}
            ),
            "annotations": written["annotations"],
            "unrecorded_annotations": written["unrecorded_annotations"],
            "interpolated_samples": written["interpolated_samples"],
            "timing_error_max_ms": round(written["timing_error_max_ms"], 6),
            "start": dg.MetadataValue.text(f"{start.isoformat()} ({start_source})"),
            "bytes": written["bytes"],
        },
        value=own,
    )
