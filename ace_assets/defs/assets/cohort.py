"""Cohort: every line's latest results in one table, kept current as lines are processed."""

import base64
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import numpy as np
import pandas as pd

from ace_assets.catalog.experiments import read_experiments
from ace_assets.catalog.periods import line_periods
from ace_assets.cohort.comparisons import compare_groups
from ace_assets.cohort.groups import DEFAULT_COLUMN, GROUPS_CSV, groups_from_column, read_groups
from ace_assets.cohort.table import (
    INVALID,
    MISSING,
    PARTIAL,
    STALE,
    UNREADABLE,
    LineResults,
    cohort_frame,
    line_row,
    unreadable_row,
)
from ace_assets.defs.assets.calcium import calcium_events, miniscope_sources
from ace_assets.defs.assets.catalog import experiments, line_parameters
from ace_assets.defs.assets.coupling import fluorescence_eeg_coupling
from ace_assets.defs.assets.ephys import ephys_results
from ace_assets.defs.assets.movie import denoised_movie, motion_corrected_movie
from ace_assets.defs.assets.multimodal import multimodal_alignment, multimodal_results
from ace_assets.defs.assets.session import line_session
from ace_assets.defs.failures import input_errors_as_failures
from ace_assets.defs.figures import new_figure, save_png
from ace_assets.defs.line_assets import MODALITY_NEEDS, MODALITY_TAG
from ace_assets.defs.manifests import MANIFEST, NotMaterializedError, write_manifest
from ace_assets.defs.resources import PathsResource
from ace_assets.defs.results import (
    AlignmentResult,
    EventsResult,
    PhaseResult,
    Result,
    SourcesResult,
    results_asset,
    staged,
)
from ace_assets.errors import AceInputError
from ace_assets.io.csv_export import write_csv
from ace_assets.io.store import load_npz

COHORT_GROUP = "cohort"
#: The per-line results the table reads; each is an upstream of ``cohort_table``.
COHORT_INPUTS: tuple[dg.AssetsDefinition, ...] = (
    denoised_movie,
    motion_corrected_movie,
    miniscope_sources,
    calcium_events,
    ephys_results,
    multimodal_alignment,
    multimodal_results,
    fluorescence_eeg_coupling,
)
#: Re-run when any line's result is updated, once no line run is still writing one.
#: Not on a re-read catalog alone (its ``experiments`` dep is ignored): catalog cells
#: reach the table with the next result, or a materialization from the UI.
COHORT_AUTOMATION = (
    dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated())
    .ignore(dg.AssetSelection.assets(experiments))
    .since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("any line's result updated")

T = TypeVar("T")


class CohortTable(Result):
    """``cohort_table``: one row per line (CSV and Parquet)."""

    def frame(self) -> pd.DataFrame:
        return pd.read_parquet(self.manifest["parquet"])


@results_asset(
    group_name=COHORT_GROUP,
    deps=[
        experiments,
        *(dg.AssetDep(a, partition_mapping=dg.AllPartitionMapping()) for a in COHORT_INPUTS),
    ],
    kinds={"pandas", "csv", "parquet"},
    automation_condition=COHORT_AUTOMATION,
)
def cohort_table(context: dg.AssetExecutionContext, paths: PathsResource) -> dg.MaterializeResult:
    """One row per line: catalog entry (id, date, weight, drug, dose) beside event rates and
    band power per period, phase locking per channel, dropped frames, motion and TTL mismatch.

    Each line's ``status`` says whether its results are complete and current (ok), older
    than its session files or parameters (stale), incomplete (partial), absent (missing),
    or its catalog row refused (invalid). Lines are read from their results folders, so
    a line added tonight only needs its own run.
    """
    with input_errors_as_failures():
        catalog = read_experiments(paths.experiments_csv, paths.path_rules)
    rows = []
    for line, experiment in catalog.lines.items():
        try:
            results = None if experiment.problems else read_line(paths, line)
        except (OSError, ValueError, KeyError) as exc:  # one damaged folder costs its line only
            rows.append(unreadable_row(experiment, f"{type(exc).__name__}: {exc}"))
            continue
        rows.append(line_row(experiment, results))
    frame = cohort_frame(rows)
    own = CohortTable.of(context, paths)
    with staged(context, paths) as out:
        write_csv(frame, out / "cohort_table.csv")
        frame.to_parquet(out / "cohort_table.parquet", index=False)
        figure = _table_figure(frame, out / "cohort_table.png", own.folder)
        write_manifest(
            out,
            {
                "csv": str(own.folder / "cohort_table.csv"),
                "parquet": str(own.folder / "cohort_table.parquet"),
                "status": {str(r["line_number"]): r["status"] for r in rows},
                "columns": list(frame.columns),
            },
        )
    counts = Counter(frame["status"])
    return dg.MaterializeResult(
        metadata={
            **({"lines": figure} if figure else {}),
            "dagster/row_count": len(frame),
            "lines_by_status": dg.MetadataValue.json(dict(counts)),
            "missing_lines": _lines(frame, (MISSING,)),
            "stale_lines": _lines(frame, (STALE,)),
            "periods_outside_recording": _outside(frame),
            "incomplete_lines": _lines(frame, (PARTIAL, INVALID, UNREADABLE)),
            "status": dg.MetadataValue.md(_status_markdown(frame)),
            "columns": dg.MetadataValue.text(", ".join(frame.columns)),
            "csv": dg.MetadataValue.path(str(own.folder / "cohort_table.csv")),
            "parquet": dg.MetadataValue.path(str(own.folder / "cohort_table.parquet")),
        },
        value=own,
    )


