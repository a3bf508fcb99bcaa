"""Miniscope movie chain: denoised -> preprocessed -> motion-corrected, streamed through stores."""

from pathlib import Path

import dagster as dg
import numpy as np

from ace_assets.defs.checks import check_result
from ace_assets.defs.failures import input_errors_as_failures
from ace_assets.defs.figures import colorbar, figure_metadata, new_figure
from ace_assets.defs.line_assets import line_asset
from ace_assets.defs.manifests import NotMaterializedError, write_manifest
from ace_assets.defs.partitions import line_of
from ace_assets.defs.progress import Progress
from ace_assets.defs.resources import PathsResource
from ace_assets.defs.results import MovieResult, Parameters, SessionFiles, staged
from ace_assets.defs.timestamp_checks import timestamp_metadata, timestamps_check
from ace_assets.io.frame_times import LISTED, FrameTimingParams
from ace_assets.io.miniscope import open_with_timing
from ace_assets.io.session import movie_folders
from ace_assets.io.store import ArrayStore, ArrayStoreWriter, atomic_save_npz, drop_store
from ace_assets.miniscope.denoise import DenoiseReport, denoise_movie
from ace_assets.miniscope.motion import MotionReport, motion_correct
from ace_assets.miniscope.preprocess import (
    RANGE_HINT,
    PreprocessParams,
    PreprocessReport,
    output_is_frame_affine,
    output_shape,
    preprocess_movie,
)

MOVIE_GROUP = "miniscope"
MOVIE = "movie.npyd"


@line_asset(
    group=MOVIE_GROUP,
    modality="miniscope",
    kinds={"numpy", "opencv"},
    checks=[
        ("dropped_frames_below_threshold", True),
        ("timestamps_in_order", False),
        ("corrupted_frames_below_threshold", True),
        ("stripes_removed", True),
    ],
    heavy=True,
)
def denoised_movie(
    context: dg.AssetExecutionContext,
    paths: PathsResource,
    session_files: SessionFiles,
    analysis_parameters: Parameters,
):
    """Corrupted frames repaired, travelling stripes notched out, flicker removed.

    Stripes are found in this movie's own spectrum (``stripe_method`` auto) and exactly
    those bins are notched; corrupted frames (garbage or torn rows, black, white,
    repeated or undecodable frames) are interpolated from their neighbours. One decode
    pass measures, one more filters the parked raw frames in place. The manifest carries
    the frozen stripe filter (``StripeFilter.from_report``) and ``stripe_frequencies_hz``,
    the rates at which the bands found pass a fixed row, for source extraction.
    """
    line = line_of(context)
    own = MovieResult.of(context, paths)
    session = session_files.miniscope
    params = analysis_parameters.values
    with input_errors_as_failures():
        timing = FrameTimingParams.from_mapping(params.group("timing"))
        recording = open_with_timing(movie_folders(session), timing, paths.data)
        h, w = recording.frame_shape
        progress = Progress(context.log.info, f"line {line} {own.asset}", recording.n_frames)
        with staged(context, paths) as out:
            meta = {"stage": own.asset, "line": line, "fps": recording.frame_rate}
            with ArrayStoreWriter(
                out / MOVIE, (recording.n_frames, h, w), np.uint8, meta
            ) as writer:
                report = denoise_movie(
                    progress.source(recording),
                    recording.n_frames,
                    (h, w),
                    recording.frame_rate,
                    params.group("denoise"),
                    writer,
                )
                store = writer.commit()
            atomic_save_npz(out / "qc.npz", **report.qc_arrays())
            figures = _denoise_figures(recording, store, report, out)
            write_manifest(
                out,
                {
                    "movie": str(own.folder / MOVIE),
                    "n_frames": recording.n_frames,
                    "frame_shape": [h, w],
                    "fps": recording.frame_rate,
                    **report.manifest(),
                    "dropped_frames": recording.dropped.as_dict(),
                    "timestamps": recording.timing.summary() if recording.timing else None,
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
            "stripe_method": report.stripe_method,
            "stripe_bands": dg.MetadataValue.json(report.stripe_bands),
            "stripe_frequencies_hz": dg.MetadataValue.json(report.stripe_frequencies_hz),
            "stripe_rms_before": report.stripe_rms_before,
            "stripe_rms_after": report.stripe_rms_after,
            "stripe_power_remaining": report.stripe_power_remaining,
            "removed_energy_fraction": report.removed_energy_fraction,
            "flicker_rms": report.flicker_rms,
            "corrupted_frames": len(report.corrupted_frames),
            "corrupted_counts": dg.MetadataValue.json(report.corrupted_counts),
            "dropped_frames": dropped,
            **timestamp_metadata(recording.timing),
            "store": dg.MetadataValue.path(str(own.folder / MOVIE)),
            **progress.throughput(),
            **figures,
        },
        value=own,
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
            "dropped_after_frames": dg.MetadataValue.json(
                recording.dropped.long_interval_frames[:LISTED].tolist()
            ),
        },
    )
    yield timestamps_check(recording.timing, timing.timestamp_faults)
    yield _corrupted_check(report, float(params["max_corrupted_frame_fraction"]))
    yield _stripes_check(report, float(params["max_stripe_power_remaining"]))


