"""Benchmark: write one line's NWB file (nwb_file's writer) from synthetic stores.

Inputs are written straight to disk, not through the pipeline: a filtered-ephys store of
``--channels`` x ``--minutes`` at ``--fs`` (float32 volts, with its record clock and one
TTL per frame) and a CNMF-E class source set of ``--frames`` frames x ``--components``
(sparse footprints, C, C_raw, S, events). The write runs in a fresh subprocess
(bench/_memory.py): wall time, peak RSS (``VmHWM``, includes page cache of the mapped
store) and peak anonymous memory (what the writer holds). Two recording lengths, the
source set unchanged: flat memory means the anonymous peak does not grow with length.

    python bench/bench_export.py --quick             # 2 and 4 min, 9,000 frames, ~1 min
    python bench/bench_export.py --minutes 60        # the issue's size: 30 and 60 min, 8 ch, 32 kHz, 54,000 frames
    python bench/bench_export.py --pause             # a pause in the recording: per-sample timestamps written too

Last line of output: one JSON object with all numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from _memory import measure  # noqa: E402

from ace_assets.ephys.band_store import open_signal_store  # noqa: E402
from ace_assets.export.nwb import write_nwb  # noqa: E402
from ace_assets.export.nwb_ephys import EphysData  # noqa: E402
from ace_assets.export.nwb_imaging import ImagingData  # noqa: E402
from ace_assets.io.neuralynx_grid import load_clock  # noqa: E402
from ace_assets.io.store import atomic_save_npz, load_npz  # noqa: E402
from ace_assets.miniscope.extraction.result import load_result, save_result  # noqa: E402
from ace_assets_tests.helpers import nwb_synth  # noqa: E402


def make_inputs(
    folder: str, minutes: float, fs: float, channels: int, frames: int, components: int, pause: bool
) -> dict:
    """Synthetic stores on disk (not measured): ephys, source set, frame times."""
    root = Path(folder)
    times = nwb_synth.frame_times(frames)
    seconds = minutes * 60.0
    ephys = nwb_synth.ephys_inputs(
        root,
        seconds=seconds,
        fs=fs,
        n_channels=channels,
        gap_after_s=seconds / 2 if pause else None,
        frame_times=times[times < seconds],
    )
    imaging = nwb_synth.imaging_inputs(root, n_frames=frames, n_components=components, times=times)
    save_result(imaging.result, root / "sources")
    imaging.events.to_csv(root / "events.csv", index=False)
    ephys.events.to_csv(root / "ttl.csv", index=False)
    atomic_save_npz(root / "frame_times.npz", t=times)
    return {"samples": ephys.store.n_frames, "store_gb": ephys.store.nbytes / 1e9}


def write_stage(folder: str) -> dict:
    """What the asset does after reading its inputs: build the parts, write the file."""
    import pandas as pd

    root = Path(folder)
    store = open_signal_store(root / "filtered.npyd")
    names = store.meta["channel_names"]
    ephys = EphysData(
        store=store,
        clock=load_clock(store.path),
        channel_names=names,
        emg_channel=names[-1],
        filter_description="butter 0.5-30 Hz, order 4, zero-phase",
        events=pd.read_csv(root / "ttl.csv"),
    )
    result = load_result(root / "sources")
    avis = sorted((root / "miniscope").glob("*.avi"), key=lambda p: int(p.stem))
    imaging = ImagingData(
        avi_files=[str(p) for p in avis],
        frames_per_file=[min(1000, result.n_frames - 1000 * i) for i in range(len(avis))],
        frame_rate=30.0,
        frame_shape=result.dims,
        frame_times=load_npz(root / "frame_times.npz")["t"],
        result=result,
        events=pd.read_csv(root / "events.csv"),
    )
    out = root / "out"
    out.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    path = write_nwb(out / "line.nwb", nwb_synth.session_meta(), imaging=imaging, ephys=ephys)
    return {"write_s": time.perf_counter() - t0, "nwb_gb": path.stat().st_size / 1e9}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="the longer recording")
    ap.add_argument("--fs", type=float, default=32000.0)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--frames", type=int, default=54000)
    ap.add_argument("--components", type=int, default=300)
    ap.add_argument("--pause", action="store_true", help="a pause mid-recording")
    ap.add_argument("--quick", action="store_true", help="2 and 4 min, 9,000 frames")
    args = ap.parse_args()
    if args.quick:
        args.minutes, args.frames = 4.0, 9000
    rows = []
    for minutes in (args.minutes / 2, args.minutes):
        tmp = tempfile.mkdtemp(prefix="bench_export_")
        try:
            made = make_inputs(
                tmp, minutes, args.fs, args.channels, args.frames, args.components, args.pause
            )
            stats = measure(
                "bench_export:write_stage", {"folder": tmp}, extra_path=[str(HERE.parent)]
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        res = stats["result"]
        row = {
            "minutes": minutes,
            "channels": args.channels,
            "fs": args.fs,
            "frames": args.frames,
            "components": args.components,
            "pause": args.pause,
            "store_gb": round(made["store_gb"], 3),
            "nwb_gb": round(res["nwb_gb"], 3),
            "write_s": round(res["write_s"], 1),
            "mb_per_s": round(made["store_gb"] * 1e3 / res["write_s"], 1),
            "peak_rss_mb": round(stats["peak_rss_mb"], 1),
            "peak_anon_mb": round(stats["peak_anon_mb"], 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(
        f"\n{'minutes':>8} {'store GB':>9} {'NWB GB':>8} {'write s':>8} {'MB/s':>7} "
        f"{'peak RSS MB':>12} {'peak anon MB':>13}"
    )
    for r in rows:
        print(
            f"{r['minutes']:>8g} {r['store_gb']:>9.3f} {r['nwb_gb']:>8.3f} {r['write_s']:>8.1f} "
            f"{r['mb_per_s']:>7.1f} {r['peak_rss_mb']:>12.1f} {r['peak_anon_mb']:>13.1f}"
        )
    growth = rows[1]["peak_anon_mb"] - rows[0]["peak_anon_mb"]
    print(
        f"anonymous memory growth from {rows[0]['minutes']:g} to {rows[1]['minutes']:g} min: "
        f"{growth:+.1f} MB"
    )
    print(json.dumps({"bench": "export_nwb", "rows": rows, "anon_growth_mb": round(growth, 1)}))


if __name__ == "__main__":
    main()
