"""Miniscope movie chain: denoised -> preprocessed -> motion-corrected, streamed through stores."""

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
from ace_assets.io.miniscope import open_miniscope
from ace_assets.io.store import ArrayStore, ArrayStoreWriter, atomic_save_npz
from ace_assets.miniscope.denoise import denoise_movie
from ace_assets.miniscope.motion import motion_correct
from ace_assets.miniscope.preprocess import PreprocessParams, output_shape, preprocess_movie

MOVIE_GROUP = "miniscope"
MOVIE = "movie.npyd"


def movie_store(paths: PathsResource, asset: str, line: int) -> ArrayStore:
    manifest = read_manifest(paths, asset, line)
    return ArrayStore(manifest["movie"])


@line_asset(
    group=MOVIE_GROUP,
    modality="miniscope",
    deps=[session_files, analysis_parameters],
    kinds={"numpy", "opencv"},
    checks=[("dropped_frames_below_threshold", True)],
    heavy=True,
)
def denoised_movie(context: dg.AssetExecutionContext, paths: PathsResource):
    """Travelling horizontal bands notched out of each frame's spectrum; flicker removed.

    One decode pass for frame means, one decode + real FFT pair per frame:
    the reference decodes three times and runs two complex FFTs per frame.
    """
    line = line_of(context)
    session = read_manifest(paths, "session_files", line)["miniscope"]
    params = load_parameters(paths, line)
    with input_errors_as_failures():
        recording = open_miniscope(session["folder"])
        h, w = recording.frame_shape
        with staged_output(paths, "denoised_movie", line) as out:
            meta = {"stage": "denoised_movie", "line": line, "fps": recording.frame_rate}
            with ArrayStoreWriter(
                out / MOVIE, (recording.n_frames, h, w), np.uint8, meta
            ) as writer:
                report = denoise_movie(
                    recording,
                    recording.n_frames,
                    (h, w),
                    recording.frame_rate,
                    params.group("denoise"),
                    writer,
                )
                store = writer.commit()
            atomic_save_npz(
                out / "qc.npz",
                frame_means=report["frame_means"],
                lowpassed_means=report["lowpassed_means"],
                scale=report["scale"],
                mask=report["mask"],
                mean_spectrum=report["mean_spectrum"],
            )
            figures = _denoise_figures(recording, store, report, out)
            write_manifest(
                out,
                {
                    "movie": str(asset_dir(paths, "denoised_movie", line) / MOVIE),
                    "n_frames": recording.n_frames,
                    "frame_shape": [h, w],
                    "fps": recording.frame_rate,
                    "params": report["params"],
                    "removed_energy_fraction": report["removed_energy_fraction"],
                    "flicker_rms": report["flicker_rms"],
                    "dropped_frames": recording.dropped.as_dict(),
                },
            )
    dropped = recording.dropped.estimated_missing
    fraction = dropped / max(recording.n_frames + dropped, 1)
    limit = float(params["max_dropped_frame_fraction"])
    yield dg.MaterializeResult(
        metadata={
            "n_frames": recording.n_frames,
            "frame_shape": dg.MetadataValue.text(f"{h} x {w}"),
            "fps": recording.frame_rate,
            "method": report["method"],
            "removed_energy_fraction": report["removed_energy_fraction"],
            "flicker_rms": report["flicker_rms"],
            "dropped_frames": dropped,
            "store": dg.MetadataValue.path(str(asset_dir(paths, "denoised_movie", line) / MOVIE)),
            **figures,
        }
    )
    yield check_result(
        "dropped_frames_below_threshold",
        passed=fraction <= limit,
        measured=f"{dropped} dropped of {recording.n_frames + dropped} frames ({fraction:.4f})",
        threshold=f"a fraction of at most {limit:g}",
        setting="max_dropped_frame_fraction",
        metadata={
            "dropped_frames": dropped,
            "dropped_fraction": fraction,
            "threshold": limit,
            "long_intervals": len(recording.dropped.long_interval_frames),
        },
    )


