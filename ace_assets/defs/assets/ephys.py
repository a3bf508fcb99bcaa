"""Ephys chain: Neuralynx channels -> filtered -> spectrogram and phase, all chunked stores."""

from pathlib import Path

import dagster as dg
import numpy as np

from ace_assets.defs.ephys_checks import events_check, gap_check
from ace_assets.defs.failures import input_errors_as_failures
from ace_assets.defs.figures import colorbar, figure_metadata, new_figure
from ace_assets.defs.line_assets import line_asset
from ace_assets.defs.manifests import write_manifest
from ace_assets.defs.partitions import line_of
from ace_assets.defs.progress import Progress
from ace_assets.defs.resources import PathsResource
from ace_assets.defs.results import (
    EphysStore,
    Parameters,
    PhaseResult,
    SessionFiles,
    SpectrogramResult,
    staged,
)
from ace_assets.ephys.artifacts import remove_artifacts_store
from ace_assets.ephys.filters import design_filter, filter_store
from ace_assets.ephys.masks import blank_unrecorded, unrecorded_fraction, unrecorded_runs
from ace_assets.ephys.multitaper import store_reader
from ace_assets.ephys.phase import phase_store
from ace_assets.ephys.sidecars import copy_sidecars, segments_from_meta
from ace_assets.ephys.windows import WindowPlan, band_power, plan_windows, spectrogram
from ace_assets.errors import AceInputError
from ace_assets.io.csv_export import write_csv
from ace_assets.io.neuralynx import (
    NeuralynxSession,
    load_clock,
    write_session_store,
    write_stream_stores,
)
from ace_assets.io.neuralynx_events import events_sanity
from ace_assets.io.store import ArrayStore, atomic_save_npz

EPHYS_GROUP = "ephys"
SIGNALS = "signals.npyd"


def store_channels(store: ArrayStore) -> list[str]:
    """Channel names a (samples, channels) store was written with; column numbers if none."""
    return store.meta.get("channel_names") or [str(i) for i in range(store.shape[1])]


def _channel_names(session: dict) -> list[str]:
    names = [c["name"] for c in session["channels"]]
    emg = session.get("emg")
    if emg and emg["name"] not in names:
        names.append(emg["name"])
    return names


@line_asset(
    group=EPHYS_GROUP,
    modality="ephys",
    kinds={"neuralynx", "numpy"},
    checks=[("no_recording_gaps", True), ("events_match_recording", False)],
)
def ephys_channels(
    context: dg.AssetExecutionContext,
    paths: PathsResource,
    session_files: SessionFiles,
    analysis_parameters: Parameters,
):
    """The listed .ncs channels in volts (ADBitVolts, InputInverted honoured) on one grid.

    Read record by record in bounded blocks. Pauses up to ``max_fill_s`` are filled by
    interpolation and marked, longer ones are segment boundaries; channels of another rate
    are resampled onto the grid (and kept at their own rate as streams). The .nev events
    become a table, checked against the channels' time span.
    """
    line = line_of(context)
    own = EphysStore.of(context, paths)
    session = session_files.ephys
    params = analysis_parameters.values
    names = _channel_names(session)
    events_name = Path(session["events_file"]).name if session["events_file"] else None
    max_fill_s = float(params["max_fill_s"])
    with input_errors_as_failures():
        try:
            nlx = NeuralynxSession(
                session["folder"], names, events_name, max_fill_s=max_fill_s, confine_to=paths.data
            )
        except AceInputError as exc:
            raise AceInputError(
                exc.reason, file=exc.file, line=line, column=exc.column or "LFP and EEG CSCs"
            ) from None
        report = nlx.report()
        with staged(context, paths) as out:
            write_session_store(nlx, out / SIGNALS, meta={"line": line})
            streams = write_stream_stores(nlx, out)
            final = own.folder
            sanity = None
            n_events = 0
            if nlx.events_present:
                events = nlx.events()
                write_csv(events, out / "events.csv")
                n_events = len(events)
                seg = report.segments
                sanity = events_sanity(
                    events, seg[0]["t_start_s"], seg[-1]["t_stop_s"], file=str(nlx.events_path)
                )
            write_manifest(
                out,
                {
                    **report.manifest(),
                    "store": str(final / SIGNALS),
                    "stream_stores": {k: str(final / Path(v).name) for k, v in streams.items()},
                    "events_csv": str(final / "events.csv") if nlx.events_present else None,
                    "n_events": n_events,
                    "events_sanity": sanity,
                },
            )
    for warning in (sanity or {}).get("warnings", []):
        context.log.warning(f"line {line}: {warning}")
    for note in report.resampling_notes():
        context.log.info(f"line {line}: {note}")
    gaps, runs = report.gaps, report.channel_runs
    yield dg.MaterializeResult(
        metadata={
            "channels": dg.MetadataValue.text(", ".join(names)),
            "sampling_rate_hz": report.sampling_rate_hz,
            "streams": dg.MetadataValue.json(report.streams),
            "resampled": dg.MetadataValue.text("; ".join(report.resampling_notes()) or "none"),
            "n_samples": report.n_samples,
            "duration_s": round(report.duration_s, 3),
            "segments": report.n_segments,
            "pauses": len(gaps),
            "pauses_filled": sum(bool(g["filled"]) for g in gaps),
            "channel_runs_filled": sum(r["kind"] == "filled" for r in runs),
            "channel_runs_nan": sum(r["kind"] == "nan" for r in runs),
            "max_fill_s": max_fill_s,
            "partial_records": len(report.partial_records),
            "events": n_events,
            "events_file": dg.MetadataValue.text(report.events_file or "missing"),
        },
        value=own,
    )
    yield gap_check(gaps, runs, float(params["max_gap_s"]), max_fill_s)
    yield events_check(sanity)


