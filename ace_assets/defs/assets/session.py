"""session_files: the raw inputs of one line, resolved and verified once."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from ace_assets.catalog.cells import preview
from ace_assets.catalog.experiments import FOLDER_COLUMNS
from ace_assets.catalog.paths import UnsafePathError
from ace_assets.defs.assets.catalog import (
    CATALOG_GROUP,
    analysis_parameters,
    experiment_row,
    experiments,
)
from ace_assets.defs.failures import input_errors_as_failures
from ace_assets.defs.manifests import write_manifest
from ace_assets.defs.partitions import line_of, line_partitions
from ace_assets.defs.presentation import REPORT_ORDER
from ace_assets.defs.resources import PathsResource
from ace_assets.defs.results import SessionFiles, results_asset, staged
from ace_assets.defs.timestamp_checks import COUNT_KEYS
from ace_assets.errors import AceInputError
from ace_assets.io.landing import landing_state
from ace_assets.io.session import resolve_session

#: Tag of a session_files materialization: the fingerprint of the raw files it saw.
FINGERPRINT_TAG = "ace/fingerprint"


@results_asset(
    group_name=CATALOG_GROUP,
    partitions_def=line_partitions,
    deps=[experiments],
    kinds={"miniscope", "neuralynx"},
)
def session_files(context: dg.AssetExecutionContext, paths: PathsResource) -> dg.MaterializeResult:
    """Miniscope movie files (numeric order, frame counts, rate) and Neuralynx channels of a line."""
    line = line_of(context)
    with input_errors_as_failures():
        row, source = experiment_row(paths, line)
        with raw_file_errors(source, row):
            session = resolve_session(paths.data, row, source)
            fingerprint = landing_state(paths.data, row).fingerprint
    with staged(context, paths) as out:
        write_manifest(out, session.to_json())
    meta: dict[str, object] = {
        "modalities": dg.MetadataValue.text(
            ", ".join(
                m for m, v in (("miniscope", session.miniscope), ("ephys", session.ephys)) if v
            )
            or "none"
        ),
        "missing": dg.MetadataValue.text("; ".join(session.missing) or "none"),
        "project_path": dg.MetadataValue.path(str(paths.project)),
        "data_path": dg.MetadataValue.path(str(paths.data)),
        "results_path": dg.MetadataValue.path(str(paths.results)),
    }
    if session.miniscope:
        ms = session.miniscope
        meta.update(
            {
                "miniscope_folder": dg.MetadataValue.path(ms.folder),
                "miniscope_version": ms.version,
                "movie_files": dg.MetadataValue.md(
                    "| file | frames |\n|---|---|\n"
                    + "\n".join(f"| {f['name']} | {f['frames']} |" for f in ms.files)
                ),
                "n_frames": ms.n_frames,
                "frame_rate_hz": ms.frame_rate,
                "frame_shape": dg.MetadataValue.text(f"{ms.frame_shape[0]} x {ms.frame_shape[1]}"),
                "dropped_frames": int(ms.dropped_frames["estimated_missing"]),
                **_timestamp_counts(ms.timestamps),
                "duration_s": round(ms.n_frames / ms.frame_rate, 3) if ms.frame_rate else 0.0,
                "miniscope_notes": dg.MetadataValue.text("; ".join(ms.notes) or "none"),
            }
        )
    if session.ephys:
        ep = session.ephys
        meta.update(
            {
                "ephys_folder": dg.MetadataValue.path(ep.folder),
                "channels": dg.MetadataValue.md(
                    "| channel | fs (Hz) | file |\n|---|---|---|\n"
                    + "\n".join(
                        f"| {c['name']} | {c.get('sampling_rate', '')} | {c['path']} |"
                        for c in ep.channels
                    )
                ),
                "events_file": dg.MetadataValue.text(ep.events_file or "missing"),
                "ephys_notes": dg.MetadataValue.text("; ".join(ep.notes) or "none"),
            }
        )
    meta["fingerprint"] = fingerprint
    return dg.MaterializeResult(
        metadata=meta,
        data_version=dg.DataVersion(fingerprint),
        tags={FINGERPRINT_TAG: fingerprint},
        value=SessionFiles.of(context, paths),
    )


@contextmanager
def raw_file_errors(source: str, row: dict) -> Iterator[None]:
    """A raw file the system refuses to open fails this line with its row, not a traceback.

    The catalog already refuses names no disk can hold; this covers what only the disk
    knows (a file vanishing mid-scan, a permission, a name too long once joined).
    """
    try:
        yield
    except AceInputError:
        raise
    except (UnsafePathError, OSError) as exc:
        columns = [c for k, c in FOLDER_COLUMNS.items() if row.get(k)]
        raise AceInputError(
            f"its raw files could not be read ({type(exc).__name__}: {preview(str(exc), 300)}); "
            "check the folder named in this column and its permissions",
            file=source,
            row=row.get("row"),
            line=int(row["line_number"]),
            column=" / ".join(columns) or None,
        ) from None


def _timestamp_counts(summary: dict | None) -> dict[str, object]:
    """Each kind of timestamp fault: its count, and its first frames when there are any."""
    out: dict[str, object] = {}
    for kind, key in COUNT_KEYS.items():
        entry = (summary or {}).get(kind) or {"count": 0, "frames": []}
        out[key] = int(entry["count"])
        if entry["count"]:
            out[f"{key}_frames"] = dg.MetadataValue.json(entry["frames"])
    return out


def processed_fingerprint(instance: dg.DagsterInstance, line: int | str) -> str | None:
    """The raw-file fingerprint the line's last ``session_files`` materialization saw."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=session_files.key, asset_partitions=[str(line)]),
        limit=1,
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return (records[0].asset_materialization.tags or {}).get(FINGERPRINT_TAG)


def line_session(paths: PathsResource, line: int) -> SessionFiles:
    """The line's ``session_files``, where an asset does not take them as an input."""
    return SessionFiles.at(paths, session_files, line)


# the line report starts with the session and its settings; line assets follow as defined
REPORT_ORDER[:0] = [a.key.path[-1] for a in (session_files, analysis_parameters)]