def _denoise_figures(recording, store: ArrayStore, report: dict, out: Path) -> dict:
    k = min(store.n_frames - 1, store.n_frames // 2)
    raw = recording.read(k, k + 1)[0]
    clean = store.read(k, k + 1)[0]
    fig, axes = new_figure(9, 3, ncols=3)
    axes[0, 0].imshow(raw, cmap="gray")
    axes[0, 0].set_title(f"raw frame {k}")
    axes[0, 1].imshow(clean, cmap="gray")
    axes[0, 1].set_title("denoised")
    axes[0, 2].imshow(np.log1p(report["mean_spectrum"]), cmap="magma")
    axes[0, 2].contour(report["mask"].astype(float), levels=[0.5], colors="c", linewidths=0.6)
    axes[0, 2].set_title("mean spectrum, notch in cyan")
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    before_after = figure_metadata(fig, out / "before_after.png", "Before / after, spectrum mask")
    fig, axes = new_figure(8, 2.5)
    t = np.arange(len(report["frame_means"])) / report["fps"]
    axes[0, 0].plot(t, report["frame_means"], lw=0.6, label="frame mean")
    axes[0, 0].plot(
        t, report["lowpassed_means"], lw=1.2, label=f"low-pass {report['params']['cutoff']} Hz"
    )
    axes[0, 0].set_xlabel("s")
    axes[0, 0].legend(fontsize=7)
    flicker = figure_metadata(fig, out / "flicker.png", "Flicker trace")
    return {"before_after": before_after, "flicker_trace": flicker}


@line_asset(
    group=MOVIE_GROUP,
    modality="miniscope",
    deps=[denoised_movie, analysis_parameters],
    kinds={"numpy"},
    heavy=True,
)
def preprocessed_movie(context: dg.AssetExecutionContext, paths: PathsResource):
    """Cropped, photobleaching-detrended (and optionally ΔF/F) float32 movie."""
    line = line_of(context)
    params = load_parameters(paths, line)
    with input_errors_as_failures():
        source = movie_store(paths, "denoised_movie", line)
        n, h, w = source.shape
        fps = float(source.meta["fps"])
        p = PreprocessParams.from_mapping(params.group("preprocess"))
        shape_out = output_shape(n, (h, w), p)
        with staged_output(paths, "preprocessed_movie", line) as out:
            meta = {"stage": "preprocessed_movie", "line": line, "fps": fps}
            with ArrayStoreWriter(out / MOVIE, shape_out, np.float32, meta) as writer:
                report = preprocess_movie(source, n, (h, w), fps, p, writer, scratch_dir=out)
                store = writer.commit()
            arrays = {k: np.asarray(v) for k, v in report.items() if isinstance(v, np.ndarray)}
            atomic_save_npz(out / "qc.npz", **arrays)
            figure = _preprocess_figure(report, store, fps, out)
            scalars = {k: v for k, v in report.items() if not isinstance(v, np.ndarray)}
            write_manifest(
                out,
                {
                    "movie": str(asset_dir(paths, "preprocessed_movie", line) / MOVIE),
                    "n_frames": n,
                    "frame_shape": list(shape_out[1:]),
                    "fps": fps,
                    **scalars,
                },
            )
    yield dg.MaterializeResult(
        metadata={
            "n_frames": n,
            "frame_shape": dg.MetadataValue.text(f"{shape_out[1]} x {shape_out[2]}"),
            "crop_coords": dg.MetadataValue.text(str(p.crop_coords)),
            "detrend": dg.MetadataValue.text(str(p.detrend)),
            "dff": dg.MetadataValue.text(str(p.dff)),
            "qc": figure,
        }
    )


def _preprocess_figure(report: dict, store: ArrayStore, fps: float, out: Path):
    fig, axes = new_figure(9, 3, ncols=2)
    trend = next((report[k] for k in ("trend", "frame_trend", "medians") if k in report), None)
    if trend is not None:
        axes[0, 0].plot(np.arange(len(trend)) / fps, trend, lw=0.8)
        axes[0, 0].set_title("photobleaching trend")
        axes[0, 0].set_xlabel("s")
    k = store.n_frames // 2
    axes[0, 1].imshow(store.read(k, k + 1)[0], cmap="gray")
    axes[0, 1].set_title(f"preprocessed frame {k}")
    return figure_metadata(fig, out / "preprocess.png", "Detrend and a preprocessed frame")


@line_asset(
    group=MOVIE_GROUP,
    modality="miniscope",
    deps=[preprocessed_movie, analysis_parameters],
    kinds={"numpy", "opencv"},
    checks=[("motion_within_max_shifts", True)],
    heavy=True,
)
def motion_corrected_movie(context: dg.AssetExecutionContext, paths: PathsResource):
    """Rigid or piecewise-rigid registration to a refined template (NoRMCorre-style)."""
    line = line_of(context)
    params = load_parameters(paths, line)
    with input_errors_as_failures():
        source = movie_store(paths, "preprocessed_movie", line)
        n, h, w = source.shape
        fps = float(source.meta["fps"])
        with staged_output(paths, "motion_corrected_movie", line) as out:
            meta = {"stage": "motion_corrected_movie", "line": line, "fps": fps}
            with ArrayStoreWriter(out / MOVIE, (n, h, w), np.float32, meta) as writer:
                report = motion_correct(source, n, (h, w), params.group("motion"), writer)
                writer.commit()
            arrays = {k: np.asarray(v) for k, v in report.items() if isinstance(v, np.ndarray)}
            atomic_save_npz(out / "qc.npz", **arrays)
            figures = _motion_figures(report, fps, out)
            scalars = {k: v for k, v in report.items() if not isinstance(v, np.ndarray)}
            write_manifest(
                out,
                {
                    "movie": str(asset_dir(paths, "motion_corrected_movie", line) / MOVIE),
                    "n_frames": n,
                    "frame_shape": [h, w],
                    "fps": fps,
                    **scalars,
                },
            )
    bound = float(min(params["max_shifts"]))
    rigid = np.abs(np.asarray(report["shifts_rigid"]))
    max_rigid = float(rigid.max()) if rigid.size else 0.0
    max_shift = float(report["max_shift"])
    yield dg.MaterializeResult(
        metadata={
            "pw_rigid": bool(report["params"]["pw_rigid"]),
            "max_rigid_shift_px": max_rigid,
            "max_patch_shift_px": max_shift,
            "crispness_before": float(report["crispness_before"]),
            "crispness_after": float(report["crispness_after"]),
            "mean_corr_to_template_before": float(report["mean_corr_before"]),
            "mean_corr_to_template_after": float(report["mean_corr_after"]),
            **figures,
        }
    )
    yield check_result(
        "motion_within_max_shifts",
        passed=max_rigid < bound - 0.5,
        measured=f"largest rigid shift {max_rigid:.2f} px",
        threshold=f"below the max_shifts bound {bound:g} px minus 0.5",
        setting="max_shifts",
        advice="A shift at the bound means the true motion may be larger: raise max_shifts.",
        metadata={
            "max_rigid_shift_px": max_rigid,
            "max_patch_shift_px": max_shift,
            "max_shifts_bound_px": bound,
        },
    )


def _motion_figures(report: dict, fps: float, out: Path) -> dict:
    shifts = np.asarray(report["shifts_rigid"])
    t = np.arange(len(shifts)) / fps
    fig, axes = new_figure(8, 2.5)
    axes[0, 0].plot(t, shifts[:, 0], lw=0.8, label="y")
    axes[0, 0].plot(t, shifts[:, 1], lw=0.8, label="x")
    axes[0, 0].set_xlabel("s")
    axes[0, 0].set_ylabel("px")
    axes[0, 0].legend(fontsize=7)
    shift_plot = figure_metadata(fig, out / "shifts.png", "Rigid shifts")
    fig, axes = new_figure(9, 3, ncols=3)
    for ax, key, title in (
        (axes[0, 0], "mean_before", f"mean before (crisp {report['crispness_before']:.3g})"),
        (axes[0, 1], "mean_after", f"mean after (crisp {report['crispness_after']:.3g})"),
    ):
        ax.imshow(report[key], cmap="gray")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 2].plot(t, report["corr_before"], lw=0.6, label="before")
    axes[0, 2].plot(t, report["corr_after"], lw=0.6, label="after")
    axes[0, 2].set_title("correlation to template", fontsize=8)
    axes[0, 2].legend(fontsize=7)
    means = figure_metadata(fig, out / "mean_images.png", "Mean image before / after")
    return {"shift_traces": shift_plot, "mean_images": means}