@line_asset(
    group=EPHYS_GROUP,
    modality="ephys",
    kinds={"scipy", "numpy"},
)
def filtered_ephys(
    context: dg.AssetExecutionContext,
    paths: PathsResource,
    ephys_channels: EphysStore,
    analysis_parameters: Parameters,
):
    """Zero-phase Butterworth (SOS) or FIR band, streamed, each segment mirror-padded for the
    filter's impulse response; optional artefact removal."""
    line = line_of(context)
    own = EphysStore.of(context, paths)
    params = analysis_parameters.values
    with input_errors_as_failures():
        raw = ephys_channels.store()
        fs = float(raw.meta["sampling_rate_hz"])
        segments = segments_from_meta(raw.meta, raw.n_frames)
        low, high = params["filter_range"]
        band = [low or None, high or None]
        filt = _design(params, band, fs, raw, line)
        progress = Progress(context.log.info, f"line {line} {own.asset}", raw.n_frames, "samples")
        with staged(context, paths) as out:
            source = raw
            n_artifacts = 0
            if params["remove_artifacts"]:
                source, table = remove_artifacts_store(
                    raw,
                    out / "clean.npyd",
                    threshold_sd=params["artifact_threshold_sd"],
                    meta=dict(raw.meta),
                )
                copy_sidecars(raw.path, source.path)
                write_csv(table, out / "artifacts.csv")
                n_artifacts = len(table)
            filtered = filter_store(
                source,
                out / SIGNALS,
                params["filter_type"],
                band,
                fs=fs,
                order=params["filter_order"],
                segments=segments,
                progress=progress.advance,
                meta={
                    **raw.meta,
                    "filter_type": params["filter_type"],
                    "filter_range": [low, high],
                    "pad_samples": filt.padlen,
                },
            )
            copy_sidecars(raw.path, filtered.path)
            store_mb = round(filtered.nbytes / 2**20, 1)  # here: the folder moves on commit
            rms = recorded_rms(filtered)
            names = store_channels(raw)
            figure = _excerpt_figure(raw, filtered, fs, out)
            final = own.folder
            write_manifest(
                out,
                {
                    "store": str(final / SIGNALS),
                    "sampling_rate_hz": fs,
                    "filter_type": params["filter_type"],
                    "filter_range": [low, high],
                    "filter_order": params["filter_order"],
                    "pad_samples": filt.padlen,
                    "artifact_intervals": n_artifacts,
                    "channels": raw.meta.get("channel_names"),
                    "rms_recorded_uV": dict(zip(names, rms, strict=True)),
                },
            )
    yield dg.MaterializeResult(
        metadata={
            "filter": dg.MetadataValue.text(
                f"{params['filter_type']} {low}-{high} Hz, order {params['filter_order']}, zero-phase"
            ),
            "reflection_pad_s": round(filt.padlen / fs, 3),
            # the band's internal rate: the store keeps it there, reads give every sample at fs
            "computed_at": dg.MetadataValue.json(
                filtered.meta["filter"].get("decimated") or {"factor": 1, "internal_rate_hz": fs}
            ),
            "store_mb": store_mb,
            "artifact_intervals": n_artifacts,
            "segments_filtered_separately": len(segments),
            **progress.throughput(),
            "rms_recorded_uV": dg.MetadataValue.json(dict(zip(names, rms, strict=True))),
            "excerpt": figure,
        },
        value=own,
    )


