"""Benchmark: the whole movie chain in frames per second, against baselines in the same run.

One generated Miniscope V4 session (608 x 608, 300 neurons: the demo's kind, or a member
of the harder family, e.g. ``highfreq_608`` with stripes, vessels and dim neurons) runs
through denoise -> preprocess -> motion -> extraction (``bench/_chain.py``, the assets'
calls, default settings) in a fresh subprocess per variant:

* ``now`` — this checkout, every core (``ACE_THREADS`` unset);
* ``now, 1 thread`` — this checkout with ``ACE_THREADS=1``: what the threads buy;
* ``REF`` — with ``--before REF``, the package as it was at git ``REF`` (exported with
  ``git archive`` and put first on the child's ``sys.path``), every core.

Reported per variant: stage wall and CPU seconds, chain frames per second (frames / the
four stages' wall time; 30 frames/s keeps up with a 30-fps recording), peak anonymous
memory (``bench/_memory.py``), and accuracy against the generator's truth, scored by the
function ``bench/bench_vs_minian.py`` uses (recall, precision, trace r, motion error).
Ratios are to the variants of the same run. Last line: one JSON object.

    python bench/bench_chain.py --before dbcb3d4            # demo kind, 1000 frames
    python bench/bench_chain.py --kind highfreq_608 --frames 1000 --before dbcb3d4
    python bench/bench_chain.py --quick                      # 200 x 200, 300 frames
    python bench/bench_chain.py --frames 8000 --no-one-thread --before dbcb3d4
    python bench/bench_chain.py --no-one-thread --rounds 2 --before dbcb3d4  # now, REF, REF, now
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from _memory import measure  # noqa: E402
from bench_vs_minian import movie_config, score, write_movie  # noqa: E402

STAGES = ("denoise", "preprocess", "motion", "extraction")


def variant(folder: str, workdir: str, out_npz: str, tree: str | None) -> dict[str, float]:
    """Subprocess entry point: the chain, from ``tree`` when given (another checkout)."""
    if tree:
        sys.path.insert(0, tree)
    from _chain import run_chain

    times = run_chain(folder, workdir, out_npz)
    import ace_assets

    times["package"] = str(Path(ace_assets.__file__).resolve().parent)  # type: ignore[assignment]
    return times


def export_tree(ref: str, dest: Path) -> Path:
    """The ``ace_assets`` package as it was at ``ref``."""
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", ref, "ace_assets"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run(
    kind: str,
    frames: int,
    quick: bool,
    before: str | None,
    one_thread: bool = True,
    rounds: int = 1,
) -> list[dict[str, Any]]:
    """One row per variant. With ``rounds`` > 1 the variants run again in reverse order
    every other round (now, REF, REF, now, ...), so no variant always runs first, and each
    variant's row is its fastest round (``chain_s_rounds`` lists them all)."""
    cfg = movie_config(kind, frames, quick)
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
        root = Path(tmp)
        truth = write_movie(cfg, root / "movie")
        os.sync()  # the movie's pages written back now, not during the first variant
        variants: list[tuple[str, dict[str, str], str | None]] = [("now", {}, None)]
        if one_thread:
            variants.append(("now, 1 thread", {"ACE_THREADS": "1"}, None))
        if before:
            variants.append((before, {}, str(export_tree(before, root / "before"))))
        order = [v for r in range(max(1, rounds)) for v in (variants[:: -1 if r % 2 else 1])]
        for label, env, tree in order:
            work = root / "work"
            work.mkdir()
            out = root / "out.npz"
            saved = {k: os.environ.get(k) for k in ("ACE_THREADS",)}
            os.environ.pop("ACE_THREADS", None)
            os.environ.update(env)
            try:
                stats = measure(
                    "bench_chain:variant",
                    {
                        "folder": str(root / "movie"),
                        "workdir": str(work),
                        "out_npz": str(out),
                        "tree": tree,
                    },
                )
            finally:
                for k, v in saved.items():
                    os.environ.pop(k, None)
                    if v is not None:
                        os.environ[k] = v
            times = stats["result"]
            if tree:
                assert times["package"].startswith(tree), times["package"]
            chain_s = sum(times[f"{s}_s"] for s in STAGES)
            row = {
                "variant": label,
                "kind": kind,
                "size": f"{cfg.height}x{cfg.width}",
                "frames": cfg.n_frames,
                "chain_s": chain_s,
                "chain_cpu_s": sum(times[f"{s}_cpu_s"] for s in STAGES),
                "fps": cfg.n_frames / chain_s,
                "peak_anon_mb": stats["peak_anon_mb"],
                **{k: v for k, v in times.items() if k != "package"},
                **score(dict(np.load(out)), truth),
            }
            runs.setdefault(label, []).append(row)
            shutil.rmtree(work)
    rows = []
    for label, _, _ in variants:
        row = dict(min(runs[label], key=lambda r: r["chain_s"]))
        row["chain_s_rounds"] = [r["chain_s"] for r in runs[label]]
        rows.append(row)
    base = rows[0]
    for row in rows:
        row["speed_vs_now"] = base["chain_s"] / row["chain_s"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", default="demo", help="demo, or a family member (highfreq_608)")
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--before", metavar="REF", help="also run the package at this git revision")
    ap.add_argument("--quick", action="store_true", help="200 x 200, 300 frames")
    ap.add_argument(
        "--no-one-thread", action="store_true", help="skip the 1-thread variant (long movies)"
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the variants this many times, in reverse order every other round; "
        "each variant's fastest round is its row",
    )
    args = ap.parse_args()
    frames = 300 if args.quick else args.frames
    rows = run(
        args.kind, frames, args.quick, args.before, not args.no_one_thread, max(1, args.rounds)
    )
    cols = [
        ("variant", "{:<14}"),
        ("size", "{:>8}"),
        ("frames", "{:>6d}"),
        ("fps", "{:>6.1f}"),
        ("chain_s", "{:>7.1f}"),
        ("chain_cpu_s", "{:>7.1f}"),
        *((f"{s}_s", "{:>6.1f}") for s in STAGES),
        ("peak_anon_mb", "{:>6.0f}"),
        ("recall", "{:>5.2f}"),
        ("precision", "{:>5.2f}"),
        ("trace_r", "{:>6.4f}"),
        ("motion_med_px", "{:>5.3f}"),
        ("speed_vs_now", "{:>5.2f}"),
    ]
    print(" | ".join(c for c, _ in cols))
    for row in rows:
        print(" | ".join(f.format(row[c]) for c, f in cols))
    phases: list[str] = []  # in the order the phases ran
    for row in rows:
        for key in row:
            name = key[len("phase:") : -len("_s")]
            if key.startswith("phase:") and not name.endswith("_cpu") and name not in phases:
                phases.append(name)
    print("\nextraction by phase, wall / CPU s")
    print(" | ".join(["phase", *(r["variant"] for r in rows)]))
    for name in phases:
        cells = [
            f"{r.get(f'phase:{name}_s', float('nan')):.1f} / "
            f"{r.get(f'phase:{name}_cpu_s', float('nan')):.1f}"
            for r in rows
        ]
        print(" | ".join([name, *cells]))
    load = os.getloadavg()
    print(json.dumps({"bench": "chain", "load": [round(v, 2) for v in load], "rows": rows}))


if __name__ == "__main__":
    main()
