"""Benchmark: read + zero-phase filter a multi-channel Neuralynx recording.

Ours: ``NeuralynxSession`` -> ``write_session_store`` (records read from a structured
memmap onto the sample grid, volts) -> ``filter_store`` (the 0.5-30 Hz band: decimated
by a polyphase FIR, forward-backward Butterworth at the low rate and stored at that rate,
read back onto every input sample by the same FIR; see ``ace_assets.ephys.band_store``),
both stores on disk and synced at commit. ``readback_s`` is one read of every filtered
sample at the input rate after that (what a consumer of the whole band pays), reported
beside the ratios as ``x incl. read-back``. Ours uses both cores (blocks decimated on two
threads, stores written by a third); its CPU time counts every thread. Baseline: neo reads the whole recording into
memory, then one ``scipy.signal.sosfiltfilt`` call. Floor: the
time to only read the int16 samples (a memmap of the records, summed), i.e. disk / page
cache speed; nothing reads a recording faster. ``max_rel_diff_vs_baseline`` compares the
interior (the padding differs at the ends).

Each approach runs in its own subprocess at two recording lengths; peak RSS is that
subprocess's ``ru_maxrss``. Ratios are taken within one run (same machine load): wall time
and CPU time (user + system, all threads), the latter steadier on a shared machine; with
``--repeat`` each is the median over the runs (the stage columns are the median-wall run). The
baseline is skipped above ``--baseline-max-minutes`` (it needs ~3x the float64 recording
in RAM) and its time extrapolated linearly from a run at ``--baseline-max-minutes`` (added
when both lengths are longer). The recording was just written (and synced, so no approach
pays for its writeback), so every approach reads it from the page cache; each run of ours
writes its stores afresh (the previous run's are deleted before, outside the timing).

    python bench/bench_ephys.py --quick          # 1.5 and 3 min, < 1 min total
    python bench/bench_ephys.py --quick --repeat 3   # median of 3 (a shared machine)
    python bench/bench_ephys.py --minutes 10     # moderate: 5 and 10 min
    python bench/bench_ephys.py                  # the issue's size: 30 and 60 min, 8 ch, 32 kHz

Last line of output: one JSON object with all numbers.
"""

from __future__ import annotations

import argparse
import json
import os
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


def _cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _times(t: list[float], c: list[float]) -> dict[str, float]:
    return {
        "read_s": t[1] - t[0],
        "filter_s": t[2] - t[1],
        "total_s": t[2] - t[0],
        "read_cpu_s": c[1] - c[0],
        "filter_cpu_s": c[2] - c[1],
        "total_cpu_s": c[2] - c[0],
    }


def stage_ours(directory: Path, work: Path) -> dict[str, float]:
    import neo.rawio  # noqa: F401 - imported before timing, as in the baseline

    from ace_assets.ephys.filters import filter_store
    from ace_assets.io.neuralynx import NeuralynxSession, write_session_store

    t, c = [time.perf_counter()], [_cpu()]
    names = sorted(p.stem for p in directory.glob("*.ncs"))
    session = NeuralynxSession(directory, names)
    raw = write_session_store(session, work / "raw.npyd")
    t.append(time.perf_counter()), c.append(_cpu())
    out = filter_store(raw, work / "filtered.npyd", *FILTER)
    t.append(time.perf_counter()), c.append(_cpu())
    probe = {str(a): out.read(a, a + 1000).tolist() for a in _probe_starts(out.shape[0])}
    (work / "ours_probe.json").write_text(json.dumps(probe))
    # the band is stored at its internal rate: what one consumer pays to read every sample
    r0, rc0 = time.perf_counter(), _cpu()
    checksum = 0.0
    for _, block in out.iter_chunks(1 << 18):
        checksum += float(block[0, 0])
    readback = {"readback_s": time.perf_counter() - r0, "readback_cpu_s": _cpu() - rc0}
    return {
        **_times(t, c),
        **readback,
        "filtered_store_mb": out.nbytes / 2**20,
        "decimated": out.meta["filter"].get("decimated"),
    }


