"""Denoise throughput: streamed fast path vs the reference's per-frame method, and vs I/O.

Compares, on a synthetic 608x608 FFV1 V4 session (generated once into bench/out/):

* ``fast``        — ace_assets.miniscope.denoise.denoise_movie into an ArrayStore with
                    default settings (stripes found in the movie and notched, corrupted
                    frames screened; one decode; raw frames parked in the output, then
                    filtered in place);
* ``fast_refnotch`` — the same with ``stripe_method="reference"`` (the fixed strip notch);
* ``fast_2dec``   — the default, decoding the movie twice (writer without an array);
* ``reference``   — a straightforward per-frame reimplementation of ACE-neuro's
                    denoiseMovie: three decode passes with a seek before every
                    frame, complex cv2.dft + fftshift + mask + ifftshift + cv2.idft
                    (twice per frame, passes 2 and 3); run on a prefix of the movie
                    (its per-frame cost does not depend on length) into the same
                    kind of store;
* ``floor_store`` — decode + write the raw frames to an ArrayStore (no compute);
* ``floor_ffv1``  — decode + FFV1 encode (what the reference does to save).

Then peak memory of the fast stage at two movie lengths, each in a fresh
subprocess (bench/_memory.py). The machine has 2 cores shared with other
jobs: absolute numbers move with the load, ratios less so.

    python bench/bench_denoise.py            # 608x608, 2000 frames; RSS at 2000 vs 8000
    python bench/bench_denoise.py --quick    # 256x256, 300 frames; RSS at 300 vs 1200
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ace_assets.errors import AceInputError
from ace_assets.io.miniscope import MiniscopeRecording, open_miniscope
from ace_assets.io.store import ArrayStoreWriter
from ace_assets.miniscope.denoise import (
    DenoiseParams,
    denoise_movie,
    lowpass_means,
    spectral_mask,
)

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))


def synth_config(n_frames: int, size: int, seed: int = 0) -> Any:
    """The synthetic session's settings (also gives the benches its ground truth)."""
    from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig

    scale = size / 608
    return MiniscopeSynthConfig(
        height=size,
        width=size,
        n_frames=n_frames,
        n_neurons=max(20, int(160 * scale * scale)),
        neuron_radius=max(2.5, 5.0 * scale),
        motion_amplitude=3.0,
        seed=seed,
    )


def ensure_movie(n_frames: int, size: int, seed: int = 0) -> Path:
    """A synthetic V4 session (bands, flicker, motion, neurons), generated once and reused."""
    folder = OUT / f"miniscope_{size}px_{n_frames}f_s{seed}"
    try:
        rec = open_miniscope(folder)
        if rec.n_frames == n_frames and rec.frame_shape == (size, size):
            return folder
    except AceInputError:
        pass
    from ace_assets.demo.miniscope_synth import SyntheticMiniscope
    from ace_assets.demo.miniscope_writer import write_v4_session

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    synth = SyntheticMiniscope(synth_config(n_frames, size, seed))
    t0 = time.perf_counter()
    write_v4_session(tmp, synth, frames_per_file=1000)
    tmp.rename(folder)
    print(f"# generated {folder.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return folder


class DiscardSink:
    """Accepts blocks and drops them (a writer with no ``array``)."""

    def write(self, start: int, block: np.ndarray) -> None:
        pass


class WriteThroughSink:
    """Forwards to an ArrayStoreWriter but hides its array (forces two decodes)."""

    def __init__(self, inner: ArrayStoreWriter) -> None:
        self.inner = inner

    def write(self, start: int, block: np.ndarray) -> None:
        self.inner.write(start, block)


def run_fast(
    rec: MiniscopeRecording,
    out: Path,
    reuse: bool = True,
    stop: int | None = None,
    params: DenoiseParams | None = None,
) -> float:
    n = rec.n_frames if stop is None else stop

    def source() -> Any:
        return rec.iter_chunks(16, 0, n)

    t0 = time.perf_counter()
    with ArrayStoreWriter(out, (n, *rec.frame_shape), np.uint8) as writer:
        sink = writer if reuse else WriteThroughSink(writer)
        denoise_movie(source, n, rec.frame_shape, rec.frame_rate, params, sink, reuse_output=reuse)
        writer.commit()
    return time.perf_counter() - t0


def floor_store(rec: MiniscopeRecording, out: Path) -> float:
    t0 = time.perf_counter()
    with ArrayStoreWriter(out, rec.shape, np.uint8) as writer:
        for start, block in rec.iter_chunks(64, prefetch=True):
            writer.write(start, block)
        writer.commit()
    return time.perf_counter() - t0


def floor_ffv1(rec: MiniscopeRecording, out: Path) -> float:
    h, w = rec.frame_shape
    t0 = time.perf_counter()
    vw = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"FFV1"), rec.frame_rate, (w, h), False)
    for _, block in rec.iter_chunks(64, prefetch=True):
        for frame in block:
            vw.write(frame)
    vw.release()
    return time.perf_counter() - t0


