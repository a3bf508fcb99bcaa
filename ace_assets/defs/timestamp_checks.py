"""The camera timestamps' order faults in asset metadata and in their own check.

Dropped frames have their check (``dropped_frames_below_threshold``); backward, duplicated
and swapped times are a different fault with a different cure, so they are reported
apart, by kind, with the frames, and never counted as dropped frames.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from ace_assets.defs.checks import check_result
from ace_assets.io.frame_times import FAULT_KINDS, LISTED, TIMESTAMP_FAULTS, TimestampReport

#: metadata key of each kind's count
COUNT_KEYS = {
    "backward": "backward_jumps",
    "duplicated": "duplicated_timestamps",
    "swapped": "swapped_rows",
    "frame_number_order": "frame_numbers_out_of_order",
}


def timestamp_metadata(report: TimestampReport | None) -> dict[str, Any]:
    """Counts per kind of fault, and a table of the faults with their frames and repairs."""
    if report is None:
        return {}
    out: dict[str, Any] = {COUNT_KEYS[k]: report.count(k) for k in FAULT_KINDS}
    out["timestamp_faults"] = dg.MetadataValue.md(fault_table(report))
    return out


def fault_table(report: TimestampReport) -> str:
    if not report.faults:
        return "no backward, duplicated or swapped camera timestamps"
    lines = ["| fault | frames | what | repair |", "|---|---|---|---|"]
    for f in report.faults[:LISTED]:
        frames = ", ".join(str(i) for i in f.frames[:LISTED])
        lines.append(f"| {f.kind} | {frames} | {f.detail} | {f.repair} |")
    if len(report.faults) > LISTED:
        lines.append(f"| ... | {len(report.faults) - LISTED} more | | |")
    return "\n".join(lines)


def timestamps_check(report: TimestampReport | None, policy: str) -> dg.AssetCheckResult:
    """Passes when the camera times are in order; a warning listing them when repaired.

    In ``fail`` mode the asset has already stopped on the first fault, so a result here
    always means: none, or all repaired.
    """
    faults = report.faults if report else ()
    measured = report.describe() if report else "no timestamp table"
    if faults and report is not None:
        measured += f"; {len(faults)} repairs, each listed in the 'timestamp_faults' metadata"
    return check_result(
        "timestamps_in_order",
        passed=not faults,
        severity=dg.AssetCheckSeverity.WARN,
        measured=measured,
        threshold="camera times increase and frame numbers run in order",
        setting=TIMESTAMP_FAULTS,
        advice=(
            f"{TIMESTAMP_FAULTS} is '{policy}': the faults were repaired; set it to 'fail' "
            "to stop instead."
        ),
        metadata={
            **({COUNT_KEYS[k]: report.count(k) for k in FAULT_KINDS} if report else {}),
            **{
                f"{COUNT_KEYS[k]}_frames": dg.MetadataValue.json(report.frames(k)[:LISTED])
                for k in FAULT_KINDS
                if report and report.count(k)
            },
        },
    )
