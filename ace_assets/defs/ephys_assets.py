"""Ephys chain: Neuralynx channels -> filtered -> spectrogram and phase, all chunked stores."""

from pathlib import Path

import dagster as dg
import numpy as np

from ace_assets.defs.catalog_assets import analysis_parameters
from ace_assets.defs.checks import check_result
from ace_assets.defs.failures import input_errors_as_failures
from ace_assets.defs.figures import figure_metadata, new_figure
from ace_assets.defs.line_assets import line_asset
from ace_assets.defs.manifests import (
    asset_dir,
    load_parameters,
    read_manifest,
    staged_output,
    write_manifest,
)
from ace_assets.defs.partitions import line_of
from ace_assets.defs.resources import PathsResource
from ace_assets.defs.session_assets import session_files
from ace_assets.ephys.artifacts import remove_artifacts_store
from ace_assets.ephys.filters import filter_store
from ace_assets.ephys.multitaper import multitaper_spectrogram_chunked, store_reader
from ace_assets.ephys.phase import band_power_stream, phase_store
from ace_assets.ephys.sidecars import copy_sidecars, segments_from_meta
from ace_assets.io.neuralynx import NeuralynxSession, write_session_store
from ace_assets.io.store import ArrayStore, atomic_save_npz

EPHYS_GROUP = "ephys"
SIGNALS = "signals.npyd"


def _store(paths: PathsResource, asset: str, line: int, key: str = "store") -> ArrayStore:
    return ArrayStore(read_manifest(paths, asset, line)[key])


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
    deps=[session_files, analysis_parameters],
    kinds={"neuralynx", "numpy"},
    checks=[("no_recording_gaps", True)],
)
def ephys_channels(context: dg.AssetExecutionContext, paths: PathsResource):
    """The listed .ncs channels in volts (ADBitVolts, InputInverted honoured), gaps kept.

    Read lazily through neo in chunks into a (samples, channels) store with
    its per-record sample clock; the .nev events become a table.
    """
    line = line_of(context)
    session = read_manifest(paths, "session_files", line)["ephys"]
    names = _channel_names(session)
    events_name = Path(session["events_file"]).name if session["events_file"] else None
    with input_errors_as_failures():
        nlx = NeuralynxSession(session["folder"], names, events_name)
        report = nlx.report()
        with staged_output(paths, "ephys_channels", line) as out:
            write_session_store(nlx, out / SIGNALS, meta={"line": line})
            n_events = 0
            if nlx.events_present:
                events = nlx.events()
                events.to_csv(out / "events.csv", index=False)
                n_events = len(events)
            final = asset_dir(paths, "ephys_channels", line)
            write_manifest(
                out,
                {
                    **report,
                    "store": str(final / SIGNALS),
                    "events_csv": str(final / "events.csv") if nlx.events_present else None,
                    "n_events": n_events,
                },
            )
    gaps = report["gaps"]
    yield dg.MaterializeResult(
        metadata={
            "channels": dg.MetadataValue.text(", ".join(names)),
            "sampling_rate_hz": report["sampling_rate_hz"],
            "n_samples": report["n_samples"],
            "duration_s": round(report["duration_s"], 3),
            "segments": report["n_segments"],
            "gaps": len(gaps),
            "partial_records": dg.MetadataValue.json(report["partial_records"]),
            "events": n_events,
            "events_file": dg.MetadataValue.text(report["events_file"] or "missing"),
        }
    )
    yield gap_check(gaps, float(load_parameters(paths, line)["max_gap_s"]))


def gap_check(gaps: list[dict], max_gap_s: float) -> dg.AssetCheckResult:
    """Any pause is a warning (segments never bleed into each other); a long one blocks.

    Only an ERROR-severity failure of a blocking check stops downstream assets, so a short
    pause is reported but still analysed, and a pause above ``max_gap_s`` is not.
    """
    longest = max((float(g.get("duration_s", 0.0)) for g in gaps), default=0.0)
    too_long = longest > max_gap_s
    return check_result(
        "no_recording_gaps",
        passed=not gaps,
        severity=dg.AssetCheckSeverity.ERROR if too_long else dg.AssetCheckSeverity.WARN,
        measured=f"{len(gaps)} pauses, the longest {longest:.3f} s",
        threshold=f"no pause; pauses longer than max_gap_s = {max_gap_s:g} s block",
        setting="max_gap_s",
        metadata={
            "gaps": len(gaps),
            "longest_gap_s": longest,
            "max_gap_s": max_gap_s,
            "total_gap_s": float(sum(g.get("duration_s", 0.0) for g in gaps)),
            "gap_table": dg.MetadataValue.json(gaps),
            "note": "gaps are kept as segment boundaries; filters and phase never cross them",
        },
    )


