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
    args = parser.parse_args(argv)

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    write_instance_config(home)

    data = Path(args.data)
    if not (data / "truth").is_dir() and data.resolve() == DEMO_DATA.resolve():
        from ace_assets.demo.generate import generate_demo

        print(f"writing synthetic demo recordings to {data} ...", flush=True)
        generate_demo(data, full=args.full)

    from ace_assets.definitions import defs

    paths = PathsResource(project_path=args.project, data_path=str(data), results_path=args.results)
    resources = {"paths": paths}
    assets = list(defs.assets or [])
    with dg.DagsterInstance.get() as instance:
        start = time.time()
        first = dg.materialize(
            assets, selection="experiments", instance=instance, resources=resources
        )
        lines = args.lines or sorted(instance.get_dynamic_partitions(LINE_PARTITIONS_NAME), key=int)
        print(f"experiments: {len(lines)} lines -> {', '.join(lines)}", flush=True)
        summary: list[tuple[str, str, str]] = []
        failed = not first.success
        for line in lines:
            t0 = time.time()
            result = materialize_line(assets, paths=paths, line=line, instance=instance)
            done = result.materialized()
            failed |= not result.success
            status = "ok" if result.success else "FAILED"
            summary.append((line, status, f"{len(done)} assets in {time.time() - t0:.0f} s"))
            print(f"line {line}: {status}: {', '.join(done)}", flush=True)
        print("\nsummary")
        for line, status, what in summary:
            print(f"  line {line:>4}  {status:<6} {what}")
            for note in highlights(paths, int(line)):
                print(f"             {note}")
        print(f"  results under {paths.results}  ({time.time() - start:.0f} s in all)")
        print(
            "\nopen the UI:  DAGSTER_HOME="
            f"{home} .venv/bin/dagster dev -w workspace.yaml   (then http://localhost:3000)"
        )
    return 1 if failed else 0


def highlights(paths: PathsResource, line: int) -> list[str]:
    """A few numbers per line from the manifests: what a scientist looks at first."""
    from ace_assets.defs.manifests import NotMaterializedError, read_manifest

    def get(asset: str) -> dict:
        try:
            return read_manifest(paths, asset, line)
        except NotMaterializedError:
            return {}

    out = []
    sources = get("miniscope_sources")
    if sources:
        truth = sources.get("ground_truth") or {}
        score = (
            f" (vs ground truth: recall {truth['recall']:.2f}, precision {truth['precision']:.2f},"
            f" trace r {truth['median_trace_corr']:.3f})"
            if truth
            else ""
        )
        out.append(f"miniscope: {sources['n_components']} components{score}")
    events = get("calcium_events")
    if events:
        f1 = (events.get("ground_truth") or {}).get("event_f1")
        out.append(
            f"events: {events['n_events']}" + (f" (event F1 {f1:.2f})" if f1 is not None else "")
        )
    spectrogram = get("ephys_spectrogram")
    if spectrogram:
        peaks = ", ".join(
            f"{c} {f:.1f} Hz"
            for c, f in zip(spectrogram["channels"], spectrogram["peak_frequency_hz"], strict=True)
        )
        out.append(f"ephys spectral peaks: {peaks}")
    alignment = get("multimodal_alignment")
    if alignment:
        err = (alignment.get("ground_truth") or {}).get("max_frame_time_error_ms")
        rep = alignment["report"]
        out.append(
            f"alignment: {rep['n_frames']} frames, {rep['n_ttl']} TTLs after deleting {rep['n_deleted']}"
            + (f", max error {err:.3f} ms" if err is not None else "")
        )
    multimodal = get("multimodal_results")
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
"""

if __name__ == "__main__":
    sys.exit(main())