def _corrupted_check(report: DenoiseReport, limit: float) -> dg.AssetCheckResult:
    counts = report.corrupted_counts
    fraction = float(report.corrupted_fraction)
    n_bad = len(report.corrupted_frames)
    kinds = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    measured = f"{n_bad} of {report.n_frames} frames corrupted ({fraction:.4f})"
    if kinds:
        measured += f": {kinds}"
    errors = report.decode_errors
    if errors:
        named = "; ".join(f"{e['file']} frame {e['file_frame']}" for e in errors[:5])
        measured += f"; undecodable: {named}" + (" ..." if len(errors) > 5 else "")
    repaired = report.params.repair_corrupted_frames
    return check_result(
        "corrupted_frames_below_threshold",
        passed=fraction <= limit,
        measured=measured,
        threshold=f"a fraction of at most {limit:g}",
        setting="max_corrupted_frame_fraction",
        advice=(
            "They were "
            + ("interpolated from intact neighbours" if repaired else "left as they are")
            + "; indices and kinds are in the manifest and qc.npz. So many point at the "
            "recording (wireless link, cable, disk)."
        ),
        metadata={
            "corrupted_fraction": fraction,
            "threshold": limit,
            "corrupted_counts": dg.MetadataValue.json(counts),
            "first_corrupted_frames": dg.MetadataValue.json(report.corrupted_frames[:50]),
        },
    )


def _stripes_check(report: DenoiseReport, limit: float) -> dg.AssetCheckResult:
    before, after = report.stripe_rms_before, report.stripe_rms_after
    remaining = float(report.stripe_power_remaining)
    method = report.stripe_method
    bands = report.stripe_bands
    advice = (
        f"stripe_method is '{method}'; 'auto' notches the stripes found in this movie."
        if method != "auto"
        else "Stripes outside the notch: lower stripe_threshold, or raise stripe_max_tilt "
        "for steeply tilted bands."
    )
    return check_result(
        "stripes_removed",
        passed=remaining <= limit,
        measured=(
            f"{len(bands)} band(s) found, {before:.2f} grey levels RMS before and {after:.2f} "
            f"after ({remaining:.3f} of the stripe power remains)"
        ),
        threshold=f"at most {limit:g} of the stripe power may remain",
        setting="max_stripe_power_remaining",
        advice=advice,
        metadata={
            "stripe_power_remaining": remaining,
            "threshold": limit,
            "stripe_rms_before": before,
            "stripe_rms_after": after,
            "stripe_method": method,
        },
    )


