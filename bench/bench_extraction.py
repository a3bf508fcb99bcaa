"""Benchmark CNMF-E extraction: speed, peak memory at two movie lengths, accuracy.

Each run writes a synthetic motion-corrected movie (ace_assets.demo.miniscope_synth, motion
and bands off) to an ArrayStore in a temporary directory, then extracts it in a fresh
subprocess that reports its wall time, CPU time (user + system: steadier than wall time on
a shared machine) and peak RSS (``ru_maxrss`` of that process). Peak RSS should stay flat
as the movie gets longer (only the N x T traces grow). The baseline
ratio is peak RSS over the float32 size of the whole movie, the least an in-memory CNMF-E
needs. Accuracy (recall, precision, median trace correlation, event F1) is against the
generator's ground truth; rejected candidates are counted per reason (``rejected``).

    python bench/bench_extraction.py            # 608 x 608, 1000 and 2000 frames
    python bench/bench_extraction.py --quick    # 160 x 160, 400 and 800 frames (< 1 min)

``--family`` runs every member of the harder synthetic family (``ace_assets.demo.families``)
at default settings (an empty analysis_parameters.csv row), as earlier stages hand it over:
no motion, no corrupted frames, bands removed or left at ``--band-scale`` of their amplitude
(their frequencies passed as the denoiser reports them). Stripe-shaped unmatched sources
(``stripe_src``) and kept sources below ``min_SNR`` (``low_snr``) must be 0.

    python bench/bench_extraction.py --family [--frames 1000] [--band-scale 0.4] [--members ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope  # noqa: E402
from ace_assets.io.store import ArrayStoreWriter  # noqa: E402


def make_config(size: int, frames: int, neurons: int, radius: float) -> MiniscopeSynthConfig:
    return MiniscopeSynthConfig(
        height=size,
        width=size,
        n_frames=frames,
        n_neurons=neurons,
        neuron_radius=radius,
        amplitude_range=(10.0, 25.0),
        motion_amplitude=0.0,
        band_amplitude=0.0,
        seed=2,
    )


def write_movie(syn: SyntheticMiniscope, path: Path) -> None:
    t = syn.n_frames
    with ArrayStoreWriter(path, (t, syn.height, syn.width), np.uint8, {"fps": syn.fps}) as wr:
        for a in range(0, t, 100):
            wr.write(a, syn.render(a, min(a + 100, t), motion=False, bands=False))
        wr.commit()


def worker(store: str, params_json: str, out_dir: str) -> None:
    from ace_assets.io.store import ArrayStore
    from ace_assets.miniscope.extraction import ExtractionParams, extract, save_result

    values = json.loads(params_json)
    stripes = values.pop("stripe_frequencies_hz", None)
    params = ExtractionParams.from_dict(values)
    t0 = time.perf_counter()
    u0 = resource.getrusage(resource.RUSAGE_SELF)
    extra = {"stripe_frequencies_hz": stripes} if stripes else {}
    res = extract(ArrayStore(store), params, workdir=out_dir, **extra)
    wall = time.perf_counter() - t0
    u1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (u1.ru_utime - u0.ru_utime) + (u1.ru_stime - u0.ru_stime)
    save_result(res, out_dir)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss_mb, "info": res.info}))


def run_worker(store: Path, params: dict, out: Path) -> dict:
    """Extract ``store`` in a fresh subprocess; its wall time, CPU time, peak RSS and info."""
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", str(store), json.dumps(params), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def family_case(name: str, frames: int, band_scale: float) -> dict:
    """One family member, cleaned as earlier stages would, at default settings."""
    from dataclasses import replace

    from ace_assets.catalog.stage_params import group_defaults
    from ace_assets.demo.families import family_member
    from ace_assets.demo.scoring import stripe_shaped_sources
    from ace_assets.miniscope.extraction import evaluate_against_truth, load_result
    from ace_assets.miniscope.extraction.evaluation import match_centers

    cfg = family_member(name, n_frames=frames)
    bands = band_scale > 0
    if bands:
        scaled = tuple(replace(b, amplitude=b.amplitude * band_scale) for b in cfg.extra_bands)
        cfg = replace(cfg, band_amplitude=cfg.band_amplitude * band_scale, extra_bands=scaled)
    syn = SyntheticMiniscope(cfg)
    params = group_defaults("extraction")
    params["fps"] = cfg.fps
    if bands:
        params["stripe_frequencies_hz"] = [
            b.cycles * b.speed / cfg.height * cfg.fps for b in cfg.band_components()
        ]
    with tempfile.TemporaryDirectory(prefix="bench-cnmfe-family-") as tmp:
        store = Path(tmp) / "movie.npyd"
        shape = (frames, cfg.height, cfg.width)
        with ArrayStoreWriter(store, shape, np.uint8, {"fps": cfg.fps}) as wr:
            for a in range(0, frames, 100):
                b = min(a + 100, frames)
                wr.write(a, syn.render(a, b, motion=False, bands=bands, corrupt=False))
            wr.commit()
        out = Path(tmp) / "out"
        out.mkdir()
        stats = run_worker(store, params, out)
        res = load_result(out)
    metrics = evaluate_against_truth(res, syn.centers, syn.C, syn.S)
    _, fi = match_centers(syn.centers, res.centers, 4.0)
    unmatched = np.setdiff1d(np.arange(res.n_components), fi)
    stripes = stripe_shaped_sources(res.footprints(), unmatched, cfg.neuron_radius)
    return {
        "member": name,
        "size": f"{cfg.height}x{cfg.width}",
        "frames": frames,
        "band_scale": band_scale,
        "wall_s": stats["wall_s"],
        "cpu_s": stats["cpu_s"],
        "peak_rss_mb": stats["peak_rss_mb"],
        "candidates": stats["info"].get("n_candidates", res.n_components),
        "components": res.n_components,
        "stripe_src": len(stripes),
        "low_snr": int((res.snr < params["min_SNR"]).sum()),
        "rejected": {k: v for k, v in stats["info"].get("rejected_counts", {}).items() if v},
        **{k: metrics[k] for k in ("recall", "precision", "median_trace_corr", "event_f1")},
    }


def family_main(frames: int, band_scale: float, members: list[str]) -> None:
    rows = [family_case(name, frames, band_scale) for name in members]
    cols = [
        ("member", "{:<16}"),
        ("size", "{:>8}"),
        ("wall_s", "{:>7.1f}"),
        ("cpu_s", "{:>7.1f}"),
        ("peak_rss_mb", "{:>7.0f}"),
        ("candidates", "{:>5d}"),
        ("components", "{:>5d}"),
        ("recall", "{:>6.3f}"),
        ("precision", "{:>6.3f}"),
        ("median_trace_corr", "{:>6.3f}"),
        ("stripe_src", "{:>4d}"),
        ("low_snr", "{:>4d}"),
    ]
    print(f"CNMF-E at default settings, family members, {frames} frames, bands x{band_scale}")
    print(" | ".join(name for name, _ in cols) + " | rejected")
    for r in rows:
        print(" | ".join(fmt.format(r[name]) for name, fmt in cols) + f" | {r['rejected']}")
    print(json.dumps({"bench": "extraction_family", "frames": frames, "rows": rows}))


def run_case(size: int, frames: int, neurons: int, radius: float, params: dict) -> dict:
    from ace_assets.miniscope.extraction import evaluate_against_truth, load_result

    syn = SyntheticMiniscope(make_config(size, frames, neurons, radius))
    with tempfile.TemporaryDirectory(prefix="bench-cnmfe-") as tmp:
        store = Path(tmp) / "movie.npyd"
        write_movie(syn, store)
        out = Path(tmp) / "out"
        out.mkdir()
        stats = run_worker(store, params, out)
        res = load_result(out)
    metrics = evaluate_against_truth(res, syn.centers, syn.C, syn.S)
    movie_mb = frames * size * size * 4 / 2**20
    return {
        "size": size,
        "frames": frames,
        "neurons_true": neurons,
        "components": res.n_components,
        "wall_s": stats["wall_s"],
        "cpu_s": stats["cpu_s"],
        "s_per_1000_frames": stats["wall_s"] / frames * 1000.0,
        "peak_rss_mb": stats["peak_rss_mb"],
        "movie_float32_mb": movie_mb,
        "rss_over_movie": stats["peak_rss_mb"] / movie_mb,
        "tsub_effective": stats["info"].get("tsub_effective"),
        "candidates": stats["info"].get("n_candidates", res.n_components),
        "rejected": {k: v for k, v in stats["info"].get("rejected_counts", {}).items() if v},
        **{k: metrics[k] for k in ("recall", "precision", "median_trace_corr", "event_f1")},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--frames", type=str, default=None, help="two lengths, e.g. 1000,2000")
    ap.add_argument("--neurons", type=int, default=None)
    ap.add_argument("--family", action="store_true", help="the harder family, defaults")
    ap.add_argument("--band-scale", type=float, default=0.0, help="--family: bands left in")
    ap.add_argument("--members", nargs="*", default=None, help="--family: which members")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if args.family:
        from ace_assets.demo.families import HARD_FAMILY

        frames = int(args.frames) if args.frames else 1000
        family_main(frames, args.band_scale, args.members or sorted(HARD_FAMILY))
        return
    if args.quick:
        # max_init_frames small enough that both lengths hit the initialisation cap
        size, lengths, neurons, radius = 160, (400, 800), 40, 3.0
        params = dict(gSig=(3, 3), gSiz=(13, 13), rf=40, stride=20, max_init_frames=200)
    else:
        size, lengths, neurons, radius = 608, (1000, 2000), 350, 5.0
        params = dict(gSig=(5, 5), gSiz=(21, 21), rf=40, stride=20)
    size = args.size or size
    lengths = tuple(int(v) for v in args.frames.split(",")) if args.frames else lengths
    neurons = args.neurons or neurons
    params.update(min_corr=0.8, min_pnr=6, tsub=2, fps=30.0)

    rows = [run_case(size, t, neurons, radius, params) for t in lengths]
    cols = [
        ("frames", "{:>7d}"),
        ("wall_s", "{:>8.1f}"),
        ("cpu_s", "{:>8.1f}"),
        ("s_per_1000_frames", "{:>12.1f}"),
        ("peak_rss_mb", "{:>10.0f}"),
        ("rss_over_movie", "{:>9.2f}"),
        ("candidates", "{:>6d}"),
        ("components", "{:>6d}"),
        ("recall", "{:>7.3f}"),
        ("precision", "{:>9.3f}"),
        ("median_trace_corr", "{:>10.3f}"),
        ("event_f1", "{:>8.3f}"),
    ]
    print(f"CNMF-E extraction, {size}x{size} px, {neurons} neurons, params {params}")
    print(
        " ".join(f"{name[:12]:>{len(fmt.format(0)) if 'd' in fmt else 10}}" for name, fmt in cols)
    )
    for r in rows:
        print(" ".join(fmt.format(r[name]) for name, fmt in cols))
    growth = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    print(
        f"peak RSS x{growth:.2f} for x{rows[-1]['frames'] / rows[0]['frames']:.1f} frames; "
        f"whole-movie float32 baseline x{rows[-1]['movie_float32_mb'] / rows[0]['movie_float32_mb']:.1f}"
    )
    print(
        json.dumps(
            {
                "bench": "extraction",
                "size": size,
                "neurons": neurons,
                "rss_growth": growth,
                "runs": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