@line_asset(
    group=EPHYS_GROUP,
    modality="ephys",
    deps=[ephys_channels, analysis_parameters],
    kinds={"scipy", "numpy"},
)
def filtered_ephys(context: dg.AssetExecutionContext, paths: PathsResource):
    """Zero-phase Butterworth (SOS) or FIR band, in overlapping chunks, optional artefact removal."""
    line = line_of(context)
    params = load_parameters(paths, line)
    with input_errors_as_failures():
        raw = _store(paths, "ephys_channels", line)
        fs = float(raw.meta["sampling_rate_hz"])
        segments = segments_from_meta(raw.meta, raw.n_frames)
        with staged_output(paths, "filtered_ephys", line) as out:
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
                table.to_csv(out / "artifacts.csv", index=False)
                n_artifacts = len(table)
            low, high = params["filter_range"]
            filtered = filter_store(
                source,
                out / SIGNALS,
                params["filter_type"],
                [low or None, high or None],
                fs=fs,
                order=params["filter_order"],
                segments=segments,
                meta={
                    **raw.meta,
                    "filter_type": params["filter_type"],
                    "filter_range": [low, high],
                },
            )
            copy_sidecars(raw.path, filtered.path)
            figure = _excerpt_figure(raw, filtered, fs, out)
            final = asset_dir(paths, "filtered_ephys", line)
            write_manifest(
                out,
                {
                    "store": str(final / SIGNALS),
                    "sampling_rate_hz": fs,
                    "filter_type": params["filter_type"],
                    "filter_range": [low, high],
                    "filter_order": params["filter_order"],
                    "artifact_intervals": n_artifacts,
                    "channels": raw.meta.get("channel_names"),
                },
            )
    yield dg.MaterializeResult(
        metadata={
            "filter": dg.MetadataValue.text(
                f"{params['filter_type']} {low}-{high} Hz, order {params['filter_order']}, zero-phase"
            ),
            "artifact_intervals": n_artifacts,
            "segments_filtered_separately": len(segments),
            "excerpt": figure,
        }
    )


