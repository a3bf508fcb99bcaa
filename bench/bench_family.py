"""The whole movie chain, default settings, on every member of the harder synthetic family.

Each member of :data:`ace_assets.demo.families.HARD_FAMILY` (frame sizes 200 x 200 to
608 x 608, band noise from 2 to 200 cycles per height, tilted and travelling, vessel
texture or none, sparse quiet neurons, corrupted wireless frames) runs through denoise ->
preprocess -> motion -> extraction exactly as the assets call them, with the defaults of
``ace_assets.catalog.parameter_specs`` (an empty analysis_parameters.csv row), in a fresh
subprocess (peak memory from bench/_memory.py). Scored against the generator's truth:

* ``stripe_kept`` — band power the denoiser's stripe filter lets through (bar: <= 0.10);
* ``signal_lost`` — share of the neurons' own energy that filter removes;
* ``motion_med`` / ``motion_p95`` — rigid error, px, unusable frames left out
  (bars: < 0.3 and < 1.0);
* ``recall`` / ``precision`` — sources vs true neurons within 4 px (bars: >= 0.9);
* ``stripe_src`` — unmatched sources shaped like stripe segments (bar: 0).

    python bench/bench_family.py                       # every member, 1000 frames
    python bench/bench_family.py --frames 300 --members wireless_200 bands19_240x300
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _chain import preprocessed_store_kind  # noqa: E402
from _memory import measure  # noqa: E402

from ace_assets.demo.families import HARD_FAMILY  # noqa: E402

if TYPE_CHECKING:
    from ace_assets.miniscope.denoise import DenoiseReport

BARS = {
    "stripe_kept": ("<=", 0.10),
    "motion_med": ("<", 0.3),
    "motion_p95": ("<", 1.0),
    "recall": (">=", 0.9),
    "precision": (">=", 0.9),
    "stripe_src": ("<=", 0),
}


def defaults(group: str) -> dict[str, Any]:
    """What an empty analysis_parameters.csv row gives a stage."""
    from ace_assets.catalog.stage_params import group_defaults

    return group_defaults(group)


def stripe_filter(report: DenoiseReport, shape: tuple[int, int]):
    """The linear stripe filter the denoiser applied, frozen, as a frames -> frames callable."""
    from ace_assets.miniscope.denoise import StripeFilter

    return StripeFilter.from_report(report, shape).apply


def run_member(name: str, frames: int, workdir: str) -> dict[str, Any]:
    """The chain on one member; returns scores and stage times (runs in a child process)."""
    from ace_assets.demo.families import family_member
    from ace_assets.demo.miniscope_synth import SyntheticMiniscope
    from ace_assets.demo.scoring import (
        neural_signal_lost,
        rigid_errors,
        stripe_power_kept,
        stripe_shaped_sources,
        unusable_frames,
    )
    from ace_assets.io.store import ArrayStoreWriter
    from ace_assets.miniscope.denoise import denoise_movie
    from ace_assets.miniscope.extraction import extract
    from ace_assets.miniscope.extraction.evaluation import evaluate_against_truth, match_centers
    from ace_assets.miniscope.motion import motion_correct
    from ace_assets.miniscope.preprocess import output_shape, preprocess_movie

    cfg = family_member(name, n_frames=frames)
    syn = SyntheticMiniscope(cfg)
    n, h, w = cfg.n_frames, cfg.height, cfg.width
    work = Path(workdir)
    times: dict[str, float] = {}

    t0 = time.perf_counter()
    with ArrayStoreWriter(work / "denoised.npyd", (n, h, w), np.uint8, {"fps": cfg.fps}) as wr:
        den = denoise_movie(syn, n, (h, w), cfg.fps, defaults("denoise"), wr)
        denoised = wr.commit()
    times["denoise_s"] = time.perf_counter() - t0
    band = stripe_filter(den, (h, w))

    t0 = time.perf_counter()
    pre_params = defaults("preprocess")
    shape_out = output_shape(n, (h, w))
    kind = preprocessed_store_kind(denoised.stored_dtype)
    with ArrayStoreWriter(work / "pre.npyd", shape_out, np.float32, {"fps": cfg.fps}, **kind) as wr:
        preprocess_movie(denoised, n, (h, w), cfg.fps, pre_params, wr, scratch_dir=work)
        pre = wr.commit()
    times["preprocess_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with ArrayStoreWriter(
        work / "mc.npyd", shape_out, np.float32, {"fps": cfg.fps}, compact=True
    ) as wr:
        mot = motion_correct(pre, n, (h, w), defaults("motion"), wr)
        corrected = wr.commit()
    times["motion_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    res = extract(
        corrected,
        defaults("extraction"),
        fps=cfg.fps,
        workdir=work,
        stripe_frequencies_hz=den.stripe_frequencies_hz or None,
    )
    times["extraction_s"] = time.perf_counter() - t0

    truth_shifts = syn.shifts
    err = rigid_errors(mot.shifts_rigid, truth_shifts, exclude=unusable_frames(syn))
    offset = np.median(np.asarray(mot.shifts_rigid) + truth_shifts, axis=0)
    centers = syn.centers + offset
    scores = evaluate_against_truth(res, centers, syn.C, syn.truth["spike_frames"])
    _, fi = match_centers(centers, res.centers, 4.0)
    unmatched = np.setdiff1d(np.arange(res.n_components), fi)
    dense = (
        np.stack([np.asarray(res.A[:, k].toarray()).reshape(h, w) for k in unmatched])
        if len(unmatched)
        else np.zeros((0, h, w))
    )
    stripes = stripe_shaped_sources(dense, np.arange(len(unmatched)), cfg.neuron_radius)
    return {
        "member": name,
        "size": f"{h}x{w}",
        "frames": n,
        "stripe_kept": stripe_power_kept(band, syn),
        "signal_lost": neural_signal_lost(band, syn),
        "motion_med": float(np.median(err)),
        "motion_p95": float(np.percentile(err, 95)),
        "motion_max": float(err.max()),
        "recall": scores["recall"],
        "precision": scores["precision"],
        "trace_r": scores["median_trace_corr"],
        "n_found": int(res.n_components),
        "stripe_src": len(stripes),
        **times,
    }


def passes(row: dict[str, Any]) -> bool:
    ops = {"<=": np.less_equal, "<": np.less, ">=": np.greater_equal}
    return all(bool(ops[op](row[k], bar)) for k, (op, bar) in BARS.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--members", nargs="*", default=sorted(HARD_FAMILY))
    args = ap.parse_args()
    rows = []
    for name in args.members:
        with tempfile.TemporaryDirectory(prefix=f"bench-family-{name}-") as tmp:
            stats = measure(
                "bench_family:run_member",
                {"name": name, "frames": args.frames, "workdir": tmp},
                extra_path=[str(HERE.parent)],
            )
        row = dict(stats["result"], peak_anon_mb=stats["peak_anon_mb"])
        row["pass"] = passes(row)
        rows.append(row)
        print(json.dumps(row), flush=True)
    cols = [
        ("member", "{:<17}"),
        ("size", "{:>8}"),
        ("stripe_kept", "{:>7.3f}"),
        ("signal_lost", "{:>7.3f}"),
        ("motion_med", "{:>6.2f}"),
        ("motion_p95", "{:>6.2f}"),
        ("motion_max", "{:>6.1f}"),
        ("recall", "{:>5.2f}"),
        ("precision", "{:>5.2f}"),
        ("stripe_src", "{:>4d}"),
        ("denoise_s", "{:>6.1f}"),
        ("motion_s", "{:>6.1f}"),
        ("extraction_s", "{:>6.1f}"),
        ("peak_anon_mb", "{:>7.0f}"),
        ("pass", "{!s:>5}"),
    ]
    print(" | ".join(c for c, _ in cols))
    for row in rows:
        print(" | ".join(f.format(row[c]) for c, f in cols))
    print(json.dumps({"bench": "family", "frames": args.frames, "rows": rows}))


if __name__ == "__main__":
    main()