def _denoise_figures(recording, store: ArrayStore, report: DenoiseReport, out: Path) -> dict:
    k = min(store.n_frames - 1, store.n_frames // 2)
    raw = recording.read(k, k + 1)[0]
    clean = store.read(k, k + 1)[0]
    fig, axes = new_figure(9, 3, ncols=3)
    colorbar(axes[0, 0], axes[0, 0].imshow(raw, cmap="gray"), "grey level")
    axes[0, 0].set_title(f"raw frame {k}")
    colorbar(axes[0, 1], axes[0, 1].imshow(clean, cmap="gray"), "grey level")
    axes[0, 1].set_title("denoised")
    _spectrum_panel(axes[0, 2], report)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    before_after = figure_metadata(fig, out / "before_after.png", "Before / after, spectrum mask")
    kymograph = _kymograph_figure(report, out)
    fig, axes = new_figure(8, 2.5)
    t = np.arange(len(report.frame_means)) / report.fps
    axes[0, 0].plot(t, report.frame_means, lw=0.6, label="frame mean")
    axes[0, 0].plot(t, report.lowpassed_means, lw=1.2, label=f"low-pass {report.params.cutoff} Hz")
    bad = np.asarray(report.corrupted_frames, np.int64)
    if len(bad):
        axes[0, 0].plot(t[bad], np.asarray(report.frame_means)[bad], "r.", ms=3, label="corrupted")
    axes[0, 0].set_xlabel("s")
    axes[0, 0].legend()
    flicker = figure_metadata(fig, out / "flicker.png", "Flicker trace")
    return {"before_after": before_after, "kymograph": kymograph, "flicker_trace": flicker}


def _spectrum_panel(ax, report: DenoiseReport) -> None:
    """Log power of what varies over time (centred), the notched bins ringed in cyan."""
    power = np.asarray(report.stripe_spectrum, np.float64)
    positive = power[power > 0]
    floor = float(np.percentile(positive, 1)) if positive.size else 1.0
    shown = np.log10(power + floor)
    image = ax.imshow(
        shown,
        cmap="magma",
        vmin=float(np.percentile(shown, 5)),
        vmax=float(np.percentile(shown, 99.95)),
    )
    colorbar(ax, image, "log10 power")
    removed = ~np.asarray(report.mask, bool)
    if 0 < removed.sum() <= 2000:
        ys, xs = np.nonzero(removed)
        ax.scatter(xs, ys, s=30, facecolors="none", edgecolors="c", linewidths=0.6)
    elif removed.any():
        ax.contour(removed.astype(float), levels=[0.5], colors="c", linewidths=0.6)
    ax.set_title(f"varying spectrum, notch ({report.stripe_method}) in cyan")


def _kymograph_figure(report: DenoiseReport, out: Path) -> dg.MetadataValue:
    """Row profiles (central strip) over time, before and after: bands are slanted lines."""
    before, after = report.kymograph_before, report.kymograph_after
    start = int(report.kymograph_start)
    fig, axes = new_figure(9, 3.2, ncols=2)
    spread = float(np.percentile(np.abs(before), 99)) if before.size else 1.0
    spread = spread if spread > 0 else 1.0
    extent = (start, start + before.shape[1], before.shape[0], 0)
    for ax, data, rms, label in (
        (axes[0, 0], before, report.stripe_rms_before, "before"),
        (axes[0, 1], after, report.stripe_rms_after, "after"),
    ):
        image = ax.imshow(
            data, cmap="RdBu_r", vmin=-spread, vmax=spread, aspect="auto", extent=extent
        )
        colorbar(ax, image, "grey levels from the row's mean")
        ax.set_title(f"{label}: stripes {rms:.2f} grey levels RMS")
        ax.set_xlabel("frame")
    axes[0, 0].set_ylabel("row")
    return figure_metadata(fig, out / "kymograph.png", "Kymograph: row profiles over time")


@line_asset(
    group=MOVIE_GROUP,
    modality="miniscope",
    kinds={"numpy"},
    heavy=True,
)
def preprocessed_movie(
    context: dg.AssetExecutionContext,
    paths: PathsResource,
    denoised_movie: MovieResult,
    analysis_parameters: Parameters,
):
    """Cropped, photobleaching-detrended (and optionally ΔF/F) movie: stored exactly as the
    uint8 frames and a gain and offset per frame, or as float16 with ΔF/F."""
    line = line_of(context)
    own = MovieResult.of(context, paths)
    params = analysis_parameters.values
    with input_errors_as_failures():
        source = denoised_movie.store()
        n, h, w = source.shape
        fps = float(source.meta["fps"])
        p = PreprocessParams.from_mapping(params.group("preprocess"))
        shape_out = output_shape(n, (h, w), p)
        progress = Progress(context.log.info, f"line {line} {own.asset}", n)
        with staged(context, paths) as out:
            meta = {"stage": own.asset, "line": line, "fps": fps}
            exact = output_is_frame_affine(p, source.stored_dtype)  # kept as frames and gains
            with ArrayStoreWriter(
                out / MOVIE,
                shape_out,
                np.float32,
                meta,
                compact=not exact,
                frame_affine=exact,
                range_hint=RANGE_HINT,
            ) as writer:
                report = preprocess_movie(
                    progress.source(source), n, (h, w), fps, p, writer, scratch_dir=out
                )
                store = writer.commit()
            nbytes = store.nbytes
            atomic_save_npz(out / "qc.npz", **report.qc_arrays())
            figure = _preprocess_figure(report, store, fps, out)
            write_manifest(
                out,
                {
                    "movie": str(own.folder / MOVIE),
                    "n_frames": n,
                    "frame_shape": list(shape_out[1:]),
                    "fps": fps,
                    "movie_bytes": nbytes,
                    **report.manifest(),
                },
            )
    dropped = _drop_upstream(context, params, denoised_movie)
    yield dg.MaterializeResult(
        metadata={
            "n_frames": n,
            "frame_shape": dg.MetadataValue.text(f"{shape_out[1]} x {shape_out[2]}"),
            "crop_coords": dg.MetadataValue.text(str(p.crop_coords)),
            "detrend": dg.MetadataValue.text(str(p.detrend)),
            "dff": dg.MetadataValue.text(str(p.dff)),
            "movie_size": dg.MetadataValue.text(_size(nbytes, n)),
            **dropped,
            **progress.throughput(),
            "qc": figure,
        },
        value=own,
    )


def _preprocess_figure(report: PreprocessReport, store: ArrayStore, fps: float, out: Path):
    fig, axes = new_figure(9, 3, ncols=2)
    trend = report.trend
    if trend is not None:
        axes[0, 0].plot(np.arange(len(trend)) / fps, trend, lw=0.8)
        axes[0, 0].set_title("photobleaching trend")
        axes[0, 0].set_xlabel("s")
    k = store.n_frames // 2
    image = axes[0, 1].imshow(store.read(k, k + 1)[0], cmap="gray")
    colorbar(axes[0, 1], image, "intensity (a.u.)")
    axes[0, 1].set_title(f"preprocessed frame {k}")
    return figure_metadata(fig, out / "preprocess.png", "Detrend and a preprocessed frame")


MOTION_CHECKS = ("motion_within_max_shifts", "motion_improves_crispness", "motion_confident")


@line_asset(
    group=MOVIE_GROUP,
    modality="miniscope",
    kinds={"numpy", "opencv"},
    checks=[(name, True) for name in MOTION_CHECKS],
    heavy=True,
)
def motion_corrected_movie(
    context: dg.AssetExecutionContext,
    paths: PathsResource,
    preprocessed_movie: MovieResult,
    analysis_parameters: Parameters,
):
    """Rigid or piecewise-rigid registration to a template of confident frames (NoRMCorre-style).

    Each frame's correlation peak has a confidence; quiet, black, white or garbage frames
    are measured together with their neighbours or interpolated from them, and the shifts
    are smoothed in time by a Kalman smoother fitted to the movie. Stored as float16.
    """
    line = line_of(context)
    own = MovieResult.of(context, paths)
    params = analysis_parameters.values
    with input_errors_as_failures():
        source = preprocessed_movie.store()
        n, h, w = source.shape
        fps = float(source.meta["fps"])
        progress = Progress(context.log.info, f"line {line} {own.asset}", n)
        with staged(context, paths) as out:
            meta = {"stage": own.asset, "line": line, "fps": fps}
            with ArrayStoreWriter(
                out / MOVIE, (n, h, w), np.float32, meta, compact=True, range_hint=RANGE_HINT
            ) as writer:
                report = motion_correct(
                    progress.source(source),
                    n,
                    (h, w),
                    params.group("motion"),
                    writer,
                    scratch_dir=out,
                )
                nbytes = writer.commit().nbytes
            atomic_save_npz(out / "qc.npz", **report.qc_arrays())
            figures = _motion_figures(report, fps, out)
            write_manifest(
                out,
                {
                    "movie": str(own.folder / MOVIE),
                    "n_frames": n,
                    "frame_shape": [h, w],
                    "fps": fps,
                    "movie_bytes": nbytes,
                    **report.manifest(),
                },
            )
    checks = motion_checks(report, params)
    dropped = {}
    if all(c.passed for c in checks):  # a failed check may need the input again
        dropped = _drop_upstream(context, params, preprocessed_movie)
    rigid = np.abs(np.asarray(report.shifts_rigid))
    yield dg.MaterializeResult(
        metadata={
            "pw_rigid": bool(report.params.pw_rigid),
            "max_rigid_shift_px": float(rigid.max()) if rigid.size else 0.0,
            "max_patch_shift_px": float(report.max_shift),
            "crispness_before": float(report.crispness_before),
            "crispness_after": float(report.crispness_after),
            "mean_corr_to_template_before": float(report.mean_corr_before),
            "mean_corr_to_template_after": float(report.mean_corr_after),
            "median_confidence": float(np.median(report.confidence)) if n else 0.0,
            "low_confidence_frames": int(report.n_low_confidence),
            "pooled_frames": int(report.n_pooled),
            "interpolated_frames": int(report.n_interpolated),
            "outlier_frames": int(report.n_outliers),
            "movie_size": dg.MetadataValue.text(_size(nbytes, n)),
            **dropped,
            **progress.throughput(),
            **figures,
        },
        value=own,
    )
    yield from checks


def motion_checks(report: MotionReport, params) -> list[dg.AssetCheckResult]:
    """The motion asset's checks, from its report and the line's parameters."""
    bound = float(min(params["max_shifts"]))
    rigid = np.abs(np.asarray(report.shifts_rigid))
    max_rigid = float(rigid.max()) if rigid.size else 0.0
    max_shift = float(report.max_shift)
    before, after = float(report.crispness_before), float(report.crispness_after)
    tolerance = float(params["crispness_tolerance"])
    change = after / before - 1.0 if before > 0 else 0.0
    limit = float(params["max_interpolated_fraction"])
    interpolated = float(report.interpolated_fraction)
    n = int(report.n_frames)
    return [
        check_result(
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
        ),
        check_result(
            "motion_improves_crispness",
            passed=change >= -tolerance,
            measured=(
                f"crispness of the mean image {before:.4g} before, {after:.4g} after correction "
                f"({100 * change:+.1f}%)"
            ),
            threshold=f"a change of at least -{100 * tolerance:g}%",
            setting="crispness_tolerance",
            advice=(
                "Correction blurred the mean image: the registration followed something that "
                "is not the tissue (residual stripes, corrupted frames, a template of few "
                "frames). See the shift trace and confidence in this asset's figures; "
                "min_registration_confidence and gSig_filt change what is registered."
            ),
            metadata={"crispness_before": before, "crispness_after": after, "change": change},
        ),
        check_result(
            "motion_confident",
            passed=interpolated <= limit,
            measured=(
                f"{report.n_interpolated} of {n} frames ({interpolated:.3f}) had no confident "
                f"correlation peak, not even with their neighbours, and took interpolated shifts"
            ),
            threshold=f"a fraction of at most {limit:g}",
            setting="max_interpolated_fraction",
            advice=(
                "Frames without a confident peak are black, white, corrupted, or show too little "
                "of the template (quiet, textureless, or bands left by denoising); "
                "min_registration_confidence sets what counts as confident."
            ),
            metadata={
                "interpolated_fraction": interpolated,
                "low_confidence_fraction": float(report.low_confidence_fraction),
                "pooled_frames": int(report.n_pooled),
                "outlier_frames": int(report.n_outliers),
            },
        ),
    ]


def _size(nbytes: int, n_frames: int) -> str:
    per = nbytes / max(n_frames, 1)
    return f"{nbytes / 1e9:.2f} GB ({per / 1e6:.2f} MB per frame)"


def _drop_upstream(
    context: dg.AssetExecutionContext, params, upstream: MovieResult
) -> dict[str, dg.MetadataValue]:
    """With ``keep_intermediate_movies`` FALSE, delete ``upstream``'s movie now this asset is built."""
    if params["keep_intermediate_movies"]:
        return {}
    by = context.asset_key.to_user_string()
    freed = drop_intermediate_movie(upstream, by, line_of(context))
    if freed is None:
        return {}
    context.log.info(
        f"dropped the {upstream.asset} movie of line {line_of(context)}: {freed / 1e9:.2f} GB freed"
    )
    return {f"dropped_{upstream.asset}": dg.MetadataValue.text(f"{freed / 1e9:.2f} GB freed")}


def drop_intermediate_movie(movie: MovieResult, by: str, line: int) -> int | None:
    """Delete the movie of ``movie``, keep its folder (manifest, QC), and say so in its manifest.

    Returns the bytes freed, or None if there was no movie to drop.
    """
    folder = movie.folder
    try:
        manifest = dict(movie.manifest)
    except NotMaterializedError:
        return None
    if manifest.get("movie_dropped") or not Path(manifest.get("movie", "")).is_dir():
        return None
    reason = (
        f"the {movie.asset} movie of line {line} was deleted after {by} was built, because "
        f"keep_intermediate_movies is FALSE"
    )
    manifest["movie_dropped"] = {"by": by, "reason": reason}
    write_manifest(folder, manifest)  # first: a reader never finds a movie half gone unexplained
    freed = drop_store(manifest["movie"], reason)
    manifest["movie_dropped"]["bytes_freed"] = freed
    write_manifest(folder, manifest)
    return freed


def _motion_figures(report: MotionReport, fps: float, out: Path) -> dict:
    shifts = np.asarray(report.shifts_rigid)
    measured = np.asarray(report.shifts_measured)
    t = np.arange(len(shifts)) / fps
    interp = np.asarray(report.interpolated, bool)
    fig, axes = new_figure(8, 4.5, nrows=2)
    for k, label in ((0, "y"), (1, "x")):
        axes[0, 0].plot(t, measured[:, k], ".", ms=1.5, alpha=0.4)
        axes[0, 0].plot(t, shifts[:, k], lw=0.8, label=f"{label} applied")
    if interp.any():
        axes[0, 0].plot(t[interp], shifts[interp, 0], "rx", ms=3, label="interpolated")
    axes[0, 0].set_ylabel("px")
    axes[0, 0].legend()
    axes[0, 0].set_title("rigid shifts (dots: per-frame measurements)")
    axes[1, 0].plot(t, report.confidence, lw=0.6)
    axes[1, 0].axhline(report.params.min_registration_confidence, color="r", lw=0.8)
    axes[1, 0].set_ylabel("peak SDs")
    axes[1, 0].set_xlabel("s")
    axes[1, 0].set_title("confidence of each frame's correlation peak (red: threshold)")
    shift_plot = figure_metadata(fig, out / "shifts.png", "Rigid shifts and confidence")
    fig, axes = new_figure(9, 3, ncols=3)
    for ax, image, title in (
        (axes[0, 0], report.mean_before, f"mean before (crisp {report.crispness_before:.3g})"),
        (axes[0, 1], report.mean_after, f"mean after (crisp {report.crispness_after:.3g})"),
    ):
        colorbar(ax, ax.imshow(image, cmap="gray"), "intensity (a.u.)")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 2].plot(t, report.corr_before, lw=0.6, label="before")
    axes[0, 2].plot(t, report.corr_after, lw=0.6, label="after")
    axes[0, 2].set_title("correlation to template")
    axes[0, 2].legend()
    means = figure_metadata(fig, out / "mean_images.png", "Mean image before / after")
    return {"shift_traces": shift_plot, "mean_images": means}