def reference_denoise(rec: MiniscopeRecording, n: int, out: Path, p: DenoiseParams) -> float:
    """ACE-neuro's denoiseMovie, straightforwardly: 3 passes, seek per frame, 2 FFTs per frame."""
    h, w = rec.frame_shape
    mask = np.repeat(spectral_mask((h, w), p)[:, :, None], 2, axis=2).astype(np.float32)

    def frames(step: int) -> Any:
        first = 0
        for path, count in zip(rec.files, rec.frames_per_file, strict=True):
            cap = cv2.VideoCapture(str(path))
            for j in range(0, count, step):
                if first + j >= n:
                    break
                cap.set(cv2.CAP_PROP_POS_FRAMES, j)
                ok, frame = cap.read()
                if not ok:
                    break
                yield first + j, frame[:, :, 1]
            cap.release()
            first += count
            if first >= n:
                return

    def filtered(frame: np.ndarray) -> np.ndarray:
        dft = cv2.dft(np.float32(frame), flags=cv2.DFT_COMPLEX_OUTPUT | cv2.DFT_SCALE)
        shifted = np.fft.fftshift(dft, axes=(0, 1)) * mask
        back = cv2.idft(np.fft.ifftshift(shifted, axes=(0, 1)))
        return back[:, :, 0]

    t0 = time.perf_counter()
    sum_fft = None
    for _, frame in frames(p.frameStep):  # pass 1: average spectrum (display in ACE)
        dft = np.fft.fftshift(cv2.dft(np.float32(frame), flags=cv2.DFT_COMPLEX_OUTPUT), axes=(0, 1))
        mag = cv2.magnitude(dft[:, :, 0], dft[:, :, 1])
        sum_fft = mag if sum_fft is None else sum_fft + mag
    means = np.zeros(n)
    for i, frame in frames(1):  # pass 2: mean of every filtered frame
        means[i] = filtered(frame).mean()
    lp = lowpass_means(means, rec.frame_rate, p.cutoff, p.butterOrder)
    with ArrayStoreWriter(out, (n, h, w), np.uint8) as writer:
        for i, frame in frames(1):  # pass 3: filter again, rescale, save
            img = filtered(frame)
            img *= 1 + (lp[i] - means[i]) / means[i]
            writer.write(i, np.clip(np.rint(img), 0, 255).astype(np.uint8)[None])
        writer.commit()
    return time.perf_counter() - t0


