"""Multimodal: Miniscope frames on the ephys clock, then phase locking of calcium events."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from ace_assets.catalog.periods import line_periods
from ace_assets.defs.checks import check_result
from ace_assets.defs.failures import input_errors_as_failures
from ace_assets.defs.figures import colorbar, figure_metadata, new_figure
from ace_assets.defs.line_assets import line_asset
from ace_assets.defs.manifests import write_manifest
from ace_assets.defs.partitions import line_of
from ace_assets.defs.resources import PathsResource
from ace_assets.defs.results import (
    AlignmentResult,
    EphysStore,
    EventsResult,
    Parameters,
    PhaseResult,
    Result,
    SessionFiles,
    SourcesResult,
    SpectrogramResult,
    staged,
)
from ace_assets.defs.timestamp_checks import timestamp_metadata
from ace_assets.demo import truth
from ace_assets.errors import AceInputError
from ace_assets.io.csv_export import write_csv
from ace_assets.io.frame_times import FrameTimingParams
from ace_assets.io.miniscope import open_with_timing
from ace_assets.io.neuralynx import load_clock
from ace_assets.io.session import movie_folders
from ace_assets.io.store import atomic_save_npz
from ace_assets.multimodal.alignment import align_frames
from ace_assets.multimodal.phase_locking import (
    circular_stats,
    compare_period_rates,
    event_phases_store,
)

MULTIMODAL_GROUP = "multimodal"


@line_asset(
    group=MULTIMODAL_GROUP,
    modality="multimodal",
    kinds={"numpy"},
    checks=[("ttl_count_matches_frames", True)],
)
def multimodal_alignment(
    context: dg.AssetExecutionContext,
    paths: PathsResource,
    session_files: SessionFiles,
    ephys_channels: EphysStore,
    analysis_parameters: Parameters,
):
    """Each Miniscope frame's time on the ephys clock, from one .nev TTL per frame.

    The frame pulses are the rising edges of one bit of the port word
    (``ttl_sync_bit``, or the bit that matches the frame count and interval).
    Spurious pulses listed in ``indices of TTL events to delete`` go first;
    a few missing pulses are repaired from the camera's own timestamps; the
    mismatch is reported, never hidden. Camera timestamps out of order are repaired
    or refused (``timestamp_faults``), and every frame must lie within
    ``alignment_tolerance_ms`` of the camera clock fitted to the pulses, else the
    frames are named. ``zero time (s)`` sets the origin.
    """
    line = line_of(context)
    own = AlignmentResult.of(context, paths)
    session = session_files.manifest
    params = analysis_parameters.values
    channels = ephys_channels.manifest
    with input_errors_as_failures():
        if not channels.get("events_csv"):
            raise AceInputError(
                "no .nev events file: frames cannot be placed on the ephys clock",
                file=session["ephys"]["folder"],
                line=line,
                column="events filename",
            )
        events = pd.read_csv(channels["events_csv"])
        timing = FrameTimingParams.from_mapping(params.group("timing"))
        recording = open_with_timing(movie_folders(session["miniscope"]), timing, paths.data)
        delete = list(params["indices of TTL events to delete"])
        zero = float(params["zero time (s)"])
        try:
            frame_times, ttl, report = align_frames(
                events,
                recording.n_frames,
                recording.timestamps_ms,
                delete,
                zero,
                sync_bit=params["ttl_sync_bit"],
                events_file=session["ephys"]["events_file"],
                tolerance_ms=timing.alignment_tolerance_ms,
                segment_starts=[seg.first_frame for seg in recording.segments],
            )
        except AceInputError as exc:
            raise AceInputError(exc.reason, file=exc.file, line=line, column=exc.column) from None
    accuracy = truth.score_alignment(paths.data, line, frame_times, zero)
    with staged(context, paths) as out:
        atomic_save_npz(
            out / "frame_times.npz",
            frame_times_s=frame_times,
            ttl_times_s=ttl,
            deleted=np.asarray(delete),
        )
        figure = _alignment_figure(frame_times, recording.timestamps_ms, out)
        final = own.folder
        write_manifest(
            out,
            {
                "frame_times": str(final / "frame_times.npz"),
                "zero_time_s": zero,
                "deleted_ttl_indices": delete,
                "report": report.manifest(),
                "ground_truth": accuracy,
            },
        )
    mismatch = report.mismatch
    repaired = len(report.repaired_frames)
    limit = int(params["max_ttl_mismatch"])
    yield dg.MaterializeResult(
        metadata={
            "n_frames": recording.n_frames,
            "ttl_pulses": len(ttl),
            "deleted": dg.MetadataValue.text(str(delete)),
            "repaired_frames": repaired,
            "method": dg.MetadataValue.text(report.method),
            "sync_bit": dg.MetadataValue.text(
                f"bit {report.sync_bit} (0x{1 << report.sync_bit:04X}), {report.sync_bit_source}"
            ),
            "edges_per_bit": dg.MetadataValue.md(_edges_markdown(report.sync.edges_per_bit)),
            "first_frame_s": float(frame_times[0]) if len(frame_times) else float("nan"),
            "max_frame_residual_ms": _or_nan(report.max_frame_residual_ms),
            "alignment_tolerance_ms": _or_nan(report.tolerance_ms),
            **timestamp_metadata(recording.timing),
            "alignment": figure,
            **truth.metadata(accuracy),
        },
        value=own,
    )
    yield check_result(
        "ttl_count_matches_frames",
        passed=abs(mismatch) <= limit and repaired <= limit,
        measured=(
            f"{report.n_ttl} TTL pulses after deletion for {recording.n_frames} frames "
            f"(mismatch {mismatch}, {repaired} frames repaired from camera timestamps)"
        ),
        threshold=f"|mismatch| and repaired frames at most {limit}",
        setting="max_ttl_mismatch",
        advice="Spurious pulses can be removed with 'indices of TTL events to delete'.",
        metadata={
            "ttl_after_deletion": report.n_ttl,
            "frames": recording.n_frames,
            "mismatch": mismatch,
            "repaired_frames": repaired,
            "threshold": limit,
        },
    )


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _edges_markdown(rows: list[dict]) -> str:
    lines = ["| bit | mask | rising edges | median interval (ms) |", "|---|---|---|---|"]
    lines += [
        f"| {r['bit']} | {r['mask']} | {r['rising_edges']} | {r['median_interval_ms']} |"
        for r in rows
    ]
    return "\n".join(lines)


def _alignment_figure(frame_times: np.ndarray, camera_ms: np.ndarray, out: Path):
    fig, axes = new_figure(9, 2.5, ncols=2)
    axes[0, 0].plot(np.diff(frame_times) * 1e3, lw=0.6)
    axes[0, 0].set_title("frame interval on the ephys clock (ms)")
    residual = frame_times - frame_times[0] - (camera_ms - camera_ms[0]) / 1e3
    axes[0, 1].plot(residual * 1e3, lw=0.6)
    axes[0, 1].set_title("ephys minus camera clock (ms)")
    return figure_metadata(fig, out / "alignment.png", "Frame timing")


@line_asset(
    group=MULTIMODAL_GROUP,
    modality="multimodal",
    kinds={"numpy", "pandas"},
)
def multimodal_results(
    context: dg.AssetExecutionContext,
    paths: PathsResource,
    multimodal_alignment: AlignmentResult,
    calcium_events: EventsResult,
    ephys_results: PhaseResult,
    ephys_spectrogram: SpectrogramResult,
    miniscope_sources: SourcesResult,
    analysis_parameters: Parameters,
):
    """Ephys phase at every calcium event; per component MRL, Rayleigh p; rates by period."""
    line = line_of(context)
    own = Result.of(context, paths)
    params = analysis_parameters.values
    sources = miniscope_sources  # traces for the figure and the demo's truth
    frame_times = multimodal_alignment.frame_times()
    events = calcium_events.events()
    phase = ephys_results.store()
    clock = load_clock(phase.path)
    channels = ephys_results.channels
    zero = multimodal_alignment.zero_time_s
    # frame_times are relative to zero time; the ephys clock is relative to the first sample
    event_times = frame_times[events["frame"].to_numpy(dtype=int)] if len(events) else np.empty(0)
    phases = (
        event_phases_store(event_times + zero, phase, clock)
        if len(event_times)
        else np.empty((0, len(channels)))
    )
    per_event = events.assign(ephys_time_s=event_times)
    for i, name in enumerate(channels):
        per_event[f"phase_{name}"] = phases[:, i]
    rows = []
    for comp, group in per_event.groupby("component"):
        for name in channels:
            rows.append(
                {
                    "component": comp,
                    "channel": name,
                    **circular_stats(group[f"phase_{name}"].to_numpy()),
                }
            )
    locking = pd.DataFrame(rows)
    times_by_comp = {c: g["ephys_time_s"].to_numpy() for c, g in per_event.groupby("component")}
    with input_errors_as_failures():
        periods = line_periods(params, file=paths.parameters_csv, line=line)
    rates = compare_period_rates(
        times_by_comp, periods.intervals("high_slow_wave"), periods.intervals("control")
    )
    locked = locking[locking["rayleigh_p"] < 0.05] if len(locking) else locking
    truth_scores = truth.score_locking(paths.data, line, locking, channels, sources.truth_match)
    with staged(context, paths) as out:
        write_csv(per_event, out / "event_phases.csv")
        write_csv(locking, out / "phase_locking.csv")
        write_csv(rates, out / "period_rates.csv")
        figure = _aligned_figure(ephys_spectrogram, sources, frame_times, zero, out)
        write_manifest(
            out,
            {
                "event_phases_csv": str(own.folder / "event_phases.csv"),
                "n_events": len(per_event),
                "n_locked_pairs": len(locked),
                "ground_truth": truth_scores,
            },
        )
    yield dg.MaterializeResult(
        metadata={
            "events_with_phase": len(per_event),
            "components": int(per_event["component"].nunique()) if len(per_event) else 0,
            "locked_component_channel_pairs": len(locked),
            "phase_locking": dg.MetadataValue.md(_locking_markdown(locking)),
            "mean_rate_ratio_high_vs_control": float(np.nanmean(rates["rate_ratio"]))
            if len(rates)
            else float("nan"),
            "aligned_traces": figure,
            **truth.metadata(truth_scores),
        },
        value=own,
    )


def _locking_markdown(locking: pd.DataFrame) -> str:
    if locking.empty:
        return "no events"
    top = locking.sort_values("rayleigh_p").head(15)
    lines = [
        "| component | channel | n | MRL | mean phase | Rayleigh p |",
        "|---|---|---|---|---|---|",
    ]
    for r in top.itertuples(index=False):
        lines.append(
            f"| {r.component} | {r.channel} | {r.n_events} | {r.mrl:.2f} | {r.mean_phase:.2f} | {r.rayleigh_p:.2g} |"
        )
    return "\n".join(lines)


def _aligned_figure(
    spectrogram: SpectrogramResult,
    sources: SourcesResult,
    frame_times: np.ndarray,
    zero: float,
    out: Path,
):
    spec = spectrogram.spectrogram()
    c = sources.traces()["C"]
    fig, axes = new_figure(9, 4, nrows=2)
    db = 10 * np.log10(np.maximum(spec["power"][0], 1e-30))
    mesh = axes[0, 0].pcolormesh(
        spec["times_s"] - zero, spec["freqs_hz"], db, shading="auto", cmap="viridis"
    )
    colorbar(axes[0, 0], mesh, "dB re 1 V²/Hz")
    axes[0, 0].set_ylabel("Hz")
    axes[0, 0].set_title("ephys spectrogram (first channel) and calcium traces on the same clock")
    k = min(len(c), 12)
    for i in range(k):
        trace = c[i] / (np.ptp(c[i]) or 1.0)
        axes[1, 0].plot(frame_times, trace + i, lw=0.5)
    axes[1, 0].set_xlim(axes[0, 0].get_xlim())
    axes[1, 0].set_xlabel("s (ephys clock minus zero time)")
    return figure_metadata(fig, out / "aligned.png", "Aligned traces over the spectrogram")
