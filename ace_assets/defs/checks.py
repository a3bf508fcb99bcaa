"""Check results that explain themselves: what was measured, the threshold, the setting to change.

Dagster's own text for a failed blocking check only names the check. Every per-line
check is built here, so its description (shown beside the check in the UI) always
carries the numbers and a setting that exists; :func:`ace_assets.defs.line_assets.line_asset`
turns a failed blocking check into a step failure with that same text.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

#: What each per-line check measures and which parameter sets its threshold (shown in the UI).
CHECK_DESCRIPTIONS: dict[str, str] = {
    "rows_valid": (
        "Rows of experiments.csv that were rejected (shifted rows, bad line numbers, paths "
        "outside data_path); each is named in the 'problems' table. Warning only."
    ),
    "dropped_frames_below_threshold": (
        "Frames the Miniscope DAQ dropped (gaps in timeStamps.csv longer than 1.5 frame "
        "intervals, or in its frame counter), as a fraction of the recording; backward, "
        "duplicated and swapped times are not drops (see timestamps_in_order); threshold: "
        "max_dropped_frame_fraction."
    ),
    "timestamps_in_order": (
        "Camera timestamps that go backward, repeat the previous one, or rows that traded "
        "places, and Frame Numbers out of order, each kind with its count and frames; "
        "repaired (a warning) or the asset fails, as timestamp_faults says."
    ),
    "stripes_removed": (
        "Power of the travelling stripe bands found in the movie's own spectrum that is left "
        "after denoising, as a share of what was there; threshold: "
        "max_stripe_power_remaining."
    ),
    "corrupted_frames_below_threshold": (
        "Frames the link corrupted (garbage or torn rows, black, white, repeated or "
        "undecodable frames), as a fraction of the recording; threshold: "
        "max_corrupted_frame_fraction."
    ),
    "motion_within_max_shifts": (
        "Largest rigid shift against the max_shifts bound: a shift at the bound means the "
        "true motion may be larger; threshold: max_shifts."
    ),
    "motion_improves_crispness": (
        "Crispness (gradient norm of the mean image, after a 1-px blur) after against before "
        "correction: correction must not blur the mean image; threshold: crispness_tolerance."
    ),
    "motion_confident": (
        "Share of frames whose shift could not be measured confidently (quiet or corrupted "
        "frames) and was interpolated from neighbours; threshold: max_interpolated_fraction."
    ),
    "components_found": (
        "At least one source survives extraction; thresholds: min_corr, min_pnr, min_SNR."
    ),
    "ttl_count_matches_frames": (
        "TTL pulses on the ephys clock (after 'indices of TTL events to delete') against the "
        "Miniscope frame count, and frames repaired from camera timestamps; threshold: "
        "max_ttl_mismatch."
    ),
    "no_recording_gaps": (
        "Pauses in the Neuralynx recording: those up to max_fill_s are filled and marked, "
        "longer ones are segment boundaries; a pause longer than max_gap_s blocks the ephys "
        "chain; threshold: max_gap_s."
    ),
    "events_match_recording": (
        "Events of the .nev file within the channels' time range and in time order (an "
        "events file from another session shows up here). Warning only."
    ),
}

#: Where a user changes an analysis parameter.
PARAMETER_HINT = (
    "column '{name}' of analysis_parameters.csv, or the run-config key "
    "ops.analysis_parameters.config.overrides.{name}"
)


def setting_hint(name: str) -> str:
    """How to change analysis parameter ``name``: its CSV column and its run-config key."""
    return PARAMETER_HINT.format(name=name)


def check_result(
    name: str,
    *,
    passed: bool,
    measured: str,
    threshold: str,
    setting: str,
    metadata: dict[str, Any] | None = None,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    advice: str = "",
) -> dg.AssetCheckResult:
    """An ``AssetCheckResult`` whose description states the measurement and what to change.

    ``setting`` names an analysis parameter (its CSV column and run-config key are
    spelled out) unless it already reads as a sentence (contains a space).
    """
    where = setting if " " in setting else setting_hint(setting)
    verdict = "passed" if passed else "FAILED"
    text = f"{name} {verdict}: measured {measured}; threshold {threshold}."
    if not passed:
        text += f" To change the threshold: {where}."
        if advice:
            text += f" {advice}"
    meta: dict[str, Any] = {
        "measured": dg.MetadataValue.text(measured),
        "rule": dg.MetadataValue.text(threshold),
        "setting": dg.MetadataValue.text(where),
    }
    meta.update(metadata or {})
    return dg.AssetCheckResult(
        check_name=name, passed=passed, severity=severity, description=text, metadata=meta
    )


def blocking_failure_text(event: Any, blocking: set[str]) -> str | None:
    """The description of a failed ERROR-severity blocking check result, else None."""
    if not isinstance(event, dg.AssetCheckResult) or event.passed:
        return None
    if event.check_name not in blocking or event.severity != dg.AssetCheckSeverity.ERROR:
        return None
    return event.description or f"{event.check_name} failed (see its metadata)"
