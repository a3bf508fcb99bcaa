"""Materialize every asset of the embedded demo, for every line, and say what was produced.

``python -m ace_assets.run_demo`` is the README's first command: it writes the
synthetic raw data (if absent), reads the catalog, then runs each line's
assets in a persistent Dagster instance so ``dagster dev`` shows the results.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import dagster as dg

from ace_assets.defs.line_assets import is_not_applicable
from ace_assets.defs.line_runs import materialize_line
from ace_assets.defs.partitions import LINE_PARTITIONS_NAME
from ace_assets.defs.resources import DEMO_DATA, DEMO_PROJECT, REPO_ROOT, PathsResource


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project", default=str(DEMO_PROJECT), help="folder with the two CSVs")
    parser.add_argument("--data", default=str(DEMO_DATA), help="raw data root (read-only)")
    parser.add_argument("--results", default="", help="results root (default: in DAGSTER_HOME)")
    parser.add_argument("--full", action="store_true", help="full-size demo data (608x608)")
    parser.add_argument("--lines", nargs="*", help="only these line numbers")
    parser.add_argument("--verbose", action="store_true", help="Dagster's full event log")
    args = parser.parse_args(argv)
    log_level = "DEBUG" if args.verbose else "ERROR"

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    write_instance_config(home)

    data = Path(args.data)
    if data.resolve() == DEMO_DATA.resolve():
        write_missing_demo_lines(data, args.full)

    from ace_assets.definitions import defs

    paths = PathsResource(project_path=args.project, data_path=str(data), results_path=args.results)
    resources = {"paths": paths}
    assets = list(defs.assets or [])
    with dg.DagsterInstance.get() as instance:
        start = time.time()
        first = dg.materialize(
            assets,
            selection="experiments",
            instance=instance,
            resources=resources,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        )
        lines = args.lines or sorted(instance.get_dynamic_partitions(LINE_PARTITIONS_NAME), key=int)
        print(f"experiments: {len(lines)} lines -> {', '.join(lines)}", flush=True)
        summary: list[tuple[str, str, str]] = []
        failed = not first.success
        for line in lines:
            t0 = time.time()
            print(f"line {line}", flush=True)
            result = materialize_line(
                assets, paths=paths, line=line, instance=instance, log_level=log_level
            )
            for row in asset_lines(result):
                print(row, flush=True)
            done = result.materialized()
            failed |= not result.success
            status = "ok" if result.success else "FAILED"
            summary.append((line, status, f"{len(done)} assets in {time.time() - t0:.0f} s"))
        cohort = dg.materialize(
            assets,
            selection=dg.AssetSelection.groups("cohort"),
            instance=instance,
            resources=resources,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            raise_on_error=False,
        )
        failed |= not cohort.success
        print("\nsummary")
        for line, status, what in summary:
            print(f"  line {line:>4}  {status:<6} {what}")
            for note in highlights(paths, int(line)):
                print(f"             {note}")
        print(f"  cohort  {'ok' if cohort.success else 'FAILED':<6} {cohort_summary(cohort)}")
        print(f"  results under {paths.results}  ({time.time() - start:.0f} s in all)")
        print(
            "\nopen the UI:  DAGSTER_HOME="
            f"{home} .venv/bin/dagster dev -w workspace.yaml   (then http://localhost:3000)"
        )
    return 1 if failed else 0


def write_missing_demo_lines(data: Path, full: bool) -> None:
    """Generate the demo lines whose truth is absent; say so when older ones predate groups."""
    from ace_assets.demo.generate import DEMO_LINES, generate_demo, truth_path
    from ace_assets.io.store import load_npz

    missing = tuple(n for n in DEMO_LINES if not truth_path(data, n).exists())
    if missing:
        print(f"writing synthetic demo recordings of lines {missing} to {data} ...", flush=True)
        generate_demo(data, full=full, lines=missing)
    old = [n for n in DEMO_LINES if "osc_power_factor" not in load_npz(truth_path(data, n))]
    if old:
        print(
            f"note: demo lines {old} predate the demo's drug groups; rewrite them with "
            f"python -m ace_assets.demo --out {data} --overwrite",
            flush=True,
        )


def cohort_summary(result: dg.ExecuteInProcessResult) -> str:
    """Lines by status in the cohort table, and the groups compared."""
    meta = {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    table, comparisons = meta.get("cohort_table", {}), meta.get("cohort_comparisons", {})
    out = []
    if "lines_by_status" in table:
        out.append(f"cohort_table: lines by status {table['lines_by_status'].value}")
    if "lines_per_group" in comparisons:
        out.append(f"cohort_comparisons: lines per group {comparisons['lines_per_group'].value}")
    if "tests_csv" in comparisons:
        out += group_effects(Path(comparisons["tests_csv"].value))
    return "\n          ".join(out) or "no cohort results"


def group_effects(tests_csv: Path) -> list[str]:
    """Each two-group comparison of whole-recording band power: the ratio of group means."""
    import pandas as pd

    try:
        tests = pd.read_csv(tests_csv)
    except (OSError, pd.errors.EmptyDataError):
        return []
    if "mean_ratio" not in tests:
        return []
    rows = tests[tests["measure"].str.startswith("band_power_uV2_") & tests["mean_ratio"].notna()]
    rows = rows[rows["measure"].str.endswith("_all")]
    return [
        f"{r.measure}: {r.groups} ratio of means {r.mean_ratio:.2f} (Hedges g {r.hedges_g:.1f})"
        for r in rows.itertuples()
    ]


#: The number shown for each asset in the demo's one-line-per-asset output.
KEY_FIGURES = {
    "analysis_parameters": "settings_from_csv",
    "session_files": "modalities",
    "denoised_movie": "removed_energy_fraction",
    "preprocessed_movie": "n_frames",
    "motion_corrected_movie": "max_rigid_shift_px",
    "miniscope_sources": "n_components",
    "calcium_events": "dagster/row_count",
    "ephys_channels": "duration_s",
    "multimodal_alignment": "ttl_pulses",
}


def asset_lines(result) -> list[str]:
    """One line per asset of a line run: name, step time, a key figure, or why it failed."""
    rows: list[str] = []
    for run in result.runs:
        seconds = {}
        for event in run.all_events:
            if event.event_type_value == "STEP_SUCCESS":
                seconds[event.step_key] = event.event_specific_data.duration_ms / 1000
        for event in run.get_asset_materialization_events():
            mat = event.step_materialization_data.materialization
            name = event.asset_key.to_user_string()
            meta = mat.metadata
            if is_not_applicable(mat):
                figure = f"not applicable ({meta['reason'].value})"
            else:
                key = KEY_FIGURES.get(name) or next(
                    (k for k, v in meta.items() if isinstance(v.value, int | float)), None
                )
                figure = f"{key} = {meta[key].value}" if key in meta else ""
            rows.append(f"  {name:<24} {seconds.get(event.step_key, 0.0):6.1f} s  {figure}")
        for event in run.get_step_failure_events():
            error = event.step_failure_data.user_failure_data
            why = error.description if error else event.step_failure_data.error.message
            rows.append(f"  {event.step_key:<24} FAILED: {why.splitlines()[0]}")
    return rows


def highlights(paths: PathsResource, line: int) -> list[str]:
    """A few numbers per line from the manifests: what a scientist looks at first."""
    from ace_assets.defs.assets.calcium import calcium_events, miniscope_sources
    from ace_assets.defs.assets.ephys import ephys_spectrogram
    from ace_assets.defs.assets.multimodal import multimodal_alignment, multimodal_results
    from ace_assets.defs.manifests import NotMaterializedError
    from ace_assets.defs.results import Result

    def get(asset: dg.AssetsDefinition) -> dict:
        try:
            return Result.at(paths, asset, line).manifest
        except NotMaterializedError:
            return {}

    out = []
    sources = get(miniscope_sources)
    if sources:
        truth = sources.get("ground_truth") or {}
        score = (
            f" (vs ground truth: recall {truth['recall']:.2f}, precision {truth['precision']:.2f},"
            f" trace r {truth['median_trace_corr']:.3f})"
            if truth
            else ""
        )
        out.append(f"miniscope: {sources['n_components']} components{score}")
    events = get(calcium_events)
    if events:
        f1 = (events.get("ground_truth") or {}).get("event_f1")
        out.append(
            f"events: {events['n_events']}" + (f" (event F1 {f1:.2f})" if f1 is not None else "")
        )
    spectrogram = get(ephys_spectrogram)
    if spectrogram:
        peaks = ", ".join(
            f"{c} {f:.1f} Hz"
            for c, f in zip(spectrogram["channels"], spectrogram["peak_frequency_hz"], strict=True)
        )
        out.append(f"ephys spectral peaks: {peaks}")
    alignment = get(multimodal_alignment)
    if alignment:
        err = (alignment.get("ground_truth") or {}).get("max_frame_time_error_ms")
        rep = alignment["report"]
        out.append(
            f"alignment: {rep['n_frames']} frames, {rep['n_ttl']} TTLs after deleting {rep['n_deleted']}"
            + (f", max error {err:.3f} ms" if err is not None else "")
        )
    multimodal = get(multimodal_results)
    if multimodal:
        out.append(
            f"phase locking: {multimodal['n_locked_pairs']} component-channel pairs with Rayleigh p < 0.05"
        )
    return out


def write_instance_config(home: Path) -> None:
    """Pools keep a backfill of many lines from running every heavy stage at once."""
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)


INSTANCE_YAML = """\
# Written by ace_assets.run_demo. Heavy stages (movie passes, source extraction)
# share the pool 'ace_heavy': at most one such step runs at a time on this machine.
concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: 4
# Slots of runs that ended are freed after a minute; runs whose process was killed are
# marked failed by the release_dead_runs sensor (and before every in-process line run).
run_monitoring:
  enabled: true
  free_slots_after_run_end_seconds: 60
"""

if __name__ == "__main__":
    sys.exit(main())