def _lines(frame: pd.DataFrame, statuses: tuple[str, ...]) -> dg.MetadataValue:
    lines = frame.loc[frame["status"].isin(statuses), "line_number"].astype(str)
    return dg.MetadataValue.text(", ".join(lines) or "none")


def _outside(frame: pd.DataFrame) -> dg.MetadataValue:
    """Lines whose periods stick out of their recording, and which column says so."""
    if "periods_outside_recording" not in frame:
        return dg.MetadataValue.text("none")
    rows = frame.dropna(subset=["periods_outside_recording"])
    lines = [f"- line {r.line_number}: {r.periods_outside_recording}" for r in rows.itertuples()]
    return dg.MetadataValue.md("\n".join(lines) or "none")


def _status_markdown(frame: pd.DataFrame) -> str:
    out = ["| line | id | date | drug | status | note |", "|---|---|---|---|---|---|"]
    for r in frame.to_dict("records"):
        cells = [r["line_number"], r.get("animal_id"), r.get("date"), r.get("systemic_drug")]
        cells += [r["status"], r.get("note")]
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(out)


def _cell(value: object) -> str:
    return "" if value is None or pd.isna(value) else str(value).replace("|", "/")


def _written_at(folder: Path) -> float | None:
    manifest = folder / MANIFEST
    return manifest.stat().st_mtime if manifest.is_file() else None


def _read(load: Callable[[], T], problems: list[str], what: str) -> T | None:
    """A result's content, or None (and why) when it cannot be read."""
    try:
        return load()
    except (NotMaterializedError, FileNotFoundError, KeyError) as exc:
        problems.append(f"{what} unreadable: {exc}")
        return None


def _name(asset: dg.AssetsDefinition) -> str:
    return asset.key.path[-1]


def read_line(paths: PathsResource, line: int) -> LineResults:
    """What the line's latest results hold, read through their typed handles."""
    session = line_session(paths, line)
    params = line_parameters(paths, line)
    inputs = [_written_at(session.folder), _written_at(params.folder)]
    results = LineResults(
        line=line,
        inputs_at=max(inputs) if all(t is not None for t in inputs) else None,  # type: ignore[type-var]
    )
    if results.inputs_at is None:
        return results
    have = session.modalities
    results.expected = tuple(
        _name(a)
        for a in COHORT_INPUTS
        if set(MODALITY_NEEDS[a.tags_by_key[a.key][MODALITY_TAG]]) <= have
    )
    for asset in COHORT_INPUTS:
        at = _written_at(Result.at(paths, asset, line).folder)
        if _name(asset) in results.expected and at is not None:
            results.updated_at[_name(asset)] = at
    try:
        results.periods = line_periods(params.values, file=paths.parameters_csv, line=line)
    except AceInputError as exc:
        results.problems.append(str(exc))
    _fill(results, paths, line)
    return results


