"""Benchmark: ace_assets against minian 2.0.2 on the same movie, the same cores, one truth.

Both tools read the same Miniscope V4 AVIs written by the generator (``ace_assets.demo``),
each in its own process tree, and are scored against the generator's truth by the same code:

* ace_assets: denoise -> preprocess -> motion -> extraction, as the assets call them, with
  the defaults of ``ace_assets.catalog.parameter_specs`` (an empty analysis_parameters row);
* minian: its ``pipeline.ipynb`` run headless (glow removal, median denoise, tophat,
  motion, seeds, PNR/KS refinement, merge, init, two spatial/temporal updates with a merge
  between), minian's own functions with the notebook's parameters (float32 movie, 1 GB
  rechunk limit, workers spill rather than die at their 4 GB limit), window sizes scaled to
  the neuron size (the median denoise keeps the notebook's 7 px: smaller leaves too much
  noise: 1,574 initial units on the quick movie), on a dask ``LocalCluster`` of ``--workers``
  single-threaded workers. The notebook's ``TaskAnnotation`` scheduler plugin is left out:
  under distributed 2026 it raises on every graph (the scheduler logs it and goes on), so
  it annotates nothing in the notebook either, and with one thread per worker its ``MEM``
  resources could not change the schedule.

Reported per tool: stage times; peak RSS of the whole process tree (the process and every
descendant, summed, sampled every 0.2 s: dask workers are separate processes; shared pages
count once per process, so this overstates both tools alike); recall / precision of the
sources (centres within 4 px of a true neuron, Hungarian matching); median correlation of
matched traces with the true calcium; motion error (median and 95th percentile, px, after
removing the constant offset between the tools' reference frame and the generator's).

The ratio ``minian / ace_assets`` of total time is measured in the same run. minian is never
a runtime dependency: install it into a separate Python 3.11 environment (the
``bench-minian`` extra; ``ffmpeg`` on PATH) and name that interpreter:

    python3.11 -m venv .venv-minian && .venv-minian/bin/pip install -e '.[bench-minian]'
    python bench/bench_vs_minian.py --minian-python .venv-minian/bin/python --quick
    python bench/bench_vs_minian.py --minian-python .venv-minian/bin/python \\
        --frames 1000 8000 --kinds demo highfreq_608

``--kinds``: ``demo`` (608 x 608, 300 neurons, the demo's kind) and/or members of the
harder synthetic family (``ace_assets.demo.families``; ``highfreq_608`` has stripes, vessels
and dim neurons). ``--quick``: 200 x 200, 300 frames, both kinds at that size.
Last line: one JSON object with every number (NaN as null).

The extra pins minian's computing stack to minian 2.0.2's own ``pdm.lock`` for Python < 3.12:
dask and distributed 2026.6.0, xarray 2025.6.1, zarr 2.18.3, numcodecs 0.13.1, rechunker
0.5.4, numpy 2.2.6, pandas 2.3.3, scipy 1.15.3, sparse 0.17.0, numba 0.65.1, cvxpy 1.7.5.
minian 2.0.2 requires dask >= 2025.1; with dask 2025.1 and xarray 2024.11 its
``update_background`` failed to store its result. If minian fails, the end of its traceback
goes to stderr, its row carries ``error``, the ace_assets row, the table and the JSON line
are still printed, and the exit status is 1.

At ``--quick`` size (200 x 200, cells of 3.5 px radius) minian's motion estimate slips at
some chunk boundaries of its recursive template (median error about 1.5 px, a few frames
off by tens of px) and it keeps units away from every true neuron (precision 0.43 on
``demo``, 0.22 on ``highfreq_608``); its 608 x 608 numbers are in issue 18.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

CENTER_TOLERANCE_PX = 4.0
STDERR_TAIL_CHARS = 4000  # of a failed tool's stderr: the end of its traceback


# ----------------------------------------------------------------------------- the movie


def movie_config(kind: str, frames: int, quick: bool) -> Any:
    from dataclasses import replace

    from ace_assets.demo.families import family_member
    from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig

    if kind == "demo":
        cfg = MiniscopeSynthConfig(
            height=608, width=608, n_frames=frames, n_neurons=300, neuron_radius=7.0, seed=11
        )
    else:
        cfg = family_member(kind, n_frames=frames)
    if quick:  # same kind, a small field: neurons scaled with the area
        scale = 200 / max(cfg.height, cfg.width)
        n = max(8, int(cfg.n_neurons * scale * scale))
        cfg = replace(
            cfg,
            height=200,
            width=200,
            n_neurons=n,
            neuron_radius=max(3.0, cfg.neuron_radius * scale * 1.5),
            band_cycles=None if cfg.band_cycles is None else max(2, int(cfg.band_cycles * scale)),
        )
    return cfg


def write_movie(cfg: Any, folder: Path) -> dict[str, np.ndarray]:
    """V4 AVIs of the generated movie; returns the truth both tools are scored against."""
    from ace_assets.demo.miniscope_synth import SyntheticMiniscope
    from ace_assets.demo.miniscope_writer import write_v4_session

    syn = SyntheticMiniscope(cfg)
    write_v4_session(folder, syn, frames_per_file=1000, chunk=100)
    return {
        "centers": np.asarray(syn.centers, dtype=np.float64),
        "C": np.asarray(syn.C, dtype=np.float32),
        "shifts": np.asarray(syn.shifts, dtype=np.float64),
        "radius": np.asarray(cfg.neuron_radius),
    }


# ----------------------------------------------------------------------------- ace_assets


def run_ace(folder: str, workdir: str, out_npz: str) -> dict[str, float]:
    """The movie chain as the assets call it (``bench/_chain.py``; runs in a child process)."""
    from _chain import run_chain

    return run_chain(folder, workdir, out_npz)


# ----------------------------------------------------------------------------- minian

MINIAN_SCRIPT = r"""
import json, os, sys, time
os.environ["OMP_NUM_THREADS"] = "1"; os.environ["MKL_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
folder, intpath, out_npz, workers, radius = sys.argv[1:6]
workers, radius = int(workers), float(radius)
os.environ["MINIAN_INTERMEDIATE"] = intpath
import dask
import numpy as np
from dask.distributed import Client, LocalCluster
from minian.cnmf import (compute_trace, get_noise_fft, unit_merge, update_background,
                         update_spatial, update_temporal)
from minian.initialization import (initA, initC, ks_refine, pnr_refine, seeds_init,
                                   seeds_merge)
from minian.io import load_videos
from minian.motion_correction import apply_transform, estimate_motion
from minian.preprocessing import denoise, remove_background
from minian.utilities import get_optimal_chk, save_minian

RECHUNK_MEM = "1GB"  # the notebook's rechunk_mem_limit

def main():
    # as the notebook: spill, never kill, a worker over its memory limit
    dask.config.set({"distributed.worker.memory.terminate": False})
    cluster = LocalCluster(n_workers=workers, memory_limit="4GB", resources={"MEM": 1},
                           threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
    wnd = int(2 * round(radius) + 1)         # the notebook's 15 px for its ~7 px cells
    dist = max(5, int(round(1.5 * radius)))  # the notebook's 10 px
    size_min = int(np.pi * (0.6 * radius) ** 2)
    times = {}
    t0 = time.perf_counter()
    varr = load_videos(folder, pattern=r"[0-9]+\.avi$", dtype=np.uint8)
    chk, _ = get_optimal_chk(varr, dtype=float)
    varr = save_minian(varr.chunk({"frame": chk["frame"], "height": -1, "width": -1})
                       .rename("varr"), intpath, overwrite=True)
    varr_ref = varr - varr.min("frame").compute()
    varr_ref = denoise(varr_ref, method="median", ksize=7)
    varr_ref = remove_background(varr_ref, method="tophat", wnd=wnd)
    varr_ref = save_minian(varr_ref.rename("varr_ref"), dpath=intpath, overwrite=True)
    times["preprocess_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    motion = estimate_motion(varr_ref, dim="frame")
    motion = save_minian(motion.rename("motion").chunk({"frame": chk["frame"]}), intpath,
                         overwrite=True)
    Y = apply_transform(varr_ref, motion, fill=0)
    Y_fm_chk = save_minian(Y.astype(np.float32).rename("Y_fm_chk"), intpath, overwrite=True)
    Y_hw_chk = save_minian(Y_fm_chk.rename("Y_hw_chk"), intpath, overwrite=True,
                           mem_limit=RECHUNK_MEM,
                           chunks={"frame": -1, "height": chk["height"], "width": chk["width"]})
    times["motion_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    max_proj = save_minian(Y_fm_chk.max("frame").rename("max_proj"), intpath,
                           overwrite=True).compute()
    seeds = seeds_init(Y_fm_chk, wnd_size=1000, method="rolling", stp_size=500, max_wnd=wnd,
                       diff_thres=3)
    seeds, pnr, gmm = pnr_refine(Y_hw_chk, seeds, noise_freq=0.06, thres=1)
    seeds = ks_refine(Y_hw_chk, seeds, sig=0.05)
    seeds_final = seeds[seeds["mask_ks"] & seeds["mask_pnr"]].reset_index(drop=True)
    seeds_final = seeds_merge(Y_hw_chk, max_proj, seeds_final, thres_dist=dist,
                              thres_corr=0.8, noise_freq=0.06)
    A_init = initA(Y_hw_chk, seeds_final[seeds_final["mask_mrg"]], thres_corr=0.8, wnd=dist,
                   noise_freq=0.06)
    A_init = save_minian(A_init.rename("A_init"), intpath, overwrite=True)
    C_init = initC(Y_fm_chk, A_init)
    C_init = save_minian(C_init.rename("C_init"), intpath, overwrite=True,
                         mem_limit=RECHUNK_MEM, chunks={"unit_id": 1, "frame": -1})
    A, C = unit_merge(A_init, C_init, thres_corr=0.8)
    A = save_minian(A.rename("A"), intpath, overwrite=True)
    C = save_minian(C.rename("C"), intpath, overwrite=True)
    C_chk = save_minian(C.rename("C_chk"), intpath, overwrite=True,
                        mem_limit=RECHUNK_MEM, chunks={"unit_id": -1, "frame": chk["frame"]})
    b, f = update_background(Y_fm_chk, A, C_chk)
    f = save_minian(f.rename("f"), intpath, overwrite=True)
    b = save_minian(b.rename("b"), intpath, overwrite=True)
    sn = save_minian(get_noise_fft(Y_hw_chk, noise_range=(0.06, 0.5)).rename("sn_spatial"),
                     intpath, overwrite=True)
    for it, jac in enumerate((0.2, 0.4)):
        A_new, mask, norm_fac = update_spatial(Y_hw_chk, A, C, sn, dl_wnd=dist,
                                               sparse_penal=0.01, size_thres=(size_min, None))
        C_new = save_minian((C.sel(unit_id=mask) * norm_fac).rename("C_new"), intpath,
                            overwrite=True)
        C_chk_new = save_minian((C_chk.sel(unit_id=mask) * norm_fac).rename("C_chk_new"),
                                intpath, overwrite=True)
        b_new, f_new = update_background(Y_fm_chk, A_new, C_chk_new)
        A = save_minian(A_new.rename("A"), intpath, overwrite=True,
                        mem_limit=RECHUNK_MEM,
                        chunks={"unit_id": 1, "height": -1, "width": -1})
        b = save_minian(b_new.rename("b"), intpath, overwrite=True)
        f = save_minian(f_new.chunk({"frame": chk["frame"]}).rename("f"), intpath,
                        overwrite=True)
        C = save_minian(C_new.rename("C"), intpath, overwrite=True)
        C_chk = save_minian(C_chk_new.rename("C_chk"), intpath, overwrite=True)
        YrA = save_minian(compute_trace(Y_fm_chk, A, b, C_chk, f).rename("YrA"), intpath,
                          overwrite=True, mem_limit=RECHUNK_MEM,
                          chunks={"unit_id": 1, "frame": -1})
        C_new, S_new, b0_new, c0_new, g, mask = update_temporal(
            A, C, YrA=YrA, noise_freq=0.06, sparse_penal=1, p=1, add_lag=20, jac_thres=jac)
        C = save_minian(C_new.rename("C").chunk({"unit_id": 1, "frame": -1}), intpath,
                        overwrite=True)
        C_chk = save_minian(C.rename("C_chk"), intpath, overwrite=True,
                            mem_limit=RECHUNK_MEM,
                            chunks={"unit_id": -1, "frame": chk["frame"]})
        b0 = save_minian(b0_new.rename("b0").chunk({"unit_id": 1, "frame": -1}), intpath,
                         overwrite=True)
        c0 = save_minian(c0_new.rename("c0").chunk({"unit_id": 1, "frame": -1}), intpath,
                         overwrite=True)
        A = A.sel(unit_id=C.coords["unit_id"].values)
        if it == 0:
            A_m, C_m, [sig] = unit_merge(A, C, [C + b0 + c0], thres_corr=0.8)
            A = save_minian(A_m.rename("A_mrg"), intpath, overwrite=True)
            C = save_minian(C_m.rename("C_mrg"), intpath, overwrite=True)
            C_chk = save_minian(C.rename("C_mrg_chk"), intpath, overwrite=True,
                                mem_limit=RECHUNK_MEM,
                                chunks={"unit_id": -1, "frame": chk["frame"]})
    times["extraction_s"] = time.perf_counter() - t0
    a = A.compute().values                       # (units, h, w)
    yy, xx = np.mgrid[: a.shape[1], : a.shape[2]]
    mass = a.sum(axis=(1, 2)) + 1e-12
    centers = np.stack([(a * yy).sum(axis=(1, 2)) / mass, (a * xx).sum(axis=(1, 2)) / mass], 1)
    shifts = motion.compute().transpose("frame", "shift_dim").values
    np.savez(out_npz, centers=centers, C=C.compute().values.astype(np.float32), shifts=shifts)
    client.close(); cluster.close()
    print(json.dumps(times))

if __name__ == "__main__":
    main()
"""


# ----------------------------------------------------------------------------- measuring


def _tree_rss_kb(root: int) -> tuple[int, int]:
    """VmRSS and RssAnon of ``root`` and every descendant, summed. VmRSS also counts pages of
    memory-mapped files (a store read through a mapping), which the kernel reclaims at
    will; RssAnon is the memory that must fit."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, anon, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                    elif line.startswith("RssAnon:"):
                        anon += int(line.split()[1])
        except OSError:
            pass
    return total, anon


class ToolFailed(RuntimeError):
    """A tool's process failed; carries its stderr tail, wall time and peak RSS so far."""

    def __init__(self, cmd: list[str], returncode: int, stderr: str, wall: float, peak_mb: float):
        self.tail = stderr[-STDERR_TAIL_CHARS:]
        self.wall, self.peak_mb = wall, peak_mb
        super().__init__(f"{cmd[:2]} exited with {returncode}:\n{self.tail}")


def run_tree(cmd: list[str], env: dict[str, str] | None = None) -> tuple[str, float, float, float]:
    """Run ``cmd``; (stdout, wall s, peak RSS MB and peak anonymous RSS MB of its process
    tree). Raises ToolFailed."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = peak_anon = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, peak_anon
        while not done.is_set():
            rss, anon = _tree_rss_kb(proc.pid)
            peak, peak_anon = max(peak, rss), max(peak_anon, anon)
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise ToolFailed(cmd, proc.returncode, err, wall, peak / 1024.0)
    return out, wall, peak / 1024.0, peak_anon / 1024.0


# ----------------------------------------------------------------------------- scoring


def score(found: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, float]:
    """Recall, precision, median trace r, motion error: the same code for both tools."""
    from ace_assets.miniscope.extraction.evaluation import match_centers

    true_shifts = truth["shifts"]
    est = np.asarray(found["shifts"], dtype=np.float64)[: len(true_shifts)]
    # the tools' shift conventions differ in sign: keep the one that matches the truth
    errors = []
    for sign in (1.0, -1.0):
        d = sign * est + true_shifts
        d -= np.median(d, axis=0)
        errors.append(np.hypot(d[:, 0], d[:, 1]))
    err = min(errors, key=lambda e: float(np.median(e)))
    sign = 1.0 if err is errors[0] else -1.0
    offset = np.median(sign * est + true_shifts, axis=0)
    centers = truth["centers"] + offset
    ti, fi = match_centers(centers, np.asarray(found["centers"]), CENTER_TOLERANCE_PX)
    n_true, n_found = len(centers), len(found["centers"])
    corr = [
        float(np.corrcoef(truth["C"][i], found["C"][j])[0, 1])
        for i, j in zip(ti, fi, strict=True)
        if np.std(found["C"][j]) > 0
    ]
    return {
        "recall": len(ti) / max(n_true, 1),
        "precision": len(fi) / max(n_found, 1),
        "n_found": n_found,
        "trace_r": float(np.median(corr)) if corr else float("nan"),
        "motion_med_px": float(np.median(err)),
        "motion_p95_px": float(np.percentile(err, 95)),
    }


def run_minian(cmd: list[str], out_npz: Path, truth: dict[str, np.ndarray], case: str) -> dict:
    """minian's row; if minian fails, a row naming the error (its traceback tail on stderr),
    so the ace_assets row, the table and the JSON line are still printed."""
    try:
        out, wall, peak, anon = run_tree(cmd, dict(os.environ))
    except ToolFailed as exc:
        print(f"minian failed on {case}; the end of its stderr:\n{exc.tail}", file=sys.stderr)
        lines = exc.tail.strip().splitlines() or ["no stderr"]
        if "ModuleNotFoundError" in lines[-1]:
            print(f"hint: {cmd[0]} lacks minian: pip install -e '.[bench-minian]'", file=sys.stderr)
        return {
            "tool": "minian",
            "total_s": exc.wall,
            "peak_tree_mb": exc.peak_mb,
            "error": lines[-1],
        }
    times = json.loads(out.strip().splitlines()[-1])
    row = {"tool": "minian", "total_s": wall, "peak_tree_mb": peak, "peak_tree_anon_mb": anon}
    return row | times | score(dict(np.load(out_npz)), truth)


def _json_safe(value: Any) -> Any:
    """NaN (no matched trace) as null: the JSON line stays strict JSON."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def run_case(kind: str, frames: int, quick: bool, minian_python: str | None, workers: int):
    cfg = movie_config(kind, frames, quick)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-vs-minian-") as tmp:
        root = Path(tmp)
        folder = root / "movie"
        truth = write_movie(cfg, folder)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        ace_out = root / "ace.npz"
        (root / "ace").mkdir()
        args = [str(HERE), str(folder), str(root / "ace"), str(ace_out)]
        code = (
            f"import json, sys; sys.path.insert(0, {args[0]!r}); "
            "from bench_vs_minian import run_ace; "
            f"print(json.dumps(run_ace({args[1]!r}, {args[2]!r}, {args[3]!r})))"
        )
        out, wall, peak, anon = run_tree([sys.executable, "-c", code], env)
        times = json.loads(out.strip().splitlines()[-1])
        rows.append(
            {"tool": "ace_assets", "total_s": wall, "peak_tree_mb": peak, **times}
            | {"peak_tree_anon_mb": anon}
            | score(dict(np.load(ace_out)), truth)
        )
        # minian may run for hours: ace_assets' row is on record before it starts
        print(
            f"ace_assets on {kind} {frames} frames: {json.dumps(_json_safe(rows[0]))}",
            file=sys.stderr,
            flush=True,
        )
        # ace_assets' stores (27 GB at 8000 frames) must not share the disk with minian's
        shutil.rmtree(root / "ace")
        if minian_python:
            script = root / "run_minian.py"
            script.write_text(MINIAN_SCRIPT)
            mn_out = root / "minian.npz"
            (root / "minian_int").mkdir()
            cmd = [minian_python, str(script), str(folder / "Miniscope"), str(root / "minian_int")]
            cmd += [str(mn_out), str(workers), str(cfg.neuron_radius)]
            rows.append(run_minian(cmd, mn_out, truth, f"{kind} {frames} frames"))
    for row in rows:
        row.update(kind=kind, frames=frames, size=f"{cfg.height}x{cfg.width}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minian-python", default=None, help="interpreter with minian 2.0.2")
    ap.add_argument("--frames", type=int, nargs="+", default=[1000, 8000])
    ap.add_argument("--kinds", nargs="+", default=["demo", "highfreq_608"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="200 x 200, 300 frames")
    args = ap.parse_args()
    frames = [300] if args.quick else args.frames
    rows = []
    for kind in args.kinds:
        for n in frames:
            case = run_case(kind, n, args.quick, args.minian_python, args.workers)
            ours = case[0]
            for row in case:
                if "error" not in row:
                    row["time_ratio_vs_ace"] = row["total_s"] / ours["total_s"]
                print(json.dumps(_json_safe(row)), flush=True)
            rows += case
    cols = [
        ("kind", "{:<13}"),
        ("size", "{:>8}"),
        ("frames", "{:>6d}"),
        ("tool", "{:<10}"),
        ("total_s", "{:>8.1f}"),
        ("motion_s", "{:>7.1f}"),
        ("extraction_s", "{:>8.1f}"),
        ("peak_tree_mb", "{:>7.0f}"),
        ("peak_tree_anon_mb", "{:>7.0f}"),
        ("recall", "{:>5.2f}"),
        ("precision", "{:>5.2f}"),
        ("trace_r", "{:>6.3f}"),
        ("motion_med_px", "{:>5.2f}"),
        ("motion_p95_px", "{:>5.2f}"),
        ("time_ratio_vs_ace", "{:>6.1f}"),
    ]
    print(" | ".join(c for c, _ in cols))
    for row in rows:
        print(" | ".join(f.format(row.get(c, float("nan"))) for c, f in cols))
    failed = [row for row in rows if "error" in row]
    for row in failed:
        print(f"{row['tool']} failed on {row['kind']} {row['frames']}: {row['error']}")
    print(json.dumps(_json_safe({"bench": "vs_minian", "workers": args.workers, "rows": rows})))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