def _design(params, band: list, fs: float, raw: ArrayStore, line: int):
    """The filter, or an error naming the column and, on a resampled grid, why the rate."""
    try:
        return design_filter(params["filter_type"], band, fs, order=params["filter_order"])
    except ValueError as exc:
        column = "filter_type" if "filter_type" in str(exc) else "filter_range"
        resampled = raw.meta.get("resampled") or {}
        why = (
            f" (the analysis grid is {fs:g} Hz, the lowest channel rate; "
            f"{', '.join(resampled)} were resampled to it: list only channels of a "
            "higher rate in 'LFP and EEG CSCs' to analyse above its Nyquist frequency)"
            if resampled
            else ""
        )
        raise AceInputError(f"{exc}{why}", line=line, column=column) from None


def recorded_rms(store: ArrayStore, chunk: int = 1 << 18) -> list[float]:
    """Per channel RMS (µV) over recorded samples only (filled and NaN stretches left out)."""
    runs = unrecorded_runs(store.meta)
    n_ch = store.shape[1]
    total, count = np.zeros(n_ch), np.zeros(n_ch)
    for a, block in store.iter_chunks(chunk):
        x = blank_unrecorded(block.astype(np.float64), a, runs)
        ok = np.isfinite(x)
        total += np.where(ok, x * x, 0.0).sum(axis=0)
        count += ok.sum(axis=0)
    if np.any(count == 0):
        empty = [store_channels(store)[c] for c in np.flatnonzero(count == 0)]
        raise AceInputError(f"channels {empty} hold no recorded sample", file=store.path)
    return (np.sqrt(total / count) * 1e6).tolist()


