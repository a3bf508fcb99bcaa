"""Fluorescence-EEG coupling per line: coherence, coherogram and lagged correlation by period."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from ace_assets.catalog.periods import line_periods
from ace_assets.defs.assets.ephys import store_channels
from ace_assets.defs.assets.multimodal import MULTIMODAL_GROUP
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
    MovieResult,
    Parameters,
    Result,
    SourcesResult,
    staged,
)
from ace_assets.demo import coupling_truth, truth
from ace_assets.ephys.masks import blank_unrecorded, unrecorded_runs
from ace_assets.errors import AceInputError
from ace_assets.io.csv_export import write_csv
from ace_assets.io.neuralynx import load_clock
from ace_assets.io.store import atomic_save_npz
from ace_assets.multimodal.coupling import ALL, MEAN, SIGNAL, CouplingResult, couple
from ace_assets.multimodal.coupling_params import CouplingParams
from ace_assets.multimodal.frame_clock import ephys_on_frame_clock


@line_asset(group=MULTIMODAL_GROUP, modality="multimodal", kinds={"numpy", "scipy", "pandas"})
def fluorescence_eeg_coupling(
    context: dg.AssetExecutionContext,
    paths: PathsResource,
    multimodal_alignment: AlignmentResult,
    miniscope_sources: SourcesResult,
    calcium_events: EventsResult,
    denoised_movie: MovieResult,
    ephys_channels: EphysStore,
    analysis_parameters: Parameters,
):
    """Multitaper coherence (jackknife bounds, significance level), coherogram and lagged
    correlation (best lag, best band) of the mean fluorescence and every source's trace with
    every EEG/LFP channel, for the whole session and each period.

    The channels come from the unfiltered store, read block by block around the frames and
    resampled onto the frame clock anti-aliased (low-passed below 0.4 x the frame rate; band
    envelopes from the Hilbert amplitude): see ``ace_assets.multimodal.frame_clock``. A
    positive lag means the fluorescence follows the EEG. Every source is analysed; column
    ``kept`` says which ones curation kept (calcium_events).
    """
    line = line_of(context)
    own = Result.of(context, paths)
    params = analysis_parameters.values
    with input_errors_as_failures():
        settings = CouplingParams.from_mapping(params.group("coupling"))
        periods = line_periods(params, file=paths.parameters_csv, line=line)
        frame_times = multimodal_alignment.frame_times()
        zero = multimodal_alignment.zero_time_s
        fps = 1.0 / float(np.median(np.diff(frame_times)))
        raw = ephys_channels.store()
        fs = float(raw.meta["sampling_rate_hz"])
        settings.check_rates(fps, fs)
        fluorescence = _fluorescence(denoised_movie, miniscope_sources, frame_times.size)
        channels = store_channels(raw)
        runs = unrecorded_runs(raw.meta)

        def read(a: int, b: int) -> np.ndarray:
            return blank_unrecorded(raw.read(a, b).astype(np.float64), a, runs)

        positions = load_clock(raw.path).position(frame_times + zero)
        try:
            ephys = ephys_on_frame_clock(read, raw.n_frames, fs, positions, fps, settings.bands)
        except ValueError as exc:
            raise AceInputError(
                f"{exc}: the frames and the ephys recording do not overlap; check "
                "'zero time (s)' and the TTL alignment",
                file=raw.path,
                line=line,
                column="zero time (s)",
            ) from None
        result = couple(fluorescence, ephys, channels, frame_times, fps, settings, periods)
        kept = {f"source_{int(i)}" for i in np.asarray(calcium_events.kept()["ids"]).reshape(-1)}
        for table in (result.peaks, result.lags):
            table["kept"] = [name == MEAN or name in kept for name in table["signal"]]
    whole = result.peaks[result.peaks["period"] == ALL]
    arrays = {period: result.spectra_arrays(period) for period in [ALL, *periods.names]}
    scores = coupling_truth.score_coupling(
        paths.data, line, arrays[ALL], whole, miniscope_sources.truth_match
    )
    with staged(context, paths) as out:
        write_csv(result.peaks, out / "coherence_peaks.csv")
        write_csv(result.spectra, out / "coherence_spectra.csv")
        write_csv(result.lags, out / "lag_correlation.csv")
        write_csv(result.lag_curves, out / "lag_curves.csv")
        write_csv(result.sliding, out / "sliding_correlation.csv")
        _save_coherograms(result, out / "coherogram.npz")
        atomic_save_npz(
            out / "coherence_spectra.npz",
            **{f"{p}__{k}": v for p, a in arrays.items() for k, v in a.items()},
        )
        figures = {
            "coherence": _spectrum_figure(result, out),
            "coherogram": _coherogram_figure(result, frame_times[0], out),
            "lag_correlation": _lag_figure(result, out),
        }
        final = own.folder
        write_manifest(
            out,
            {
                "coherence_peaks_csv": str(final / "coherence_peaks.csv"),
                "lag_correlation_csv": str(final / "lag_correlation.csv"),
                "coherogram": str(final / "coherogram.npz"),
                "coherence_spectra": str(final / "coherence_spectra.npz"),
                "fps": fps,
                "ephys_fs": fs,
                "resampled_cutoff_hz": ephys.cutoff_hz,
                "decimated_fs": ephys.decimated_fs,
                "periods": list(periods.names),
                "mean_fluorescence": _summary(result),
                "ground_truth": scores,
            },
        )
    yield dg.MaterializeResult(
        metadata={
            "signals": len(fluorescence),
            "channels": dg.MetadataValue.text(", ".join(channels)),
            "periods": dg.MetadataValue.text(", ".join([ALL, *periods.names])),
            "coherence_mean_fluorescence": dg.MetadataValue.md(_peaks_markdown(result.peaks)),
            "best_band_mean_fluorescence": dg.MetadataValue.md(_lags_markdown(result.lags)),
            "significant_pairs_all": int(whole["significant"].sum()) if len(whole) else 0,
            **figures,
            **truth.metadata(scores),
        },
        value=own,
    )


def _fluorescence(
    movie: MovieResult, sources: SourcesResult, n_frames: int
) -> dict[str, np.ndarray]:
    """The movie's per-frame mean and each source's raw trace (``C_raw``: data, not a model)."""
    means = np.asarray(movie.qc()["frame_means"], dtype=np.float64)
    traces = sources.traces()
    raw = np.atleast_2d(np.asarray(traces["C_raw"], dtype=np.float64))
    for what, length in (("frame means", means.size), ("source traces", raw.shape[1])):
        if length != n_frames:
            raise AceInputError(
                f"{length} frames of {what} for {n_frames} aligned frames; re-materialize "
                "the movie chain and multimodal_alignment together",
                file=movie.folder if what == "frame means" else sources.folder,
            )
    out = {MEAN: means}
    for i, sid in enumerate(np.asarray(traces["ids"]).reshape(-1)):
        out[f"source_{int(sid)}"] = raw[i]
    return out


def _summary(result: CouplingResult) -> list[dict]:
    mean = result.peaks[result.peaks["signal"] == MEAN]
    keep = ["channel", "period", "peak_freq_hz", "peak_coherence", "significant", "lag_s"]
    return mean[[c for c in keep if c in mean]].to_dict(orient="records")


def _peaks_markdown(peaks: pd.DataFrame) -> str:
    mean = peaks[peaks["signal"] == MEAN] if len(peaks) else peaks
    if mean.empty or "peak_freq_hz" not in mean:
        return "no period long enough for a coherence estimate"
    lines = [
        "| channel | period | peak Hz | coherence [CI] | level | lag (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in mean.itertuples(index=False):
        mark = " *" if r.significant else ""
        lines.append(
            f"| {r.channel} | {r.period} | {r.peak_freq_hz:.2f} | {r.peak_coherence:.2f} "
            f"[{r.peak_lower:.2f}, {r.peak_upper:.2f}]{mark} | {r.peak_significance_level:.2f}"
            f" | {r.lag_s:+.3f} |"
        )
    return "\n".join(lines) + "\n\n\\* above the level (family-wise over frequencies)"


def _lags_markdown(lags: pd.DataFrame) -> str:
    if lags.empty:
        return "no lagged correlation"
    best = lags[(lags["signal"] == MEAN) & lags["best_band"]]
    lines = [
        "| channel | period | best band | r | lag (s) | p (effective pairs, all lags) |",
        "|---|---|---|---|---|---|",
    ]
    for r in best.itertuples(index=False):
        lines.append(
            f"| {r.channel} | {r.period} | {r.entry} | {r.r_best:+.2f} | {r.best_lag_s:+.2f} "
            f"| {r.p_best:.2g} |"
        )
    return "\n".join(lines) + "\n\npositive lag: the fluorescence follows the EEG"


def _save_coherograms(result: CouplingResult, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {"channels": np.array(list(result.coherograms), dtype=str)}
    for k, gram in enumerate(result.coherograms.values()):
        arrays[f"coherence_{k}"] = gram.coherence
        arrays[f"times_s_{k}"] = gram.times_s
        arrays[f"freqs_hz_{k}"] = gram.freqs
        arrays[f"level_{k}"] = np.array(gram.level)
    atomic_save_npz(path, **arrays)


def _spectrum_figure(result: CouplingResult, out: Path):
    spectra = result.spectra_by_channel
    fig, axes = new_figure(4.0 * max(1, len(spectra)), 3.0, ncols=max(1, len(spectra)))
    for ax, (channel, coh) in zip(axes[0], spectra.items(), strict=False):
        ax.fill_between(coh.freqs, coh.lower, coh.upper, alpha=0.3, label="jackknife CI")
        ax.plot(coh.freqs, coh.coherence, lw=1.0, label="coherence")
        ax.axhline(coh.level, color="grey", ls=":", lw=0.8, label="level (per frequency)")
        ax.axhline(coh.peak_level, color="k", ls="--", lw=0.8, label="level (peak)")
        ax.set_title(f"mean fluorescence vs {channel}")
        ax.set_xlabel("Hz")
        ax.set_ylim(0, 1)
    axes[0, 0].set_ylabel("magnitude-squared coherence")
    axes[0, 0].legend(fontsize=6)
    return figure_metadata(fig, out / "coherence.png", "Coherence spectrum, whole session")


def _coherogram_figure(result: CouplingResult, t0: float, out: Path):
    grams = result.coherograms
    fig, axes = new_figure(9.0, 2.2 * max(1, len(grams)), nrows=max(1, len(grams)))
    for ax, (channel, gram) in zip(axes[:, 0], grams.items(), strict=False):
        mesh = ax.pcolormesh(
            gram.times_s + t0, gram.freqs, gram.coherence, shading="auto", vmin=0, vmax=1
        )
        colorbar(ax, mesh, "coherence")
        ax.set_ylabel("Hz")
        ax.set_title(f"mean fluorescence vs {channel} (one-window level {gram.level:.2f})")
    axes[-1, 0].set_xlabel("s (session clock)")
    return figure_metadata(fig, out / "coherogram.png", "Coherogram")


def _lag_figure(result: CouplingResult, out: Path):
    curves = result.lag_curves
    lags = result.lags
    channels = list(dict.fromkeys(curves["channel"])) if len(curves) else []
    fig, axes = new_figure(4.0 * max(1, len(channels)), 3.0, ncols=max(1, len(channels)))
    for ax, channel in zip(axes[0], channels, strict=False):
        best = lags[
            (lags["signal"] == MEAN)
            & (lags["channel"] == channel)
            & (lags["period"] == ALL)
            & lags["best_band"]
        ]
        shown = [SIGNAL] + ([best.iloc[0].entry] if len(best) else [])
        for entry in dict.fromkeys(shown):
            c = curves[
                (curves["channel"] == channel)
                & (curves["period"] == ALL)
                & (curves["entry"] == entry)
            ]
            ax.plot(c["lag_s"], c["r"], lw=1.0, label=entry)
        if len(best):
            ax.axvline(best.iloc[0].best_lag_s, color="k", ls="--", lw=0.8)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_title(f"mean fluorescence vs {channel}")
        ax.set_xlabel("lag (s), > 0: fluorescence follows")
        ax.legend(fontsize=6)
    axes[0, 0].set_ylabel("Pearson r")
    return figure_metadata(fig, out / "lag_correlation.png", "Lagged correlation")
