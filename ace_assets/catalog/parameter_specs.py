"""Every analysis parameter: its default, its type and the stage that uses it.

This is the only place a default lives. Defaults are the reference pipeline's (the
shared template row and the spec); they apply wherever a CSV cell is empty, and the
stage settings dataclasses (:mod:`ace_assets.catalog.stage_params`) take theirs from
here, so a notebook calling a stage without settings runs what the asset runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ParamSpec:
    default: Any
    kind: str  # see ace_assets.catalog.parameters.coerce
    group: str
    doc: str = ""
    choices: tuple[Any, ...] = ()


P = ParamSpec
SPECS: dict[str, ParamSpec] = {
    # alignment / analysis windows
    "indices of TTL events to delete": P(
        [], "int_list", "alignment", "TTL events removed before matching frames"
    ),
    "zero time (s)": P(0.0, "float", "alignment", "shared time origin on the ephys clock"),
    "baseline period (min)": P(
        None, "opt_float", "alignment", "kept from the reference template; not used yet"
    ),
    "periods of high slow wave power (s)": P([], "intervals", "alignment", "[[start, end], ...] s"),
    "control periods (s)": P([], "intervals", "alignment", "[[start, end], ...] s"),
    "ca_ephys_baseline_video_num": P(
        None, "opt_int", "alignment", "kept from the reference template; not used yet"
    ),
    "ca_ephys_slow_wave_video_num": P(
        None, "opt_int", "alignment", "kept from the reference template; not used yet"
    ),
    "ca_ephys_burst_suppression_video_num": P(
        None, "opt_int", "alignment", "kept from the reference template; not used yet"
    ),
    "ttl_sync_bit": P(
        None,
        "opt_int",
        "alignment",
        "bit (0-15) of the .nev TTL port word that pulses once per Miniscope frame; empty or "
        "None = the bit whose rising edges match the frame count and interval",
    ),
    # camera timestamps (timeStamps.csv / timestamp.dat) and their alignment to the TTLs
    "timestamp_faults": P(
        "repair",
        "str",
        "timing",
        "camera times that go backward, repeat, or rows that trade places: repair (rows "
        "reordered, bad times interpolated from their neighbours, a clock step back taken "
        "out; each repair listed in the metadata) or fail (an error naming the frames). "
        "Either way they are reported as what they are, never as dropped frames",
        choices=("repair", "fail"),
    ),
    "timestamp_rows": P(
        "fail",
        "str",
        "timing",
        "a timestamp table with more or fewer rows than the AVIs have frames: fail (an error "
        "naming the file and both counts) or fit (extra rows ignored, missing times "
        "extrapolated at the median frame interval; listed in the metadata)",
        choices=("fail", "fit"),
    ),
    "alignment_tolerance_ms": P(
        None,
        "opt_float",
        "timing",
        "largest tolerated gap between a frame's time on the ephys clock and the camera "
        "clock fitted to the TTL pulses, ms; the alignment fails naming the frames beyond "
        "it. None: half the camera's frame interval",
    ),
    # denoise (spec 2.1)
    "frameStep": P(
        10, "int", "denoise", "one pair of consecutive frames per 2*frameStep feeds the spectrum"
    ),
    "goodRadius": P(2000.0, "float", "denoise", "reference method only"),
    "notchHalfWidth": P(3, "int", "denoise", "reference method only"),
    "centerHalfHeightToLeave": P(
        90, "int", "denoise", "reference method only: an absolute index, tuned for 608 rows"
    ),
    "cutoff": P(3.0, "float", "denoise", "flicker low-pass cutoff, Hz"),
    "butterOrder": P(6, "int", "denoise", "order of the flicker low-pass"),
    "stripe_method": P(
        "auto",
        "str",
        "denoise",
        "auto: notch the stripes found in this movie's spectrum (any frame size); "
        "reference: the fixed notchHalfWidth / centerHalfHeightToLeave strip; none",
        choices=("auto", "reference", "none"),
    ),
    "stripe_threshold": P(
        10.0, "float", "denoise", "auto: stripe power over its background, a ratio (10 = 10 dB)"
    ),
    "stripe_max_tilt": P(30.0, "float", "denoise", "auto: degrees a band may tilt from horizontal"),
    "corrupt_row_ratio": P(
        2.0,
        "float",
        "denoise",
        "a row is corrupted when it differs from both neighbouring frames this many times "
        "more than they differ from each other",
    ),
    "repair_corrupted_frames": P(
        True, "bool", "denoise", "interpolate corrupted frames / rows from intact neighbours"
    ),
    # preprocess
    "crop_coords": P(None, "opt_int4", "preprocess", "(x0, y0, x1, y1)"),
    "detrend": P(
        "median",
        "opt_str",
        "preprocess",
        "photobleaching trend: running median of frame medians, a line, or None",
        choices=("median", "linear", None),
    ),
    "dff": P(
        None,
        "opt_str",
        "preprocess",
        "dF/F of the movie (CaImAn's computeDFF), or None",
        choices=("delta_f_over_f", "delta_f_over_sqrt_f", None),
    ),
    "secs_window": P(5.0, "float", "preprocess", "dF/F baseline block, s"),
    "quantile_min": P(8.0, "float", "preprocess", "dF/F baseline percentile of each block"),
    # motion correction
    "pw_rigid": P(True, "bool", "motion", "piecewise-rigid (patches) after the rigid pass"),
    "shifts_opencv": P(True, "bool", "motion", "accepted for CaImAn; warping always uses OpenCV"),
    "max_shifts": P((15, 15), "int2", "motion", "largest rigid shift, px (rows, columns)"),
    "gSig_filt": P(
        (7, 7), "opt_int2", "motion", "high-pass filter size, px (CaImAn's); None: no filter"
    ),
    "strides": P((48, 48), "int2", "motion", "patch spacing, px"),
    "overlaps": P((24, 24), "int2", "motion", "patch overlap, px"),
    "max_deviation_rigid": P(7, "int", "motion", "largest patch shift away from the rigid one, px"),
    "border_nan": P(
        "copy",
        "border",
        "motion",
        "pixels shifted in from outside: copy the edge, TRUE NaN, FALSE 0",
    ),
    "min_registration_confidence": P(
        6.0,
        "float",
        "motion",
        "a frame whose correlation peak stands fewer SDs above its correlation plane is "
        "measured together with its neighbours, or interpolated from them in time",
    ),
    # motion correction: its checks and what is kept of the movies
    "crispness_tolerance": P(
        0.02,
        "float",
        "checks",
        "motion_improves_crispness fails when the corrected mean image is less crisp than "
        "the uncorrected one by more than this fraction",
    ),
    "max_interpolated_fraction": P(
        0.25,
        "float",
        "checks",
        "motion_confident fails when more than this fraction of frames could not be "
        "measured (not even with their neighbours) and took interpolated shifts",
    ),
    "keep_intermediate_movies": P(
        True,
        "bool",
        "storage",
        "FALSE: delete the denoised movie once preprocessed_movie is built, and the "
        "preprocessed movie once motion_corrected_movie is (their manifests and QC stay)",
    ),
    # source extraction (CNMF-E)
    "decay_time": P(0.4, "float", "extraction", "calcium transient decay, s (sets the AR model)"),
    "update_background_components": P(
        True, "bool", "extraction", "refit the ring background after each footprint update"
    ),
    "method_deconvolution": P(
        "oasis", "str", "extraction", "OASIS (constrained_foopsi, cvxpy run as OASIS)"
    ),
    "method_init": P("corr_pnr", "str", "extraction", "seeding: correlation x PNR (CNMF-E)"),
    "K": P(None, "opt_int", "extraction", "most neurons seeded; None: no limit"),
    "gSig": P((7, 7), "int2", "extraction", "neuron radius (Gaussian SD), px"),
    "gSiz": P((29, 29), "int2", "extraction", "neuron bounding box, px (made odd)"),
    "tsub": P(2, "int", "extraction", "temporal downsampling for initialisation"),
    "ssub": P(1, "int", "extraction", "spatial downsampling for initialisation"),
    "ssub_B": P(2, "int", "extraction", "extra spatial downsampling of the ring background"),
    "tsub_B": P(
        2,
        "int",
        "extraction",
        "frames averaged for the ring background fit (CaImAn compute_W tsub)",
    ),
    "ring_size_factor": P(1.4, "float", "extraction", "background ring radius, x gSiz"),
    "min_corr": P(0.8, "float", "extraction", "seed pixels: least local correlation"),
    "min_pnr": P(10.0, "float", "extraction", "seed pixels: least peak-to-noise ratio"),
    "normalize_init": P(False, "bool", "extraction", "must be FALSE for 1-photon data"),
    "center_psf": P(True, "bool", "extraction", "mean-centred seeding kernel (CNMF-E)"),
    "nb": P(0, "int", "extraction", "low-rank background components; only 0 (ring model)"),
    "p": P(1, "int", "extraction", "order of the calcium AR model (0, 1 or 2)"),
    "del_duplicates": P(True, "bool", "extraction", "merge near-identical footprints"),
    "border_pix": P(0, "int", "extraction", "pixels at the frame edge never seeded"),
    "low_rank_background": P(None, "opt_bool", "extraction", "accepted for CaImAn; no effect"),
    "rf": P(40, "opt_int", "extraction", "patch half-size, px; None: the whole frame at once"),
    "stride": P(20, "opt_int", "extraction", "patch overlap, px"),
    "only_init": P(True, "bool", "extraction", "accepted for CaImAn; no effect"),
    "nb_patch": P(0, "int", "extraction", "accepted for CaImAn; no effect"),
    "min_SNR": P(2.5, "float", "extraction", "least trace SNR of a kept component"),
    "rval_thr": P(
        0.85,
        "float",
        "extraction",
        "r-values are reported, but unlike CaImAn a high one no longer keeps a component "
        "whose SNR is below min_SNR (a hard floor)",
    ),
    "use_cnn": P(
        False, "bool", "extraction", "no CNN classifier here; TRUE is ignored, with a warning"
    ),
    "merge_thr": P(
        0.7, "float", "extraction", "merge overlapping components whose traces correlate more"
    ),
    "max_footprint_elongation": P(
        2.5,
        "float",
        "extraction",
        "reject footprints whose long/short axis SD ratio exceeds this x gSig's own aspect",
    ),
    "max_footprint_size": P(
        2.0, "float", "extraction", "reject footprints whose long-axis SD exceeds this x gSig"
    ),
    "min_footprint_size": P(
        0.25,
        "float",
        "extraction",
        "reject footprints whose long-axis SD is below this x gSig (specks, not cells)",
    ),
    "max_periodic_power": P(
        0.5,
        "float",
        "extraction",
        "reject traces with more than this share of power on the harmonics of one "
        "frequency (stripe frequencies from denoise, or the most periodic one found)",
    ),
    # calcium events and post-processing
    "derivative_for_estimates": P(
        "first",
        "str",
        "events",
        "events are detected on the trace or its first or second derivative",
        choices=("zeroth", "first", "second"),
    ),
    "event_height": P(3.0, "float", "events", "threshold in robust SDs"),
    "n": P(2, "int", "postprocess", "band-pass filter order"),
    "cut": P([0.1, 1.5], "float_list", "postprocess", "band-pass edges, Hz"),
    "ftype": P("butter", "str", "postprocess", "trace filter type"),
    "btype": P("bandpass", "str", "postprocess", "trace filter band type"),
    "window_length": P(30.0, "float", "postprocess", "spectrogram window, s"),
    "window_step": P(3.0, "float", "postprocess", "spectrogram step, s"),
    "freq_lims": P([0.0, 15.0], "float_list", "postprocess", "spectrogram frequencies, Hz"),
    "time_bandwidth": P(2.0, "float", "postprocess", "multitaper time-bandwidth product"),
    "frameWindow": P(1000, "int", "postprocess", "z-score sliding window, frames"),
    "framesb": P(30, "int", "postprocess", "frames before an event (ETA)"),
    "framesa": P(60, "int", "postprocess", "frames after an event (ETA)"),
    # ephys
    "filter_type": P("butter", "str", "ephys", "zero-phase LFP filter", choices=("butter", "fir")),
    "filter_range": P([0.5, 4.0], "float_list", "ephys", "[low, high] Hz"),
    "filter_order": P(4, "int", "ephys", "LFP filter order"),
    "remove_artifacts": P(False, "bool", "ephys", "blank amplitude / saturation artifacts"),
    "artifact_threshold_sd": P(8.0, "float", "ephys", "artifact threshold, robust SDs"),
    "ephys_window_s": P(4.0, "float", "ephys", "spectrogram window, s"),
    "ephys_step_s": P(1.0, "float", "ephys", "spectrogram step, s"),
    "ephys_freq_range": P([0.0, 30.0], "float_list", "ephys", "spectrogram frequencies, Hz"),
    "ephys_time_bandwidth": P(3.0, "float", "ephys", "multitaper time-bandwidth product"),
    "ephys_detrend": P(
        "constant",
        "opt_str",
        "ephys",
        "detrend of each spectrogram window",
        choices=("constant", "linear", None),
    ),
    "max_fill_s": P(
        0.1,
        "float",
        "ephys",
        "recording pauses (and samples one channel lacks) up to this long, s, are filled by "
        "linear interpolation and marked; longer ones are segment boundaries",
    ),
    # fluorescence-EEG coupling (ace_assets.multimodal.coupling), seconds and Hz, not frames
    "coupling_window_s": P(
        10.0,
        "float",
        "coupling",
        "window of the coherence estimates, the coherogram and the sliding correlation, s",
    ),
    "coupling_step_s": P(2.0, "float", "coupling", "coherogram and sliding-correlation step, s"),
    "coupling_bandwidth_hz": P(
        0.5,
        "float",
        "coupling",
        "multitaper half-bandwidth W, Hz: NW = W x window length, K = 2NW - 1 tapers",
    ),
    "coupling_max_lag_s": P(
        2.0,
        "float",
        "coupling",
        "largest lag searched by the cross-correlation, s (positive: fluorescence follows EEG)",
    ),
    "coupling_bands_hz": P(
        [[0.5, 4.0], [4.0, 8.0], [8.0, 12.0], [12.0, 30.0], [30.0, 80.0]],
        "intervals",
        "coupling",
        "EEG bands whose envelope is correlated with fluorescence, [[low, high], ...] Hz",
    ),
    "coupling_alpha": P(
        0.05,
        "float",
        "coupling",
        "significance level of the coherence bound (family-wise over frequencies for the peak)",
    ),
    # quality thresholds used by asset checks
    "max_dropped_frame_fraction": P(
        0.01, "float", "checks", "dropped Miniscope frames tolerated, a fraction of all"
    ),
    "max_corrupted_frame_fraction": P(
        0.05, "float", "checks", "corrupted (repaired) frames tolerated, a fraction of all"
    ),
    "max_stripe_power_remaining": P(
        0.1, "float", "checks", "share of the detected stripe power the denoised movie may keep"
    ),
    "max_ttl_mismatch": P(
        5, "int", "checks", "TTL pulses vs movie frames: the count difference tolerated"
    ),
    "max_gap_s": P(
        1.0, "float", "checks", "longest tolerated ephys recording pause, s (longer blocks)"
    ),
}

#: Stage settings that are NOT analysis parameters: no CSV column, not part of a line's
#: parameters (nor of their data version). They tune how a stage computes (memory, chunk
#: sizes, iterations) rather than what it computes for a lab; code (tests, benches,
#: notebooks) may set them, with the same grammar as the CSV cells.
ENGINE_SPECS: dict[str, ParamSpec] = {
    # denoise
    "wrapCorrection": P(
        True,
        "bool",
        "denoise",
        "reference notch only: take the top-to-bottom intensity step out before the FFT "
        "(FALSE reproduces the reference exactly)",
    ),
    # preprocess
    "detrend_operation": P("divide", "str", "preprocess", "divide or subtract the bleaching trend"),
    "detrend_window_s": P(30.0, "float", "preprocess", "running-median window of the trend, s"),
    "min_baseline": P(1.0, "float", "preprocess", "floor of the dF/F baseline F0"),
    # motion correction
    "template_frames": P(300, "int", "motion", "images registered to build the template"),
    "template_bin": P(4, "int", "motion", "consecutive frames averaged into one template image"),
    "template_blocks": P(10, "int", "motion", "stretches of the movie the template frames span"),
    "template_iterations": P(2, "int", "motion", "template refinement passes"),
    "interpolation": P("cubic", "str", "motion", "warp interpolation"),
    # source extraction
    "fps": P(
        None, "opt_float", "extraction", "frames per second; None: extract(fps=...) or the movie's"
    ),
    "chunk_frames": P(100, "int", "extraction", "frames per streamed block"),
    "max_init_frames": P(3000, "int", "extraction", "cap on the initialisation movie's frames"),
    "init_memory_mb": P(1024.0, "float", "extraction", "cap on the initialisation movie's size"),
    "n_iter": P(
        None,
        "opt_int",
        "extraction",
        "full-resolution passes (the last updates traces only); None: 1 at ssub = 1, else 2",
    ),
    "n_init_iter": P(1, "int", "extraction", "passes on the initialisation movie"),
    "ring_harmonics": P(2, "int", "extraction", "angular harmonics of the ring background"),
    "s_min": P(None, "opt_float", "extraction", "minimum spike size; None: s_min_sd x noise"),
    "s_min_sd": P(3.0, "float", "extraction", "minimum spike size in noise SDs"),
    "thresh_init": P(2.0, "float", "extraction", "seed pixel threshold in noise SDs"),
    "min_pixel": P(3, "int", "extraction", "fewest pixels of a seeded footprint"),
    "nan_policy": P("error", "str", "extraction", "NaN pixels: error, or fill"),
    "tile_size": P(
        128,
        "int",
        "extraction",
        "pixels per side of a spatial tile in the passes (largest init-cache tile)",
    ),
}

#: spellings seen in the wild -> canonical name
ALIASES: dict[str, str] = {
    "crop": "crop_coords",
    "ttl events to delete": "indices of TTL events to delete",
    "zero time": "zero time (s)",
}

#: identity columns copied from experiments.csv; not parameters
IDENTITY_COLUMNS = (
    "line number",
    "id",
    "date (YYMMDD)",
    "Box Calcium Folder ID",
    "calcium imaging directory",
    "Box ephys folder ID",
    "ephys directory",
    "comments",
)
