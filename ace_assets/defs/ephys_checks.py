"""Checks of the raw ephys session: pauses, and events that do not belong with the channels."""

import dagster as dg

from ace_assets.defs.checks import check_result


def gap_check(
    gaps: list[dict], runs: list[dict], max_gap_s: float, max_fill_s: float
) -> dg.AssetCheckResult:
    """Any pause fails the check; up to ``max_gap_s`` only as a warning, longer blocks.

    What the pipeline does with them is stated, not implied: pauses (and samples one channel
    lacks) up to ``max_fill_s`` are interpolated, marked and blanked in phase and amplitude;
    longer ones are segment boundaries (filters padded by reflection for their impulse
    response, spectrogram windows across them masked). A pause above ``max_gap_s`` blocks.
    """
    longest = max((float(g.get("duration_s", 0.0)) for g in gaps), default=0.0)
    too_long = longest > max_gap_s
    filled = [g for g in gaps if g.get("filled")]
    filled_runs = [r for r in runs if r["kind"] == "filled"]
    nan_runs = [r for r in runs if r["kind"] == "nan"]
    return check_result(
        "no_recording_gaps",
        passed=not gaps and not runs,
        severity=dg.AssetCheckSeverity.ERROR if too_long else dg.AssetCheckSeverity.WARN,
        measured=(
            f"{len(gaps)} pauses, the longest {longest:.4f} s ({len(filled)} filled by "
            f"interpolation, {len(gaps) - len(filled)} kept as segment boundaries); "
            f"{len(filled_runs)} stretches filled and {len(nan_runs)} left NaN on single channels"
        ),
        threshold=f"no pause; pauses longer than max_gap_s = {max_gap_s:g} s block",
        setting="max_gap_s",
        metadata={
            "gaps": len(gaps),
            "longest_gap_s": longest,
            "max_gap_s": max_gap_s,
            "max_fill_s": max_fill_s,
            "filled_pauses": len(filled),
            "boundary_pauses": len(gaps) - len(filled),
            "total_gap_s": float(sum(g.get("duration_s", 0.0) for g in gaps)),
            "gap_table": dg.MetadataValue.json(gaps),
            "channel_runs": dg.MetadataValue.json(runs[:200]),
            "note": (
                f"pauses up to max_fill_s = {max_fill_s:g} s are filled by two-sided "
                "linear prediction, marked, and NaN in phase and amplitude; longer pauses are "
                "segment boundaries: filters are padded by reflection for their impulse "
                "response and spectrogram / band-power windows across them are masked"
            ),
        },
    )


def events_check(sanity: dict | None) -> dg.AssetCheckResult:
    """Events outside the channels' span or out of time order: a warning, never silent."""
    if sanity is None:
        return check_result(
            "events_match_recording",
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            measured="no events file",
            threshold="every event within the channels' time range (1 s tolerance), in order",
            setting="the 'events filename' column of experiments.csv",
        )
    return check_result(
        "events_match_recording",
        passed=not sanity["warnings"],
        severity=dg.AssetCheckSeverity.WARN,
        measured=(
            f"{sanity['outside_recording']} of {sanity['n_events']} events outside the "
            f"channels' time range, {sanity['not_monotonic']} out of time order"
        ),
        threshold="every event within the channels' time range (1 s tolerance), in order",
        setting="the 'events filename' column of experiments.csv",
        advice=" ".join(sanity["warnings"]),
        metadata={
            "outside_recording": sanity["outside_recording"],
            "not_monotonic": sanity["not_monotonic"],
            "first_event_s": sanity["first_event_s"],
            "last_event_s": sanity["last_event_s"],
            "recording_span_s": dg.MetadataValue.json(sanity["recording_span_s"]),
        },
    )
