"""Calcium chain: CNMF-E class sources -> curated events -> traces, phase, spectrogram, ETAs."""

from pathlib import Path

import dagster as dg
import numpy as np

from ace_assets.catalog.curation import read_curation
from ace_assets.defs.assets.movie import MOVIE_GROUP
from ace_assets.defs.checks import check_result
from ace_assets.defs.failures import input_errors_as_failures
from ace_assets.defs.figures import colorbar, figure_metadata, new_figure
from ace_assets.defs.line_assets import line_asset
from ace_assets.defs.manifests import write_manifest
from ace_assets.defs.partitions import line_of
from ace_assets.defs.progress import Progress
from ace_assets.defs.resources import PathsResource
from ace_assets.defs.results import (
    EventsResult,
    MovieResult,
    Parameters,
    Result,
    SourcesResult,
    staged,
)
from ace_assets.demo import truth
from ace_assets.io.csv_export import write_csv
from ace_assets.io.store import atomic_save_npz
from ace_assets.miniscope.events import detect_events
from ace_assets.miniscope.extraction.pipeline import extract
from ace_assets.miniscope.extraction.result import apply_rejections, load_result, save_result
from ace_assets.miniscope.postprocess import (
    bandpass_traces,
    component_event_triggered_averages,
    hilbert_phase,
    population_spectrogram,
    zscore_traces,
)

SOURCES = "sources"


class CurationConfig(dg.Config):
    """Extra component ids to reject for this run, on top of curation.csv."""

    rejected_components: list[int] = []


@line_asset(
    group=MOVIE_GROUP,
    modality="miniscope",
    kinds={"numpy", "scipy"},
    checks=[("components_found", True)],
    heavy=True,
)
def miniscope_sources(
    context: dg.AssetExecutionContext,
    paths: PathsResource,
    motion_corrected_movie: MovieResult,
    denoised_movie: MovieResult,
    analysis_parameters: Parameters,
):
    """CNMF-E class 1-photon extraction: corr x PNR seeding, ring background, HALS, OASIS.

    Only cell-like candidates are kept (SNR >= min_SNR, footprint shape against gSig, no
    periodic trace at the stripe frequencies the denoiser reported or found in the trace);
    the others are counted per reason in the metadata and drawn dashed in the contour
    figure. Footprints are sparse and stored as CSC arrays in an npz (no pickle). On the
    generated demo data, accuracy against the known neurons is in the metadata.
    """
    line = line_of(context)
    own = SourcesResult.of(context, paths)
    params = analysis_parameters.values
    # the stripe rates the denoiser saw (its manifest survives keep_intermediate_movies FALSE)
    stripes = denoised_movie.stripe_frequencies_hz
    with input_errors_as_failures():
        movie = motion_corrected_movie.store()
        fps = float(movie.meta["fps"])
        progress = Progress(context.log.info, f"line {line} {own.asset}", movie.n_frames)
        with staged(context, paths) as out:
            result = extract(
                progress.source(movie),
                params.group("extraction"),
                fps=fps,
                workdir=out,
                source=movie.path,
                stripe_frequencies_hz=stripes,
                progress=progress.message,
            )
            save_result(result, out / SOURCES)
            final = own.folder
            atomic_save_npz(
                out / "traces.npz",
                C=result.C,
                S=result.S,
                C_raw=result.C_raw,
                ids=result.ids,
                centers=result.centers,
                snr=result.snr,
                r_values=result.r_values,
            )
            accuracy, match = truth.score_sources(
                paths.data,
                line,
                result,
                params["crop_coords"],
                motion_corrected_movie.folder / "qc.npz",
            )
            figures = _source_figures(result, out)
            write_manifest(
                out,
                {
                    "sources": str(final / SOURCES),
                    "traces": str(final / "traces.npz"),
                    "n_components": result.n_components,
                    "n_frames": result.n_frames,
                    "fps": fps,
                    "warnings": result.warnings,
                    "params": result.params,
                    "n_candidates": result.info.get("n_candidates", result.n_components),
                    "rejected_counts": result.info.get("rejected_counts", {}),
                    "stripe_frequencies_hz": stripes,
                    "ground_truth": accuracy,
                    "truth_match": match,
                },
            )
    for warning in result.warnings:
        context.log.warning(warning)
    rejected = result.info.get("rejected_counts", {})
    n_candidates = int(result.info.get("n_candidates", result.n_components))
    why = _rejected_text(rejected)
    yield dg.MaterializeResult(
        metadata={
            "n_components": result.n_components,
            "n_candidates": n_candidates,
            **{f"rejected_{reason}": int(n) for reason, n in rejected.items()},
            "stripe_frequencies_hz": dg.MetadataValue.text(
                ", ".join(f"{f:.3g}" for f in stripes) or "none reported by denoise"
            ),
            "median_snr": float(np.median(result.snr)) if result.n_components else 0.0,
            "warnings": dg.MetadataValue.text("; ".join(result.warnings) or "none"),
            **progress.throughput(),
            **figures,
            **truth.metadata(accuracy),
        },
        value=own,
    )
    yield check_result(
        "components_found",
        passed=result.n_components > 0,
        measured=f"{result.n_components} components kept of {n_candidates} candidates"
        + (f" (rejected: {why})" if why else ""),
        threshold="at least 1",
        setting="min_corr, min_pnr (seeding), min_SNR, max_footprint_elongation, "
        "min_footprint_size, max_footprint_size or max_periodic_power (acceptance) — columns "
        "of analysis_parameters.csv, or ops.analysis_parameters.config.overrides",
        advice="; ".join(result.warnings),
        metadata={
            "n_components": result.n_components,
            "warnings": dg.MetadataValue.text("; ".join(result.warnings) or "none"),
        },
    )