def stage_baseline(directory: Path, work: Path) -> dict[str, float]:
    import neo.rawio
    from scipy.signal import butter, sosfiltfilt

    t, c = [time.perf_counter()], [_cpu()]
    r = neo.rawio.NeuralynxRawIO(dirname=str(directory))
    r.parse_header()
    n = r.get_signal_size(0, 0, 0)
    raw = r.get_analogsignal_chunk(0, 0, 0, n, 0)
    volts = r.rescale_signal_raw_to_float(raw, dtype="float64", stream_index=0) * 1e-6
    del raw
    fs = float(r.header["signal_channels"]["sampling_rate"][0])
    t.append(time.perf_counter()), c.append(_cpu())
    sos = butter(4, FILTER[1], btype="bandpass", fs=fs, output="sos")
    y = sosfiltfilt(sos, volts, axis=0)
    t.append(time.perf_counter()), c.append(_cpu())
    probe = {str(a): y[a : a + 1000].tolist() for a in _probe_starts(y.shape[0])}
    (work / "baseline_probe.json").write_text(json.dumps(probe))
    return _times(t, c)


def stage_floor(directory: Path, work: Path) -> dict[str, float]:
    """Only read every int16 sample (the records' sample field through a memmap, summed)."""
    from ace_assets.io.neuralynx_format import HEADER_SIZE, NCS_DTYPE

    t, c = [time.perf_counter()], [_cpu()]
    total = 0
    for path in sorted(directory.glob("*.ncs")):
        records = np.memmap(path, dtype=NCS_DTYPE, mode="r", offset=HEADER_SIZE)
        for a in range(0, records.size, 1 << 14):
            total += int(records["samples"][a : a + (1 << 14)].sum(dtype=np.int64))
        del records
    t.append(time.perf_counter()), c.append(_cpu())
    t.append(t[-1]), c.append(c[-1])
    return {**_times(t, c), "checksum": total}


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


STAGES = {"ours": stage_ours, "baseline": stage_baseline, "floor": stage_floor}


