"""What a scientist sees of a result: one combined QC image, rounded numbers, a line report.

Applied by :func:`ace_assets.defs.line_assets.line_asset` to every materialization, so no
asset has to remember it: the asset's PNG figures are stacked into ``qc_summary.png`` and
embedded as the first metadata entry; floats are rounded to four significant digits; the
key numbers go to ``summary.json``; and ``report.html`` of the line (every asset's figures
and numbers) is rewritten atomically beside the results and linked from the metadata.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import dagster as dg
import numpy as np

from ace_assets.io.jsonio import read_json, write_json
from ace_assets.io.store import atomic_write_bytes, atomic_write_text

SUMMARY_PNG = "qc_summary.png"
SUMMARY_JSON = "summary.json"
REPORT = "report.html"
COMBINED_WIDTH = 1400
#: Asset names in graph order, as the asset modules register them (the report's order).
REPORT_ORDER: list[str] = []


def round_number(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits (non-finite values unchanged)."""
    if not math.isfinite(value) or value == 0:
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def rounded(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata with float entries (plain or ``FloatMetadataValue``) rounded."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if isinstance(value, float | np.floating):
            out[key] = round_number(float(value))
        elif isinstance(value, dg.FloatMetadataValue) and value.value is not None:
            out[key] = dg.MetadataValue.float(round_number(float(value.value)))
        else:
            out[key] = value
    return out


def _scalar(value: Any) -> Any:
    """A JSON-able key number, or None for tables, figures and long texts."""
    if isinstance(value, bool | int | float | np.integer | np.floating):
        return value.item() if hasattr(value, "item") else value
    if isinstance(value, str):
        return value if len(value) <= 200 else None
    inner = getattr(value, "value", None)
    if isinstance(value, dg.FloatMetadataValue | dg.IntMetadataValue | dg.BoolMetadataValue) or (
        isinstance(value, dg.TextMetadataValue) and len(str(inner)) <= 200
    ):
        return inner
    return None


def combine_figures(folder: Path) -> Path | None:
    """Stack the folder's PNG figures (oldest first) into one image, or None without any."""
    pngs = sorted(
        (p for p in folder.glob("*.png") if p.name != SUMMARY_PNG),
        key=lambda p: (p.stat().st_mtime, p.name),
    )
    images = [
        img for img in (cv2.imread(str(p), cv2.IMREAD_COLOR) for p in pngs) if img is not None
    ]
    if not images:
        return None
    rows = []
    for img in images:
        h, w = img.shape[:2]
        scale = COMBINED_WIDTH / w
        rows.append(cv2.resize(img, (COMBINED_WIDTH, max(1, round(h * scale))), cv2.INTER_AREA))
        rows.append(np.full((12, COMBINED_WIDTH, 3), 255, np.uint8))
    ok, payload = cv2.imencode(".png", np.vstack(rows[:-1]))
    if not ok:
        return None
    return atomic_write_bytes(folder / SUMMARY_PNG, payload.tobytes())


def _embedded(path: Path, title: str) -> dg.MetadataValue:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    data = base64.b64encode(jpeg.tobytes() if ok else path.read_bytes()).decode("ascii")
    kind = "jpeg" if ok else "png"
    return dg.MetadataValue.md(
        f"**{title}** (`{path}`)\n\n![{title}](data:image/{kind};base64,{data})"
    )


def present(
    result: dg.MaterializeResult,
    *,
    folder: Path,
    line_dir: Path,
    asset: str,
    description: str,
    run_id: str,
) -> dg.MaterializeResult:
    """The materialization as shown: combined QC first, rounded numbers, report link."""
    metadata = rounded(result.metadata or {})
    lead: dict[str, Any] = {}
    if folder.is_dir():
        combined = combine_figures(folder)
        if combined is not None:
            lead["qc"] = _embedded(combined, f"{asset}: quality control")
        numbers = {k: v for k, v in ((k, _scalar(v)) for k, v in metadata.items()) if v is not None}
        summary = {
            "asset": asset,
            "description": description,
            "materialized_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "run_id": run_id,
            "numbers": numbers,
        }
        write_json(folder / SUMMARY_JSON, summary)
        report = write_line_report(line_dir)
        lead["report"] = dg.MetadataValue.path(str(report))
    return dg.MaterializeResult(
        asset_key=result.asset_key,
        metadata={**lead, **metadata},
        check_results=result.check_results,
        data_version=result.data_version,
        tags=result.tags,
        value=result.value,
    )


def write_line_report(line_dir: Path) -> Path:
    """Rewrite ``report.html`` of one line from every asset's summary.json and QC image."""
    folders = [p for p in line_dir.iterdir() if p.is_dir() and (p / SUMMARY_JSON).is_file()]
    rank = {name: i for i, name in enumerate(REPORT_ORDER)}
    folders.sort(key=lambda p: (rank.get(p.name, len(rank)), p.name))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(line_dir.name)} — ace_assets report</title>",
        "<style>body{font-family:sans-serif;max-width:1450px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
        "text-align:left}img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(line_dir.name.replace('_', ' '))}</h1><ul>",
    ]
    parts += [f"<li><a href='#{p.name}'>{p.name}</a></li>" for p in folders]
    parts.append("</ul>")
    for folder in folders:
        summary = read_json(folder / SUMMARY_JSON)
        parts.append(f"<h2 id='{folder.name}'>{html.escape(folder.name)}</h2>")
        parts.append(
            f"<p>{html.escape(summary.get('description', ''))}<br>"
            f"<small>materialized {html.escape(summary.get('materialized_at', ''))}, "
            f"run {html.escape(str(summary.get('run_id', '')))}</small></p>"
        )
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in summary.get("numbers", {}).items()
        )
        if rows:
            parts.append(f"<table>{rows}</table>")
        if (folder / SUMMARY_PNG).is_file():
            parts.append(f"<p><img src='{folder.name}/{SUMMARY_PNG}' alt='{folder.name} QC'></p>")
    parts.append("</body></html>")
    return atomic_write_text(line_dir / REPORT, "\n".join(parts))