def _rejected_text(counts: dict) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in counts.items() if n)


#: how a rejection reason is labelled on the contour figure
_REASON_LABEL = {
    "low_snr": "snr",
    "r_value_floor": "r",
    "elongated": "long",
    "too_large": "big",
    "too_small": "small",
    "stripe_frequency": "stripe",
    "periodic": "periodic",
}


def draw_sources(ax, result) -> None:
    """Kept components solid with their ids, rejected ones dashed with id and reasons."""
    colorbar(ax, ax.imshow(result.correlation_image, cmap="gray"), "local correlation")
    for k, cont in enumerate(result.contours):
        if len(cont):
            ax.plot(cont[:, 1], cont[:, 0], lw=0.7)
            y, x = result.centers[k]
            ax.text(x, y, str(int(result.ids[k])), color="y")
    rejected = result.info.get("rejected", [])
    for rej in rejected:
        cont = np.asarray(rej.get("contour", []), dtype=float).reshape(-1, 2)
        if len(cont):
            closed = np.vstack([cont, cont[:1]])
            ax.plot(closed[:, 1], closed[:, 0], ls="--", lw=0.6, color="orangered")
        y, x = rej["center"]
        why = ",".join(_REASON_LABEL.get(r, r) for r in rej["reasons"])
        ax.text(x, y, f"{rej['id']}:{why}", color="orangered", fontsize=6)
    ax.set_title(
        f"{result.n_components} kept (solid), {len(rejected)} rejected (dashed, reason) "
        "over the correlation image",
        fontsize=7,
    )


def _source_figures(result, out: Path) -> dict:
    fig, axes = new_figure(9, 4.2, ncols=2)
    ax = axes[0, 0]
    draw_sources(ax, result)
    rejected = result.info.get("rejected", [])
    ax.set_xticks([])
    ax.set_yticks([])
    if result.n_components:
        axes[0, 1].hist(result.snr, bins=20, label="kept")
    snr_rej = [r["snr"] for r in rejected if r.get("snr") is not None]
    if snr_rej:
        axes[0, 1].hist(snr_rej, bins=20, histtype="step", color="orangered", label="rejected")
        axes[0, 1].legend()
    min_snr = result.params.get("min_SNR")
    if min_snr is not None:
        axes[0, 1].axvline(float(min_snr), color="k", ls=":", lw=0.8)
    axes[0, 1].set_title("SNR of candidates (dotted: min_SNR)")
    contours = figure_metadata(fig, out / "contours.png", "Contours and SNR")
    fig, axes = new_figure(9, 4)
    k = min(result.n_components, 30)
    t = np.arange(result.n_frames) / result.fps
    for i in range(k):
        trace = result.C[i] / (np.ptp(result.C[i]) or 1.0)
        axes[0, 0].plot(t, trace + i, lw=0.5)
    axes[0, 0].set_xlabel("s")
    axes[0, 0].set_title(f"traces of the first {k} components")
    raster = figure_metadata(fig, out / "traces.png", "Trace raster")
    return {"contours": contours, "traces": raster}


@line_asset(
    group=MOVIE_GROUP,
    modality="miniscope",
    kinds={"pandas"},
)
def calcium_events(
    context: dg.AssetExecutionContext,
    config: CurationConfig,
    paths: PathsResource,
    miniscope_sources: SourcesResult,
    analysis_parameters: Parameters,
):
    """Events per kept component: peaks of the chosen derivative above ``event_height`` SDs.

    Rejected components (curation.csv in project_path, plus run config) are
    dropped here, so every later asset honours the curation.
    """
    line = line_of(context)
    own = EventsResult.of(context, paths)
    params = analysis_parameters.values
    with input_errors_as_failures():
        rejected = sorted(
            set(read_curation(paths.project / "curation.csv", line))
            | set(config.rejected_components)
        )
        result = apply_rejections(load_result(miniscope_sources.sources), rejected)
        events = detect_events(
            result.C,
            result.fps,
            derivative_for_estimates=params["derivative_for_estimates"],
            event_height=params["event_height"],
            ids=result.ids.tolist(),
        )
    accuracy = truth.score_events(paths.data, line, miniscope_sources.truth_match, events)
    with staged(context, paths) as out:
        write_csv(events, out / "events.csv")
        atomic_save_npz(out / "kept.npz", ids=result.ids, C=result.C, S=result.S)
        final = own.folder
        write_manifest(
            out,
            {
                "events_csv": str(final / "events.csv"),
                "kept": str(final / "kept.npz"),
                "rejected_ids": rejected,
                "n_events": len(events),
                "fps": result.fps,
                "ground_truth": accuracy,
            },
        )
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(events),
            "components_kept": result.n_components,
            "components_rejected": dg.MetadataValue.text(str(rejected) if rejected else "none"),
            "derivative": params["derivative_for_estimates"],
            "event_height_sd": params["event_height"],
            "events_per_component": float(len(events) / max(result.n_components, 1)),
            **truth.metadata(accuracy),
        },
        value=own,
    )