def rss_stage(folder: str, out: str) -> dict[str, Any]:
    """Subprocess entry point: the fast denoise stage into a store, then clean up."""
    rec = open_miniscope(folder)
    seconds = run_fast(rec, Path(out))
    shutil.rmtree(out, ignore_errors=True)
    return {"n_frames": rec.n_frames, "fps": rec.n_frames / seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, < 1 min")
    ap.add_argument("--frames", type=int, help="frames of the throughput movie")
    ap.add_argument("--size", type=int, help="frame height = width")
    ap.add_argument("--baseline-frames", type=int, help="prefix the reference runs on")
    ap.add_argument("--rss-frames", type=int, nargs=2, help="two movie lengths for peak RSS")
    ap.add_argument("--no-rss", action="store_true")
    ap.add_argument("--repeat", type=int, default=2, help="rounds; the best of each is kept")
    args = ap.parse_args()
    size = args.size or (256 if args.quick else 608)
    n = args.frames or (300 if args.quick else 2000)
    n_ref = min(n, args.baseline_frames or (100 if args.quick else 300))
    rss_lengths = args.rss_frames or ([300, 1200] if args.quick else [2000, 8000])
    OUT.mkdir(parents=True, exist_ok=True)
    params = DenoiseParams()

    rec = open_miniscope(ensure_movie(n, size))
    work = OUT / "denoise_work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    # best of --repeat rounds, variants interleaved: the machine's load moves between them
    ref_notch = replace(params, stripe_method="reference")
    t_floor = t_ffv1 = t_fast = t_refnotch = t_fast2 = float("inf")
    for _ in range(args.repeat):
        t_floor = min(t_floor, floor_store(rec, work / "floor.npyd"))
        t_fast = min(t_fast, run_fast(rec, work / "fast.npyd"))
        t_refnotch = min(t_refnotch, run_fast(rec, work / "fast_ref.npyd", params=ref_notch))
        t_ffv1 = min(t_ffv1, floor_ffv1(rec, work / "floor.avi"))
        t_fast2 = min(t_fast2, run_fast(rec, work / "fast2.npyd", reuse=False))
    t_ref = reference_denoise(rec, n_ref, work / "ref.npyd", params)
    # equivalence on the same prefix (the flicker low-pass sees the same frames), with the
    # reference's notch and periodic edges (wrapCorrection=False)
    periodic = replace(params, stripe_method="reference", wrapCorrection=False)
    run_fast(rec, work / "fast_prefix.npyd", stop=n_ref, params=periodic)
    ref_out = np.load(work / "ref.npyd" / "data.npy", mmap_mode="r")
    fast_out = np.load(work / "fast_prefix.npyd" / "data.npy", mmap_mode="r")
    max_diff = max(
        int(np.abs(ref_out[a : a + 50].astype(int) - fast_out[a : a + 50]).max())
        for a in range(0, n_ref, 50)
    )
    del ref_out, fast_out

    fps = {
        "fast": n / t_fast,
        "fast_refnotch": n / t_refnotch,
        "fast_2dec": n / t_fast2,
        "reference": n_ref / t_ref,
        "floor_store": n / t_floor,
        "floor_ffv1": n / t_ffv1,
    }
    rows = [
        ("fast (1 decode, auto)", fps["fast"]),
        ("fast, reference notch", fps["fast_refnotch"]),
        ("fast, 2 decodes", fps["fast_2dec"]),
        (f"reference ({n_ref} frames)", fps["reference"]),
        ("floor: decode+store", fps["floor_store"]),
        ("floor: decode+FFV1", fps["floor_ffv1"]),
    ]
    print(f"# denoise, {size}x{size}, {n} frames, 2 shared cores, best of {args.repeat}")
    print(f"{'variant':28s} {'frames/s':>10s} {'vs reference':>13s} {'vs floor_store':>15s}")
    for name, value in rows:
        print(
            f"{name:28s} {value:10.1f} {value / fps['reference']:12.1f}x "
            f"{fps['floor_store'] / value:14.2f}x"
        )
    print(f"max |fast - reference| on {n_ref} frames: {max_diff} grey level(s)")

    memory: dict[str, Any] = {}
    if not args.no_rss:
        from _memory import measure

        print(f"\n{'frames':>8s} {'peak RSS MB':>12s} {'peak anon MB':>13s} {'fps':>8s}")
        for length in rss_lengths:
            folder = ensure_movie(length, size)
            stats = measure(
                "bench_denoise:rss_stage",
                {"folder": str(folder), "out": str(work / f"rss_{length}.npyd")},
            )
            memory[str(length)] = {
                "peak_rss_mb": round(stats["peak_rss_mb"], 1),
                "peak_anon_mb": round(stats["peak_anon_mb"], 1),
                "fps": round(stats["result"]["fps"], 1),
            }
            m = memory[str(length)]
            print(f"{length:8d} {m['peak_rss_mb']:12.1f} {m['peak_anon_mb']:13.1f} {m['fps']:8.1f}")
        print("(RSS includes the memory-mapped output store's file pages; anon is held memory)")
    shutil.rmtree(work, ignore_errors=True)
    summary = {
        "bench": "denoise",
        "size": size,
        "frames": n,
        "reference_frames": n_ref,
        "fps": {k: round(v, 1) for k, v in fps.items()},
        "speedup_vs_reference": round(fps["fast"] / fps["reference"], 1),
        "auto_vs_reference_notch": round(fps["fast"] / fps["fast_refnotch"], 2),
        "slowdown_vs_floor_store": round(fps["floor_store"] / fps["fast"], 2),
        "slowdown_vs_floor_ffv1": round(fps["floor_ffv1"] / fps["fast"], 2),
        "max_diff_vs_reference": max_diff,
        "memory": memory,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