def _fill(results: LineResults, paths: PathsResource, line: int) -> None:
    """Each present result's measures; what cannot be read goes to ``results.problems``."""
    problems = results.problems

    def present(asset: dg.AssetsDefinition) -> bool:
        return _name(asset) in results.updated_at

    if present(miniscope_sources):
        sources = SourcesResult.at(paths, miniscope_sources, line)
        results.n_sources = _read(
            lambda: int(sources.manifest["n_components"]), problems, "sources"
        )
        results.n_frames = _read(lambda: int(sources.manifest["n_frames"]), problems, "sources")
        results.fps = _read(lambda: float(sources.manifest["fps"]), problems, "sources")
    if present(calcium_events):
        events = EventsResult.at(paths, calcium_events, line)
        results.events = _read(events.events, problems, "events")
        results.rejected_ids = events.manifest.get("rejected_ids") or []
    if present(multimodal_alignment):
        alignment = AlignmentResult.at(paths, multimodal_alignment, line)
        results.frame_times_s = _read(alignment.frame_times, problems, "frame times")
        results.alignment = alignment.manifest
    if present(ephys_results):
        phase = PhaseResult.at(paths, ephys_results, line)
        results.channels = phase.channels
        results.band_hz = phase.manifest.get("band_hz")
        results.band_window_s = (phase.manifest.get("windows") or {}).get("window_s")
        results.band_power = _read(
            lambda: load_npz(phase.manifest["band_power"]), problems, "band power"
        )
    if present(multimodal_results):
        folder = Result.at(paths, multimodal_results, line).folder
        results.event_phases = _read(
            lambda: pd.read_csv(folder / "event_phases.csv"), problems, "event phases"
        )
        results.phase_locking = _read(
            lambda: pd.read_csv(folder / "phase_locking.csv"), problems, "phase locking"
        )
    if present(fluorescence_eeg_coupling):
        folder = Result.at(paths, fluorescence_eeg_coupling, line).folder
        results.coherence_peaks = _read(
            lambda: pd.read_csv(folder / "coherence_peaks.csv"), problems, "coherence peaks"
        )
    if present(denoised_movie):
        results.denoise = Result.at(paths, denoised_movie, line).manifest
    if present(motion_corrected_movie):
        results.motion = Result.at(paths, motion_corrected_movie, line).manifest


@results_asset(
    group_name=COHORT_GROUP,
    kinds={"pandas", "csv"},
    automation_condition=dg.AutomationCondition.eager(),
)
def cohort_comparisons(
    context: dg.AssetExecutionContext, paths: PathsResource, cohort_table: CohortTable
) -> dg.MaterializeResult:
    """Groups of lines compared per measure and period: n, mean, SD, median per group; a
    between-group test (Mann-Whitney U and Welch's t for two groups, Kruskal-Wallis beyond)
    with effect sizes; high slow-wave vs control periods paired within each group (Wilcoxon).

    Groups come from the project's ``groups.csv`` (``group,line number``), else from the
    ``systemic drug`` column. A line not ``ok`` in the cohort table, or without a value for a
    measure, is listed in ``excluded.csv`` with the reason.
    """
    table = cohort_table.frame()
    groups_file = paths.project / GROUPS_CSV
    with input_errors_as_failures():
        if groups_file.is_file():
            groups, source = read_groups(groups_file), str(groups_file)
        else:
            groups, source = groups_from_column(table), f"catalog column {DEFAULT_COLUMN}"
    summary, tests, excluded = compare_groups(table, groups)
    own = Result.of(context, paths)
    with staged(context, paths) as out:
        write_csv(summary, out / "summary.csv")
        write_csv(tests, out / "tests.csv")
        write_csv(excluded, out / "excluded.csv")
        figure = _comparison_figure(table, groups, tests, out / "comparisons.png", own.folder)
        write_manifest(
            out,
            {
                "groups_from": source,
                "groups": {str(k): v for k, v in sorted(groups.items())},
                "summary_csv": str(own.folder / "summary.csv"),
                "tests_csv": str(own.folder / "tests.csv"),
                "excluded_csv": str(own.folder / "excluded.csv"),
            },
        )
    metadata: dict[str, Any] = {"comparisons": figure} if figure else {}
    metadata.update(
        {
            "groups_from": dg.MetadataValue.text(source),
            "tests_csv": dg.MetadataValue.path(str(own.folder / "tests.csv")),
            "summary_csv": dg.MetadataValue.path(str(own.folder / "summary.csv")),
            "lines_per_group": dg.MetadataValue.json(dict(Counter(groups.values()))),
            "tests": dg.MetadataValue.md(_tests_markdown(tests)),
            "excluded": dg.MetadataValue.md(_excluded_markdown(excluded)),
            "excluded_lines": dg.MetadataValue.text(
                ", ".join(str(x) for x in sorted(set(excluded["line_number"]))) or "none"
            ),
        }
    )
    return dg.MaterializeResult(metadata=metadata, value=own)


