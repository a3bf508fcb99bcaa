"""Benchmark: read + zero-phase filter a multi-channel Neuralynx recording.

Ours: ``NeuralynxSession`` -> ``write_session_store`` (records read a block at a time onto
the sample grid, volts) -> ``filter_store`` (streamed forward-backward Butterworth, each
segment mirror-padded for the impulse response), both stores on disk. Baseline: neo reads
the whole recording into memory, then one ``scipy.signal.sosfiltfilt`` call.
``max_rel_diff_vs_baseline`` compares the interior (the padding differs at the ends).

Each approach runs in its own subprocess at two recording lengths; peak RSS is that
subprocess's ``ru_maxrss``. The baseline is skipped above ``--baseline-max-minutes``
(it needs ~3x the float64 recording in RAM) and its time extrapolated linearly from a run
at ``--baseline-max-minutes`` (added when both lengths are longer).

    python bench/bench_ephys.py --quick          # 1.5 and 3 min, < 1 min total
    python bench/bench_ephys.py --minutes 10     # moderate: 5 and 10 min
    python bench/bench_ephys.py                  # the issue's size: 30 and 60 min, 8 ch, 32 kHz

Last line of output: one JSON object with all numbers.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

FILTER = ("butter", [0.5, 30.0])


def make_recording(directory: Path, minutes: float, n_channels: int, fs: float) -> int:
    from ace_assets.demo.neuralynx_writer import NcsWriter

    n = int(minutes * 60 * fs)
    directory.mkdir(parents=True, exist_ok=True)
    writers = [
        NcsWriter(directory / f"CSC{c + 1}.ncs", fs, channel_name=f"CSC{c + 1}", channel_id=c)
        for c in range(n_channels)
    ]
    rng = np.random.default_rng(0)
    chunk = 1 << 20
    for a in range(0, n, chunk):
        k = min(chunk, n - a)
        t = (a + np.arange(k)) / fs
        slow = 3000 * np.sin(2 * np.pi * 1.0 * t)
        for c, w in enumerate(writers):
            noise = rng.standard_normal(k, dtype=np.float32) * 800
            w.append((slow * (1 + 0.1 * c) + noise).astype(np.int16))
    for w in writers:
        w.close()
    return n


def stage_ours(directory: Path, work: Path) -> dict[str, float]:
    import neo.rawio  # noqa: F401 - imported before timing, as in the baseline

    from ace_assets.ephys.filters import filter_store
    from ace_assets.io.neuralynx import NeuralynxSession, write_session_store

    t0 = time.perf_counter()
    names = sorted(p.stem for p in directory.glob("*.ncs"))
    session = NeuralynxSession(directory, names)
    raw = write_session_store(session, work / "raw.npyd")
    t1 = time.perf_counter()
    out = filter_store(raw, work / "filtered.npyd", *FILTER)
    t2 = time.perf_counter()
    probe = {str(a): out.read(a, a + 1000).tolist() for a in _probe_starts(out.shape[0])}
    (work / "ours_probe.json").write_text(json.dumps(probe))
    return {"read_s": t1 - t0, "filter_s": t2 - t1, "total_s": t2 - t0}


def stage_baseline(directory: Path, work: Path) -> dict[str, float]:
    import neo.rawio
    from scipy.signal import butter, sosfiltfilt

    t0 = time.perf_counter()
    r = neo.rawio.NeuralynxRawIO(dirname=str(directory))
    r.parse_header()
    n = r.get_signal_size(0, 0, 0)
    raw = r.get_analogsignal_chunk(0, 0, 0, n, 0)
    volts = r.rescale_signal_raw_to_float(raw, dtype="float64", stream_index=0) * 1e-6
    del raw
    fs = float(r.header["signal_channels"]["sampling_rate"][0])
    t1 = time.perf_counter()
    sos = butter(4, FILTER[1], btype="bandpass", fs=fs, output="sos")
    y = sosfiltfilt(sos, volts, axis=0)
    t2 = time.perf_counter()
    probe = {str(a): y[a : a + 1000].tolist() for a in _probe_starts(y.shape[0])}
    (work / "baseline_probe.json").write_text(json.dumps(probe))
    return {"read_s": t1 - t0, "filter_s": t2 - t1, "total_s": t2 - t0}


class AnonPeak:
    """Peak anonymous (heap) RSS, sampled from /proc/self/status every 10 ms.

    ru_maxrss also counts file-backed pages of memory-mapped files (the .ncs inputs and the
    stores), which the kernel can drop at any time; RssAnon is the memory that must fit.
    """

    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self._sample()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self._sample()
        return self.peak_kb / 1024


def _probe_starts(n: int) -> list[int]:
    return [0, n // 3, max(0, n - 1000)]


def run_stage(stage: str, directory: Path, work: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--_stage", stage, "--_dir", str(directory)]
    cmd += ["--_work", str(work)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{stage} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _probe_diff(work: Path) -> float:
    """Largest relative difference at the interior probe. The ends differ by design: ours
    mirror-pads each segment for the filter's impulse response, SciPy's default pads 27
    samples by odd extension."""
    ours = json.loads((work / "ours_probe.json").read_text())
    base = json.loads((work / "baseline_probe.json").read_text())
    k = sorted(base, key=int)[1]
    a, b = np.asarray(ours[k]), np.asarray(base[k])
    return float(np.abs(a - b).max() / np.abs(b).max())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--minutes", type=float, default=60.0, help="longer of the two lengths")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--fs", type=float, default=32000.0)
    ap.add_argument("--baseline-max-minutes", type=float, default=10.0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--_stage", default=None)
    ap.add_argument("--_dir", type=Path)
    ap.add_argument("--_work", type=Path)
    args = ap.parse_args()

    if args._stage:
        fn = stage_ours if args._stage == "ours" else stage_baseline
        sampler = AnonPeak()
        result = fn(args._dir, args._work)
        result["peak_anon_mb"] = sampler.stop()
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    minutes = 3.0 if args.quick else args.minutes
    lengths = [minutes / 2, minutes]
    if min(lengths) > args.baseline_max_minutes:  # a reference run to extrapolate from
        lengths.insert(0, args.baseline_max_minutes)
    root = Path(tempfile.mkdtemp(prefix="bench_ephys_", dir=args.workdir))
    rows = []
    try:
        for m in lengths:
            rec = root / f"rec_{m:g}min"
            t0 = time.perf_counter()
            n = make_recording(rec, m, args.channels, args.fs)
            gen_s = time.perf_counter() - t0
            work = root / f"work_{m:g}min"
            work.mkdir()
            ours = run_stage("ours", rec, work)
            row = {"minutes": m, "n_samples": n, "generate_s": gen_s, "ours": ours}
            if m <= args.baseline_max_minutes:
                row["baseline"] = run_stage("baseline", rec, work)
                row["max_rel_diff"] = _probe_diff(work)
            rows.append(row)
            shutil.rmtree(work)
            shutil.rmtree(rec)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    measured = [r for r in rows if "baseline" in r]
    per_sample = (
        np.mean([r["baseline"]["total_s"] / r["n_samples"] for r in measured])
        if measured
        else float("nan")
    )
    print(f"{'minutes':>8} {'approach':>9} {'read s':>8} {'filter s':>9} {'total s':>8} "
          f"{'Msamp/s':>8} {'maxrss MB':>10} {'anon MB':>8}")  # fmt: skip
    summary = []
    for r in rows:
        total_samples = r["n_samples"] * args.channels
        for name in ("ours", "baseline"):
            if name not in r:
                est = per_sample * r["n_samples"]
                print(f"{r['minutes']:>8g} {name:>9} {'':>8} {'':>9} {est:>7.1f}* "
                      f"{total_samples / est / 1e6:>7.2f}* {'(not run)':>10}")  # fmt: skip
                continue
            s = r[name]
            print(f"{r['minutes']:>8g} {name:>9} {s['read_s']:>8.2f} {s['filter_s']:>9.2f} "
                  f"{s['total_s']:>8.2f} {total_samples / s['total_s'] / 1e6:>8.2f} "
                  f"{s['peak_rss_mb']:>10.0f} {s['peak_anon_mb']:>8.0f}")  # fmt: skip
        base_total = r["baseline"]["total_s"] if "baseline" in r else per_sample * r["n_samples"]
        summary.append(
            {
                "minutes": r["minutes"],
                "samples_per_channel": r["n_samples"],
                "ours_samples_per_s": total_samples / r["ours"]["total_s"],
                "baseline_samples_per_s": total_samples / base_total,
                "throughput_ratio_ours_over_baseline": base_total / r["ours"]["total_s"],
                "baseline_extrapolated": "baseline" not in r,
                "ours_peak_rss_mb": r["ours"]["peak_rss_mb"],
                "ours_peak_anon_mb": r["ours"]["peak_anon_mb"],
                "baseline_peak_rss_mb": r["baseline"]["peak_rss_mb"] if "baseline" in r else None,
                "baseline_peak_anon_mb": (
                    r["baseline"]["peak_anon_mb"] if "baseline" in r else None
                ),
                "max_rel_diff_vs_baseline": r.get("max_rel_diff"),
            }
        )
    print("* extrapolated linearly from the measured baseline runs")
    print("maxrss = ru_maxrss (includes reclaimable pages of memory-mapped files);")
    print("anon = peak RssAnon (heap), sampled every 10 ms")
    print(
        json.dumps(
            {
                "bench": "ephys_read_filter",
                "channels": args.channels,
                "fs": args.fs,
                "filter": {"type": FILTER[0], "range": FILTER[1], "order": 4},
                "runs": summary,
            }
        )
    )


if __name__ == "__main__":
    main()