def _excerpt_figure(raw: ArrayStore, filtered: ArrayStore, fs: float, out: Path):
    n = min(raw.n_frames, int(5 * fs))
    start = max(0, raw.n_frames // 2 - n // 2)
    t = (start + np.arange(n)) / fs
    names = store_channels(raw)
    fig, axes = new_figure(9, 1.6 * len(names), nrows=len(names))
    a, b = raw.read(start, start + n), filtered.read(start, start + n)
    for i, name in enumerate(names):
        ax = axes[i, 0]
        ax.plot(t, a[:, i] * 1e6, lw=0.5, color="0.6", label="raw")
        ax.plot(t, b[:, i] * 1e6, lw=0.8, color="C0", label="filtered")
        ax.set_ylabel(f"{name}\nµV", fontsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("s")
    return figure_metadata(fig, out / "excerpt.png", "Raw and filtered, 5 s excerpt")


@line_asset(
    group=EPHYS_GROUP, modality="ephys", deps=[ephys_channels, analysis_parameters], kinds={"numpy"}
)
def ephys_spectrogram(context: dg.AssetExecutionContext, paths: PathsResource):
    """Multitaper spectrogram per channel (DPSS, 2·TW−1 tapers), streamed window by window."""
    line = line_of(context)
    params = load_parameters(paths, line)
    with input_errors_as_failures():
        raw = _store(paths, "ephys_channels", line)
        fs = float(raw.meta["sampling_rate_hz"])
        names = store_channels(raw)
        settings = {
            "window_s": params["ephys_window_s"],
            "step_s": params["ephys_step_s"],
            "freq_range": tuple(params["ephys_freq_range"]),
            "time_bandwidth": params["ephys_time_bandwidth"],
            "detrend": params["ephys_detrend"],
        }
        spectra = []
        for c in range(raw.shape[1]):
            s, times, freqs = multitaper_spectrogram_chunked(
                store_reader(raw, c), raw.n_frames, fs, **settings
            )
            spectra.append(s.astype(np.float32))
        power = np.stack(spectra)
        with staged_output(paths, "ephys_spectrogram", line) as out:
            atomic_save_npz(out / "spectrogram.npz", power=power, times_s=times, freqs_hz=freqs)
            peak = freqs[np.argmax(power.mean(axis=2), axis=1)]
            figure = _spectrogram_figure(power, times, freqs, names, out)
            final = asset_dir(paths, "ephys_spectrogram", line)
            write_manifest(
                out,
                {
                    "spectrogram": str(final / "spectrogram.npz"),
                    "channels": names,
                    "settings": settings,
                    "n_tapers": int(2 * settings["time_bandwidth"] - 1),
                    "peak_frequency_hz": peak.tolist(),
                },
            )
    yield dg.MaterializeResult(
        metadata={
            "windows": len(times),
            "frequencies": len(freqs),
            "frequency_resolution_hz": float(freqs[1] - freqs[0]) if len(freqs) > 1 else 0.0,
            "peak_frequency_hz": dg.MetadataValue.json(
                dict(zip(names, peak.tolist(), strict=True))
            ),
            "settings": dg.MetadataValue.json({k: str(v) for k, v in settings.items()}),
            "spectrogram": figure,
        }
    )


def _spectrogram_figure(power: np.ndarray, times: np.ndarray, freqs: np.ndarray, names, out: Path):
    fig, axes = new_figure(9, 1.8 * len(names), nrows=len(names))
    for i, name in enumerate(names):
        db = 10 * np.log10(np.maximum(power[i], 1e-30))
        axes[i, 0].pcolormesh(times, freqs, db, shading="auto", cmap="viridis")
        axes[i, 0].set_ylabel(f"{name}\nHz", fontsize=7)
    axes[-1, 0].set_xlabel("s")
    return figure_metadata(fig, out / "spectrogram.png", "Multitaper spectrogram (dB)")


@line_asset(
    group=EPHYS_GROUP, modality="ephys", deps=[filtered_ephys, analysis_parameters], kinds={"numpy"}
)
def ephys_results(context: dg.AssetExecutionContext, paths: PathsResource):
    """Hilbert phase and amplitude per channel in the filter band, and band power over time."""
    line = line_of(context)
    params = load_parameters(paths, line)
    with input_errors_as_failures():
        filtered = _store(paths, "filtered_ephys", line)
        fs = float(filtered.meta["sampling_rate_hz"])
        names = store_channels(filtered)
        low = params["filter_range"][0] or None
        with staged_output(paths, "ephys_results", line) as out:
            phase, amplitude = phase_store(
                filtered,
                out / "phase.npyd",
                out / "amplitude.npyd",
                low_hz=low,
                meta=dict(filtered.meta),
            )
            copy_sidecars(filtered.path, phase.path)
            times, power = band_power_stream(
                filtered.read,
                filtered.n_frames,
                fs,
                window_s=params["ephys_window_s"],
                step_s=params["ephys_step_s"],
            )
            atomic_save_npz(out / "band_power.npz", power=power, times_s=times)
            figure = _phase_figure(phase, amplitude, names, out)
            final = asset_dir(paths, "ephys_results", line)
            write_manifest(
                out,
                {
                    "phase": str(final / "phase.npyd"),
                    "amplitude": str(final / "amplitude.npyd"),
                    "band_power": str(final / "band_power.npz"),
                    "channels": names,
                    "band_hz": params["filter_range"],
                    "sampling_rate_hz": fs,
                },
            )
    yield dg.MaterializeResult(
        metadata={
            "band_hz": dg.MetadataValue.text(str(params["filter_range"])),
            "channels": dg.MetadataValue.text(", ".join(names)),
            "mean_band_power_uV2": dg.MetadataValue.json(
                {n: float(np.nanmean(power[:, i]) * 1e12) for i, n in enumerate(names)}
            ),
            "phase_and_power": figure,
        }
    )


def _phase_figure(phase: ArrayStore, amplitude: ArrayStore, names, out: Path):
    fs = float(phase.meta["sampling_rate_hz"])
    n = min(phase.n_frames, int(2 * fs))
    start = max(0, phase.n_frames // 2 - n // 2)
    fig, axes = new_figure(9, 3, ncols=2)
    ph = phase.read(start, start + n)
    amp = amplitude.read(start, start + n)
    t = (start + np.arange(n)) / fs
    axes[0, 0].plot(t, ph[:, 0], lw=0.6, label=f"phase {names[0]}")
    ax2 = axes[0, 0].twinx()
    ax2.plot(t, amp[:, 0] * 1e6, lw=0.8, color="C1")
    axes[0, 0].set_xlabel("s")
    axes[0, 0].set_title("phase (rad) and envelope (µV, orange)", fontsize=8)
    stride = max(1, phase.n_frames // 200_000)
    every = phase.mmap[::stride]
    for i, name in enumerate(names):
        axes[0, 1].hist(np.asarray(every[:, i]), bins=36, histtype="step", label=name)
    axes[0, 1].set_title("phase histogram", fontsize=8)
    axes[0, 1].legend(fontsize=6)
    return figure_metadata(fig, out / "phase.png", "Phase, envelope and phase histogram")