def _tests_markdown(tests: pd.DataFrame) -> str:
    if tests.empty:
        return "no test: fewer than two groups with two lines each"
    out = [
        "| measure | groups | test | statistic | p | effect | ratio of means |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in tests.to_dict("records"):
        ratio = r.get("mean_ratio")
        effect = next(
            (
                f"{k} {r[k]:.2f}"
                for k in ("hedges_g", "epsilon_squared", "rank_biserial_r")
                if k in r and pd.notna(r[k])
            ),
            "",
        )
        stat = r.get("statistic")
        p = r.get("p")
        out.append(
            f"| {r['measure']} | {r['groups']} | {r['test']} | "
            f"{'' if pd.isna(stat) else f'{stat:.3g}'} | {'' if pd.isna(p) else f'{p:.3g}'} | "
            f"{effect} | {'' if ratio is None or pd.isna(ratio) else f'{ratio:.3g}'} |"
        )
    return "\n".join(out)


def _excluded_markdown(excluded: pd.DataFrame) -> str:
    if excluded.empty:
        return "none"
    out = ["| line | group | measure | reason |", "|---|---|---|---|"]
    out += [
        f"| {r['line_number']} | {_cell(r['group'])} | {r['measure']} | {_cell(r['reason'])} |"
        for r in excluded.to_dict("records")
    ]
    return "\n".join(out)


def _comparison_figure(
    table: pd.DataFrame, groups: dict[int, str], tests: pd.DataFrame, path: Path, final: Path
) -> dg.MetadataValue | None:
    """Each line's value per group, for the event rates per period and the band power with
    the largest between-group effect (|Hedges g|; else the first band power)."""
    ok = table[(table["status"] == "ok") & table["line_number"].isin(groups)]
    rates = [c for c in ok.columns if c.startswith("event_rate_hz_") and ok[c].notna().any()]
    power = [c for c in ok.columns if c.startswith("band_power_uV2_") and ok[c].notna().any()]
    measures = (rates + _largest_effect_first(power, tests)[:1])[:4]
    if not measures:
        return None
    names = sorted(set(groups.values()))
    fig, axes = new_figure(3.2 * len(measures), 3.2, ncols=len(measures))
    for ax, measure in zip(axes[0], measures, strict=False):
        for i, group in enumerate(names):
            v = ok.loc[ok["line_number"].map(groups).eq(group), measure].dropna()
            ax.scatter(np.full(len(v), i) + np.linspace(-0.1, 0.1, len(v)), v, s=14)
            if len(v):
                ax.hlines(v.mean(), i - 0.25, i + 0.25, color="k")
        ax.set_xticks(range(len(names)), names, rotation=30)
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.set_title(measure, fontsize=8)
    return _embedded(fig, path, final, "Lines per group")


def _largest_effect_first(columns: list[str], tests: pd.DataFrame) -> list[str]:
    """``columns`` by decreasing |Hedges g| of their between-group test; untested last."""
    if "hedges_g" not in tests:
        return columns
    tested = tests.dropna(subset=["hedges_g"]).drop_duplicates("measure")
    g = tested.set_index("measure")["hedges_g"].abs()
    return sorted(columns, key=lambda c: -float(g[c]) if c in g.index else 0.0)


def _embedded(fig: Any, path: Path, final: Path, title: str) -> dg.MetadataValue:
    """Save ``fig`` and show it in the UI (an unpartitioned asset has no line report)."""
    save_png(fig, path)
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return dg.MetadataValue.md(
        f"**{title}** (`{final / path.name}`)\n\n![{title}](data:image/png;base64,{data})"
    )


def _table_figure(frame: pd.DataFrame, path: Path, final: Path) -> dg.MetadataValue | None:
    """Per line: event rate and band power (first channel) in each period, status in the label."""
    panels = [
        [c for c in frame.columns if c.startswith("event_rate_hz_")],
        [c for c in frame.columns if c.startswith("band_power_uV2_")],
    ]
    if panels[1]:
        first = panels[1][0].rsplit("_", 1)[0]
        panels[1] = [c for c in panels[1] if c.startswith(first + "_")]
    panels = [p for p in panels if p and frame[p].notna().any().any()]
    if not panels:
        return None
    labels = [f"{n}\n{s}" for n, s in zip(frame["line_number"], frame["status"], strict=True)]
    x = np.arange(len(frame))
    fig, axes = new_figure(max(6.0, 1.2 * len(frame) + 3), 3.0 * len(panels), nrows=len(panels))
    for ax, columns in zip(axes[:, 0], panels, strict=True):
        width = 0.8 / len(columns)
        for i, column in enumerate(columns):
            ax.bar(x + i * width - 0.4 + width / 2, frame[column], width, label=column)
        ax.set_xticks(x, labels)
        ax.set_xlim(-0.6, len(frame) - 0.4)
        rate = columns[0].startswith("event_rate")
        ax.set_ylabel("events/s per source" if rate else "band power (µV²)")
        ax.legend(fontsize=7)
    axes[0, 0].set_title("per line and period (line number, status)")
    return _embedded(fig, path, final, "Lines side by side")