def _excerpt_figure(raw: ArrayStore, filtered: ArrayStore, fs: float, out: Path):
    n = min(raw.n_frames, int(5 * fs))
    start = max(0, raw.n_frames // 2 - n // 2)
    t = load_clock(raw.path).times(start, start + n)
    names = store_channels(raw)
    fig, axes = new_figure(9, 1.6 * len(names), nrows=len(names))
    a, b = raw.read(start, start + n), filtered.read(start, start + n)
    for i, name in enumerate(names):
        ax = axes[i, 0]
        ax.plot(t, a[:, i] * 1e6, lw=0.5, color="0.6", label="raw")
        ax.plot(t, b[:, i] * 1e6, lw=0.8, color="C0", label="filtered")
        ax.set_ylabel(f"{name}\nµV")
    axes[0, 0].legend(loc="upper right")
    axes[-1, 0].set_xlabel("s")
    return figure_metadata(fig, out / "excerpt.png", "Raw and filtered, 5 s excerpt")


_SPECTRAL_COLUMNS = {
    "freq_range": "ephys_freq_range",
    "time_bandwidth": "ephys_time_bandwidth",
    "detrend": "ephys_detrend",
    "n_tapers": "ephys_time_bandwidth",
    "nfft": "ephys_window_s",
}


def _window_plan(
    store: ArrayStore, params, line: int, context: dg.AssetExecutionContext
) -> WindowPlan:
    """Windows per segment for this line's settings; a shortened window is logged."""
    fs = float(store.meta["sampling_rate_hz"])
    try:
        plan = plan_windows(
            segments_from_meta(store.meta, store.n_frames),
            fs,
            window_s=float(params["ephys_window_s"]),
            step_s=float(params["ephys_step_s"]),
        )
    except AceInputError as exc:
        raise AceInputError(exc.reason, file=store.path, line=line, column=exc.column) from None
    for warning in plan.warnings:
        context.log.warning(f"line {line}: {warning}")
    return plan


@line_asset(group=EPHYS_GROUP, modality="ephys", kinds={"numpy"})
def ephys_spectrogram(
    context: dg.AssetExecutionContext,
    paths: PathsResource,
    ephys_channels: EphysStore,
    analysis_parameters: Parameters,
):
    """Multitaper spectrogram per channel (DPSS, 2·TW−1 tapers), windows laid per segment:
    windows across a pause are masked, a window longer than the recording shrinks (logged)."""
    line = line_of(context)
    own = SpectrogramResult.of(context, paths)
    params = analysis_parameters.values
    with input_errors_as_failures():
        raw = ephys_channels.store()
        names = store_channels(raw)
        plan = _window_plan(raw, params, line, context)
        settings = {
            "freq_range": tuple(params["ephys_freq_range"]),
            "time_bandwidth": params["ephys_time_bandwidth"],
            "detrend": params["ephys_detrend"],
        }
        segments = segments_from_meta(raw.meta, raw.n_frames)
        spectra = []
        progress = Progress(context.log.info, f"line {line} {own.asset}", raw.shape[1], "channels")
        for c in range(raw.shape[1]):
            try:
                s, freqs = spectrogram(store_reader(raw, c), plan, segments, **settings)
            except ValueError as exc:
                column = next((v for k, v in _SPECTRAL_COLUMNS.items() if k in str(exc)), None)
                raise AceInputError(
                    str(exc), line=line, column=column or "ephys_window_s"
                ) from None
            spectra.append(s.astype(np.float32))
            progress.update(c + 1)
        power = np.stack(spectra)
        times = load_clock(raw.path).times_of(plan.centers())
        usable = np.isfinite(power).all(axis=1)  # (channels, windows)
        if not usable.any(axis=1).all():
            empty = [names[c] for c in np.flatnonzero(~usable.any(axis=1))]
            raise AceInputError(
                f"no spectrogram window of channels {empty} holds only recorded samples "
                f"({plan.summary()['windows']} windows of {plan.window_s:g} s); shorten "
                "ephys_window_s or raise max_fill_s",
                file=raw.path,
                line=line,
                column="ephys_window_s",
            )
        mean_power = np.array([power[c][:, usable[c]].mean(axis=1) for c in range(len(names))])
        peak = freqs[np.argmax(mean_power, axis=1)]
        with staged(context, paths) as out:
            atomic_save_npz(
                out / "spectrogram.npz",
                power=power,
                times_s=times,
                freqs_hz=freqs,
                masked=plan.masked,
            )
            figure = _spectrogram_figure(power, times, freqs, names, out)
            final = own.folder
            write_manifest(
                out,
                {
                    "spectrogram": str(final / "spectrogram.npz"),
                    "channels": names,
                    "settings": {
                        **settings,
                        "window_s": plan.window_s,
                        "step_s": plan.step / plan.fs,
                    },
                    "windows": plan.summary(),
                    "masked_window_times_s": times[plan.masked].tolist(),
                    "n_tapers": int(2 * settings["time_bandwidth"] - 1),
                    "peak_frequency_hz": peak.tolist(),
                },
            )
    yield dg.MaterializeResult(
        metadata={
            "windows": len(times),
            "masked_windows": int(plan.masked.sum()),
            "masked_window_times_s": dg.MetadataValue.json(
                [round(t, 3) for t in times[plan.masked][:100].tolist()]
            ),
            "window_s": plan.window_s,
            "window_adapted": dg.MetadataValue.text("; ".join(plan.warnings) or "no"),
            "frequencies": len(freqs),
            "frequency_resolution_hz": float(freqs[1] - freqs[0]) if len(freqs) > 1 else 0.0,
            "peak_frequency_hz": dg.MetadataValue.json(
                dict(zip(names, peak.tolist(), strict=True))
            ),
            "settings": dg.MetadataValue.json({k: str(v) for k, v in settings.items()}),
            **progress.throughput(),
            "spectrogram": figure,
        },
        value=own,
    )


def _spectrogram_figure(power: np.ndarray, times: np.ndarray, freqs: np.ndarray, names, out: Path):
    fig, axes = new_figure(9, 1.8 * len(names), nrows=len(names))
    for i, name in enumerate(names):
        db = 10 * np.log10(np.maximum(power[i], 1e-30))
        mesh = axes[i, 0].pcolormesh(times, freqs, db, shading="auto", cmap="viridis")
        colorbar(axes[i, 0], mesh, "dB re 1 V²/Hz")
        axes[i, 0].set_ylabel(f"{name}\nHz")
    axes[-1, 0].set_xlabel("s (blank: windows across a recording pause)")
    return figure_metadata(fig, out / "spectrogram.png", "Multitaper spectrogram (dB)")


@line_asset(group=EPHYS_GROUP, modality="ephys", kinds={"numpy"})
def ephys_results(
    context: dg.AssetExecutionContext,
    paths: PathsResource,
    filtered_ephys: EphysStore,
    analysis_parameters: Parameters,
):
    """Hilbert phase and amplitude per channel in the filter band (NaN where nothing was
    recorded), and band power in windows laid per segment."""
    line = line_of(context)
    own = PhaseResult.of(context, paths)
    params = analysis_parameters.values
    with input_errors_as_failures():
        filtered = filtered_ephys.store()
        fs = float(filtered.meta["sampling_rate_hz"])
        names = store_channels(filtered)
        low = params["filter_range"][0] or None
        plan = _window_plan(filtered, params, line, context)
        runs = unrecorded_runs(filtered.meta)

        def recorded(a: int, b: int) -> np.ndarray:
            return blank_unrecorded(filtered.read(a, b).astype(np.float64), a, runs)

        power = band_power(recorded, plan)
        mean_power = (
            np.nanmean(np.where(plan.masked[:, None], np.nan, power), axis=0)
            if len(power)
            else np.full(len(names), np.nan)
        )
        if not np.all(np.isfinite(mean_power)):
            empty = [names[c] for c in np.flatnonzero(~np.isfinite(mean_power))]
            raise AceInputError(
                f"no band-power window of channels {empty} holds recorded samples; shorten "
                "ephys_window_s or raise max_fill_s",
                file=filtered.path,
                line=line,
                column="ephys_window_s",
            )
        times = load_clock(filtered.path).times_of(plan.centers())
        with staged(context, paths) as out:
            phase, amplitude = phase_store(
                filtered,
                out / "phase.npyd",
                out / "amplitude.npyd",
                low_hz=low,
                meta=dict(filtered.meta),
            )
            copy_sidecars(filtered.path, phase.path)
            copy_sidecars(filtered.path, amplitude.path)
            atomic_save_npz(out / "band_power.npz", power=power, times_s=times, masked=plan.masked)
            blanked = unrecorded_fraction(filtered.meta, filtered.n_frames, len(names))
            figure = _phase_figure(phase, amplitude, names, out)
            final = own.folder
            write_manifest(
                out,
                {
                    "phase": str(final / "phase.npyd"),
                    "amplitude": str(final / "amplitude.npyd"),
                    "band_power": str(final / "band_power.npz"),
                    "channels": names,
                    "band_hz": params["filter_range"],
                    "sampling_rate_hz": fs,
                    "windows": plan.summary(),
                    "mean_band_power_uV2": dict(
                        zip(names, (mean_power * 1e12).tolist(), strict=True)
                    ),
                    "phase_blanked_fraction": dict(zip(names, blanked, strict=True)),
                },
            )
    yield dg.MaterializeResult(
        metadata={
            "band_hz": dg.MetadataValue.text(str(params["filter_range"])),
            "channels": dg.MetadataValue.text(", ".join(names)),
            "mean_band_power_uV2": dg.MetadataValue.json(
                {n: float(mean_power[i] * 1e12) for i, n in enumerate(names)}
            ),
            "masked_windows": int(plan.masked.sum()),
            "window_adapted": dg.MetadataValue.text("; ".join(plan.warnings) or "no"),
            "phase_blanked_fraction": dg.MetadataValue.json(dict(zip(names, blanked, strict=True))),
            "phase_and_power": figure,
        },
        value=own,
    )


def _phase_figure(phase: ArrayStore, amplitude: ArrayStore, names, out: Path):
    fs = float(phase.meta["sampling_rate_hz"])
    n = min(phase.n_frames, int(2 * fs))
    start = max(0, phase.n_frames // 2 - n // 2)
    fig, axes = new_figure(9, 3, ncols=2)
    ph = phase.read(start, start + n)
    amp = amplitude.read(start, start + n)
    t = load_clock(phase.path).times(start, start + n)
    axes[0, 0].plot(t, ph[:, 0], lw=0.6, label=f"phase {names[0]}")
    ax2 = axes[0, 0].twinx()
    ax2.plot(t, amp[:, 0] * 1e6, lw=0.8, color="C1")
    axes[0, 0].set_xlabel("s")
    axes[0, 0].set_title("phase (rad) and envelope (µV, orange)")
    stride = max(1, phase.n_frames // 200_000)
    every = phase.mmap[::stride]
    for i, name in enumerate(names):
        values = np.asarray(every[:, i])
        axes[0, 1].hist(values[np.isfinite(values)], bins=36, histtype="step", label=name)
    axes[0, 1].set_title("phase histogram (unrecorded samples left out)")
    axes[0, 1].legend()
    return figure_metadata(fig, out / "phase.png", "Phase, envelope and phase histogram")
