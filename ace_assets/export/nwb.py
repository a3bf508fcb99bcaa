"""One line as an NWB file: session, subject, imaging, ephys, TTLs and settings, on one clock.

Time zero is the first ephys sample when the line has ephys (Miniscope frames are placed on
that clock by the TTL alignment), else the Miniscope's recording start (its camera clock).
``session_start_time`` is that recording's own start: the ``.ncs`` header's ``TimeCreated``
or the Miniscope ``recordingStartTime``, falling back to the catalog date. Those clocks
carry no time zone, so the writing machine's is assumed.

The file is written iteratively: ephys samples and their times go from the stores to HDF5 a
buffer at a time (gzip), so memory does not grow with the recording's length.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from hdmf.common import DynamicTable, VectorData
from pynwb import NWBHDF5IO, NWBFile
from pynwb.file import Subject

from ace_assets.export.nwb_ephys import EphysData, add_ephys
from ace_assets.export.nwb_imaging import ImagingData, add_imaging

#: experiments.csv has a column "rat weight (kg)": the lab records rats
DEFAULT_SPECIES = "Rattus norvegicus"
#: written when the catalog gives no age: "at least 0 days", i.e. unknown (ISO 8601 range)
UNKNOWN_AGE = "P0D/"


@dataclass
class SessionMeta:
    """What the catalog row and the recordings say about the session."""

    line: int
    start_time: dt.datetime
    start_source: str  #: where ``start_time`` came from, for the session description
    animal_id: str | None = None
    date: str | None = None
    weight_kg: float | None = None
    drug: str | None = None
    dose: str | None = None
    drug_concentration: str | None = None
    drug_time_min: str | None = None
    comments: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  #: other catalog columns
    parameters: dict[str, Any] = field(default_factory=dict)  #: the line's analysis settings
    time_reference: str = ""  #: what time zero is

    @classmethod
    def from_row(
        cls,
        row: dict[str, Any],
        *,
        start_time: dt.datetime,
        start_source: str,
        parameters: dict[str, Any],
        time_reference: str,
    ) -> SessionMeta:
        """From a stored experiments row (:meth:`ace_assets.catalog.experiments.Experiment.as_row`)."""
        return cls(
            line=int(row["line_number"]),
            start_time=start_time,
            start_source=start_source,
            animal_id=row.get("animal_id"),
            date=row.get("date"),
            weight_kg=row.get("weight_kg"),
            drug=row.get("systemic_drug"),
            dose=row.get("systemic_dose"),
            drug_concentration=row.get("systemic_drug_concentration"),
            drug_time_min=row.get("total_systemic_time_min"),
            comments=row.get("comments"),
            extra={str(k): str(v) for k, v in (row.get("extra") or {}).items() if v},
            parameters=parameters,
            time_reference=time_reference,
        )


def local_time(naive: dt.datetime) -> dt.datetime:
    """A clock reading without a zone, taken as the writing machine's local time."""
    return naive if naive.tzinfo else naive.astimezone()


def neuralynx_start(props: dict[str, str]) -> dt.datetime | None:
    """``-TimeCreated 2024/01/01 12:00:00`` of an .ncs header, or None."""
    text = " ".join(props.get("TimeCreated", "").split()[:2])
    for fmt in ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M:%S.%f"):
        try:
            return local_time(dt.datetime.strptime(text, fmt))
        except ValueError:
            continue
    return None


def miniscope_start(session_meta: dict[str, Any]) -> dt.datetime | None:
    """``recordingStartTime`` of a Miniscope V4 session's metaData.json, or None."""
    start = session_meta.get("recordingStartTime")
    if not isinstance(start, dict):
        return None
    try:
        return local_time(
            dt.datetime(
                int(start["year"]),
                int(start["month"]),
                int(start["day"]),
                int(start.get("hour", 0)),
                int(start.get("minute", 0)),
                int(start.get("second", 0)),
                int(start.get("msec", 0)) * 1000,
            )
        )
    except (KeyError, TypeError, ValueError):
        return None