def _median_run(runs: list[dict]) -> dict:
    """The run of median wall time (its stage times and memory go with it; the CPU-time
    ratio uses the median CPU time over the runs, ``median_total_cpu_s``)."""
    return dict(sorted(runs, key=lambda r: r["total_s"])[(len(runs) - 1) // 2])


def _row_summary(r: dict, channels: int, per_sample: dict[str, float]) -> dict:
    """Throughputs and the ratios the issue asks for, one recording length."""
    total = r["n_samples"] * channels
    ours, floor = r["ours"], r["floor"]
    if "baseline" in r:
        base = r["baseline"]
        base_wall, base_cpu = base["total_s"], base["median_total_cpu_s"]
    else:
        base = None
        base_wall = per_sample["wall"] * r["n_samples"]
        base_cpu = per_sample["cpu"] * r["n_samples"]
    return {
        "minutes": r["minutes"],
        "samples_per_channel": r["n_samples"],
        "ours_samples_per_s": total / ours["total_s"],
        "baseline_samples_per_s": total / base_wall,
        "floor_samples_per_s": total / floor["total_s"],
        "ratio_vs_baseline_wall": base_wall / ours["total_s"],
        "ratio_vs_baseline_cpu": base_cpu / ours["median_total_cpu_s"],
        # as if a consumer then read every filtered sample at the input rate once
        "ratio_vs_baseline_wall_with_readback": base_wall / (ours["total_s"] + ours["readback_s"]),
        "ours_time_over_floor_wall": ours["total_s"] / floor["total_s"],
        "ours_time_over_floor_cpu": ours["median_total_cpu_s"] / floor["median_total_cpu_s"],
        "baseline_extrapolated": base is None,
        "ours": {k: v for k, v in ours.items()},
        "baseline": base,
        "floor": {k: v for k, v in floor.items() if k != "checksum"},
        "max_rel_diff_vs_baseline": r.get("max_rel_diff"),
    }


def _print_table(rows: list[dict], summary: list[dict], channels: int) -> None:
    head = (f"{'minutes':>8} {'approach':>9} {'read s':>7} {'filter s':>8} {'total s':>8} "
            f"{'cpu s':>7} {'Msamp/s':>8} {'maxrss MB':>9} {'anon MB':>8}")  # fmt: skip
    print(head)
    for r, sm in zip(rows, summary, strict=True):
        total = r["n_samples"] * channels
        for name in ("floor", "ours", "baseline"):
            s = r.get(name)
            if s is None:
                est = total / sm["baseline_samples_per_s"]
                print(f"{r['minutes']:>8g} {name:>9} {'':>7} {'':>8} {est:>7.1f}* {'':>7} "
                      f"{total / est / 1e6:>7.2f}* {'(not run)':>9}")  # fmt: skip
                continue
            print(f"{r['minutes']:>8g} {name:>9} {s['read_s']:>7.2f} {s['filter_s']:>8.2f} "
                  f"{s['total_s']:>8.2f} {s['median_total_cpu_s']:>7.2f} "
                  f"{total / s['total_s'] / 1e6:>8.1f} {s['peak_rss_mb']:>9.0f} "
                  f"{s['peak_anon_mb']:>8.0f}")  # fmt: skip
    print()
    print(f"{'minutes':>8} {'x baseline (wall)':>18} {'x baseline (cpu)':>17} "
          f"{'x incl. read-back':>18} "
          f"{'ours / floor (wall)':>20} {'ours / floor (cpu)':>19} {'max rel diff':>13}")  # fmt: skip
    for sm in summary:
        star = "*" if sm["baseline_extrapolated"] else " "
        diff = sm["max_rel_diff_vs_baseline"]
        print(f"{sm['minutes']:>8g} {sm['ratio_vs_baseline_wall']:>17.2f}{star} "
              f"{sm['ratio_vs_baseline_cpu']:>16.2f}{star} "
              f"{sm['ratio_vs_baseline_wall_with_readback']:>17.2f}{star} "
              f"{sm['ours_time_over_floor_wall']:>20.1f} {sm['ours_time_over_floor_cpu']:>19.1f} "
              f"{'' if diff is None else f'{diff:.1e}':>13}")  # fmt: skip
    print("* baseline extrapolated linearly from the measured baseline runs")
    print("x baseline: baseline time / ours (higher is better); ours / floor: how many times")
    print("the time to only read the int16 samples ours takes (1 would be disk speed)")
    print("x incl. read-back: ours plus one read of every filtered sample at the input rate")
    print("(the band is stored at its internal rate and interpolated on read)")
    print("maxrss = ru_maxrss (includes reclaimable pages of memory-mapped files);")
    print("anon = peak RssAnon (heap), sampled every 10 ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--minutes", type=float, default=60.0, help="longer of the two lengths")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--fs", type=float, default=32000.0)
    ap.add_argument("--baseline-max-minutes", type=float, default=10.0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs per approach and length; the median is kept"
    )
    ap.add_argument("--_stage", default=None)
    ap.add_argument("--_dir", type=Path)
    ap.add_argument("--_work", type=Path)
    args = ap.parse_args()

    if args._stage:
        sampler = AnonPeak()
        result = STAGES[args._stage](args._dir, args._work)
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
            os.sync()  # no approach pays for writing back the generator's files
            gen_s = time.perf_counter() - t0
            work = root / f"work_{m:g}min"
            work.mkdir()
            row = {"minutes": m, "n_samples": n, "generate_s": gen_s}
            stages = ["floor", "ours"] + (["baseline"] if m <= args.baseline_max_minutes else [])
            runs: dict[str, list[dict]] = {name: [] for name in stages}
            for _ in range(args.repeat):  # interleaved, so load changes hit every approach
                for name in stages:
                    for old in work.glob("*.npyd"):  # every run writes new stores, none
                        shutil.rmtree(old)  # replaces (and pays to delete) the last run's
                    runs[name].append(run_stage(name, rec, work))
            for name in stages:
                row[name] = _median_run(runs[name])
                row[name]["repeats_total_s"] = [r["total_s"] for r in runs[name]]
                cpu = [r["total_cpu_s"] for r in runs[name]]
                row[name]["repeats_total_cpu_s"] = cpu
                row[name]["median_total_cpu_s"] = float(np.median(cpu))
            if "baseline" in row:
                row["max_rel_diff"] = _probe_diff(work)
            rows.append(row)
            shutil.rmtree(work)
            shutil.rmtree(rec)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    measured = [r for r in rows if "baseline" in r]
    per_sample = {
        key: float(np.mean([r["baseline"][f] / r["n_samples"] for r in measured]))
        if measured
        else float("nan")
        for key, f in (("wall", "total_s"), ("cpu", "median_total_cpu_s"))
    }
    summary = [_row_summary(r, args.channels, per_sample) for r in rows]
    _print_table(rows, summary, args.channels)
    print(
        json.dumps(
            {
                "bench": "ephys_read_filter",
                "channels": args.channels,
                "fs": args.fs,
                "filter": {"type": FILTER[0], "range": FILTER[1], "order": 4},
                "repeat": args.repeat,
                "runs": summary,
            }
        )
    )


if __name__ == "__main__":
    main()