@line_asset(
    group=MOVIE_GROUP,
    modality="miniscope",
    kinds={"numpy"},
)
def miniscope_results(
    context: dg.AssetExecutionContext,
    paths: PathsResource,
    calcium_events: EventsResult,
    analysis_parameters: Parameters,
):
    """Band-passed traces, Hilbert phase, z-scores, population spectrogram, event-triggered averages."""
    own = Result.of(context, paths)
    params = analysis_parameters.values
    kept = calcium_events.kept()
    events = calcium_events.events()
    fps = calcium_events.fps
    c = kept["C"]
    with input_errors_as_failures():
        filtered = bandpass_traces(
            c, fps, n=params["n"], cut=params["cut"], ftype=params["ftype"], btype=params["btype"]
        )
        phase = hilbert_phase(filtered)
        z = zscore_traces(c, params["frameWindow"])
        duration = c.shape[1] / fps if c.ndim == 2 else 0.0
        notes = []
        if len(c) and duration >= params["window_length"]:
            spec, times, freqs = population_spectrogram(
                c,
                fps,
                window_length=params["window_length"],
                window_step=params["window_step"],
                freq_lims=params["freq_lims"],
                time_bandwidth=params["time_bandwidth"],
            )
        else:
            spec, times, freqs = np.empty((0, 0)), np.empty(0), np.empty(0)
            notes.append(
                f"no population spectrogram: {duration:.1f} s of traces from {len(c)} components, "
                f"window_length is {params['window_length']} s"
            )
        eta, eta_counts, _lags = component_event_triggered_averages(
            z, events, params["framesb"], params["framesa"], ids=kept["ids"].tolist()
        )
    with staged(context, paths) as out:
        atomic_save_npz(
            out / "results.npz",
            ids=kept["ids"],
            bandpassed=filtered.astype(np.float32),
            phase=phase.astype(np.float32),
            zscored=z.astype(np.float32),
            spectrogram=np.asarray(spec, np.float32),
            spectrogram_times_s=times,
            spectrogram_freqs_hz=freqs,
            eta=np.asarray(eta, np.float32),
            eta_event_counts=eta_counts,
        )
        figures = _results_figures(z, spec, times, freqs, eta, fps, params, out)
        write_manifest(
            out,
            {
                "results": str(own.folder / "results.npz"),
                "n_components": int(len(c)),
                "band_hz": params["cut"],
            },
        )
    yield dg.MaterializeResult(
        metadata={
            "components": int(len(c)),
            "band_hz": dg.MetadataValue.text(str(params["cut"])),
            "spectrogram_windows": int(len(times)),
            "notes": dg.MetadataValue.text("; ".join(notes) or "none"),
            **figures,
        },
        value=own,
    )


def _results_figures(z, spec, times, freqs, eta, fps, params, out: Path) -> dict:
    fig, axes = new_figure(9, 3.5, ncols=2)
    if len(z):
        image = axes[0, 0].imshow(
            z, aspect="auto", cmap="magma", extent=(0, z.shape[1] / fps, len(z), 0)
        )
        colorbar(axes[0, 0], image, "z-score")
        axes[0, 0].set_ylabel("component")
    axes[0, 0].set_title("z-scored traces")
    axes[0, 0].set_xlabel("s")
    if np.size(spec) and len(times) > 0:
        mesh = axes[0, 1].pcolormesh(
            times, freqs, 10 * np.log10(np.maximum(spec, 1e-12)), shading="auto"
        )
        colorbar(axes[0, 1], mesh, "power (dB)")
        axes[0, 1].set_ylabel("Hz")
    axes[0, 1].set_title("population multitaper spectrogram (dB)")
    axes[0, 1].set_xlabel("s")
    overview = figure_metadata(
        fig, out / "overview.png", "Z-scored raster and population spectrogram"
    )
    fig, axes = new_figure(5, 3)
    eta = np.asarray(eta)
    if eta.ndim == 2 and len(eta):
        lag = (np.arange(eta.shape[1]) - params["framesb"]) / fps
        axes[0, 0].plot(lag, np.nanmean(eta, axis=0))
    axes[0, 0].set_xlabel("s from event")
    axes[0, 0].set_title("mean event-triggered average (z)")
    eta_fig = figure_metadata(fig, out / "eta.png", "Event-triggered average")
    return {"overview": overview, "event_triggered_average": eta_fig}
