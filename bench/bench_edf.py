"""Benchmark: EDF+ export (``ace_assets.export.edf.write_edf``) of an 8-channel 32 kHz store.

Each length is written in its own subprocess; peak RSS is that subprocess's VmHWM,
so a flat memory profile shows as the same peak at both lengths (the one thing that grows
is the annotation list: here a 30 Hz TTL train, ~30 bytes per pulse).

    python bench/bench_edf.py --quick         # 1 and 4 min
    python bench/bench_edf.py                 # 15 and 60 min (needs 5.5 GB free in the temp dir)

Last line of output: one JSON object with all numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FS, N_CHANNELS, TTL_HZ = 32000.0, 8, 30.0


def make_store(path: Path, minutes: float) -> None:
    from ace_assets.io.store import ArrayStoreWriter

    n = int(minutes * 60 * FS)
    meta = {
        "sampling_rate_hz": FS,
        "segments": [{"start_index": 0, "stop_index": n, "t_start_s": 0.0}],
    }
    rng = np.random.default_rng(0)
    with ArrayStoreWriter(path, (n, N_CHANNELS), np.float32, meta) as writer:
        for a in range(0, n, 1 << 20):
            b = min(n, a + (1 << 20))
            block = 100e-6 * rng.standard_normal((b - a, N_CHANNELS))
            writer.write(a, block.astype(np.float32))
        writer.commit()


def peak_rss_kb() -> int:
    """This process's peak RSS: VmHWM, which (unlike ``ru_maxrss``) does not inherit the
    parent's high-water mark across exec."""
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(store: Path, target: Path) -> dict:
    from ace_assets.export.edf import Annotation, EdfIdentity, EdfSignal, write_edf
    from ace_assets.io.store import ArrayStore

    source = ArrayStore(store)
    seconds = source.n_frames / FS
    ttl = [Annotation(k / TTL_HZ, "TTL 0x0001") for k in range(int(seconds * TTL_HZ))]
    start = time.perf_counter()
    info = write_edf(
        target,
        source,
        [EdfSignal(f"EEG ch{c}") for c in range(N_CHANNELS)],
        ttl,
        EdfIdentity("X X X X", "Startdate X X X X", dt.datetime(2024, 1, 1)),
    )
    wall = time.perf_counter() - start
    return {
        "minutes": round(seconds / 60, 3),
        "write_s": round(wall, 2),
        "mb_per_s": round(info["bytes"] / 1e6 / wall, 1),
        "edf_mb": round(info["bytes"] / 1e6, 1),
        "annotations": len(ttl),
        "peak_rss_mb": round(peak_rss_kb() / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 and 4 min instead of 15 and 60")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), Path(args.child[1]))))
        return
    lengths = (1.0, 4.0) if args.quick else (15.0, 60.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in lengths:
            store = Path(tmp) / f"s{minutes:g}.npyd"
            make_store(store, minutes)
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(store), str(Path(tmp) / "x.edf")],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.splitlines()[-1]
            rows.append(json.loads(out))
            print(rows[-1], flush=True)
            (Path(tmp) / "x.edf").unlink()
            shutil.rmtree(store)
    growth = rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    print(json.dumps({"channels": N_CHANNELS, "fs": FS, "runs": rows, "rss_ratio": growth}))


if __name__ == "__main__":
    main()