def _subject(meta: SessionMeta) -> Subject:
    extra = {k.lower(): v for k, v in meta.extra.items()}
    return Subject(
        subject_id=(meta.animal_id or f"line{meta.line}").replace("/", "_"),
        species=extra.get("species", DEFAULT_SPECIES),
        sex=extra.get("sex", "U"),
        age=extra.get("age", UNKNOWN_AGE),
        weight=f"{meta.weight_kg} kg" if meta.weight_kg is not None else None,
        description="from experiments.csv"
        + (f"; age not in the catalog ({UNKNOWN_AGE}: unknown)" if "age" not in extra else ""),
    )


def _pharmacology(meta: SessionMeta) -> str | None:
    if not meta.drug:
        return None
    parts = [f"systemic {meta.drug}"]
    if meta.dose:
        parts.append(f"dose {meta.dose} (% or mg/kg/min)")
    if meta.drug_concentration:
        parts.append(f"concentration {meta.drug_concentration} mg/mL")
    if meta.drug_time_min:
        parts.append(f"total systemic time {meta.drug_time_min} min")
    return "; ".join(parts)


def parameters_table(parameters: dict[str, Any]) -> DynamicTable:
    """Every analysis setting as a name / JSON value row: the provenance of the results."""
    names = sorted(parameters)
    return DynamicTable(
        name="analysis_parameters",
        description="the line's analysis settings (analysis_parameters.csv and run-config "
        "overrides), each value as JSON",
        columns=[
            VectorData(name="setting", data=names, description="setting name"),
            VectorData(
                name="value",
                data=[json.dumps(parameters[n], default=str) for n in names],
                description="its value, JSON",
            ),
        ],
    )


def build_nwbfile(meta: SessionMeta) -> NWBFile:
    what = f"line {meta.line}" + (f", {meta.animal_id}" if meta.animal_id else "")
    extra = {k.lower(): v for k, v in meta.extra.items()}
    nwb = NWBFile(
        session_description=f"{what}: Miniscope calcium imaging and/or Neuralynx EEG/LFP, "
        f"processed by ace_assets. Time zero: {meta.time_reference}. Session start: "
        f"{meta.start_source}.",
        identifier=str(uuid.uuid4()),
        session_start_time=meta.start_time,
        session_id=f"line{meta.line}" + (f"_{meta.date}" if meta.date else ""),
        experiment_description="Miniscope one-photon calcium imaging with Neuralynx EEG/LFP/EMG "
        "(ace_assets)",
        notes=meta.comments,
        pharmacology=_pharmacology(meta),
        keywords=["Miniscope", "calcium imaging", "EEG", "LFP"],
        # optional experiments.csv columns of these names
        experimenter=extra.get("experimenter"),
        institution=extra.get("institution"),
        lab=extra.get("lab"),
        source_script=f"ace_assets {version('ace_assets')} (asset nwb_file)",
        source_script_file_name="ace_assets/export/nwb.py",
    )
    nwb.subject = _subject(meta)
    if meta.parameters:
        nwb.add_analysis(parameters_table(meta.parameters))
    return nwb


def write_nwb(
    path: str | Path,
    meta: SessionMeta,
    *,
    imaging: ImagingData | None = None,
    ephys: EphysData | None = None,
    final_folder: str | Path | None = None,
) -> Path:
    """Write the line's NWB file at ``path``; ``final_folder`` is where it will live (for the
    AVI paths, relative to it) when ``path`` is in a staging folder beside it."""
    path = Path(path)
    if imaging is None and ephys is None:
        raise ValueError(f"line {meta.line}: nothing to export (no imaging and no ephys)")
    nwb = build_nwbfile(meta)
    if ephys is not None:
        add_ephys(nwb, ephys)
    if imaging is not None:
        add_imaging(nwb, imaging, Path(final_folder or path.parent))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path
