"""Motion-correction throughput, rigid and piecewise-rigid, vs a straightforward baseline.

On the synthetic 608x608 V4 session of bench_denoise (random-walk rigid motion
of up to 3 px, known per frame), with the CSV template's settings
(max_shifts 15, gSig_filt 7, strides 48, overlaps 24, max_deviation_rigid 7):

* ``template``  — estimate_template (300 first frames, 2 refinements);
* ``rigid``, ``pw_rigid`` — ace_assets.miniscope.motion.motion_correct streaming the
  AVI files (decode included) into a float32 ArrayStore;
* ``baseline``  — the same registration written the textbook way, per frame in
  numpy: CaImAn's high-pass with cv2.filter2D, complex np.fft.fft2 of frame and
  template, cross-power, ifft2, bounded argmax, 10x upsampled-DFT refinement
  (skimage's register_translation, as NoRMCorre uses), cv2 warp; for pw-rigid the
  same per patch. Run on a prefix (its per-frame cost does not depend on length).

Accuracy is the median |estimated correction + true motion| after removing the
constant offset of the template. Peak memory of each stage at two movie
lengths comes from fresh subprocesses (bench/_memory.py). The machine has 2
cores shared with other jobs.

    python bench/bench_motion.py            # 608x608, 2000 frames; RSS at 2000 vs 8000
    python bench/bench_motion.py --quick    # 256x256, 300 frames; RSS at 300 vs 1200
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_denoise import OUT, ensure_movie, synth_config  # noqa: E402

from ace_assets.io.miniscope import MiniscopeRecording, open_miniscope  # noqa: E402
from ace_assets.io.store import ArrayStoreWriter  # noqa: E402
from ace_assets.miniscope.motion import MotionParams, estimate_template, motion_correct  # noqa: E402
from ace_assets.miniscope.registration import PatchGrid, high_pass_kernel  # noqa: E402

CSV_DEFAULTS = {
    "max_shifts": (15, 15),
    "gSig_filt": (7.0, 7.0),
    "strides": (48, 48),
    "overlaps": (24, 24),
    "max_deviation_rigid": 7,
    "border_nan": "copy",
}


def params_for(size: int, pw: bool) -> MotionParams:
    scale = size / 608
    if scale >= 1:
        return MotionParams(pw_rigid=pw, **CSV_DEFAULTS)  # type: ignore[arg-type]
    s = max(16, int(48 * scale))
    return MotionParams(
        pw_rigid=pw,
        max_shifts=(8, 8),
        gSig_filt=(4.0, 4.0),
        strides=(s, s),
        overlaps=(s // 2, s // 2),
        max_deviation_rigid=4,
    )


def true_motion(n: int, size: int) -> np.ndarray:
    from ace_assets.demo.miniscope_synth import SyntheticMiniscope

    return np.asarray(SyntheticMiniscope(synth_config(n, size)).shifts, np.float64)


def shift_error(corrections: np.ndarray, motion: np.ndarray) -> float:
    err = corrections + motion
    return float(np.median(np.abs(err - np.median(err, axis=0))))


# --- the textbook baseline -------------------------------------------------------------


def _upsampled_dft(data: np.ndarray, size: int, factor: int, offsets: np.ndarray) -> np.ndarray:
    for n_items, offset in zip(data.shape[::-1], offsets[::-1], strict=True):
        kernel = (np.arange(size) - offset)[:, None] * np.fft.fftfreq(n_items, factor)
        data = np.tensordot(np.exp(-2j * np.pi * kernel), data, axes=(1, -1))
    return data


def register_translation(
    frame_freq: np.ndarray, template_freq: np.ndarray, max_shift: int, upsample: int = 10
) -> np.ndarray:
    """Lag of the frame vs the template (skimage's algorithm, bounded like NoRMCorre)."""
    product = frame_freq * template_freq.conj()
    cc = np.abs(np.fft.ifft2(product))
    h, w = cc.shape
    lags = np.arange(-max_shift, max_shift + 1)
    win = cc[np.ix_(lags % h, lags % w)]
    iy, ix = np.unravel_index(int(np.argmax(win)), win.shape)
    shifts = np.array([lags[iy], lags[ix]], np.float64)
    region = int(np.ceil(upsample * 1.5))
    centre = np.fix(region / 2.0)
    up = _upsampled_dft(product.conj(), region, upsample, centre - shifts * upsample).conj()
    my, mx = np.unravel_index(int(np.argmax(np.abs(up))), up.shape)
    return shifts + (np.array([my, mx]) - centre) / upsample


def baseline_motion(
    rec: MiniscopeRecording, n: int, template: np.ndarray, p: MotionParams
) -> tuple[float, np.ndarray]:
    """Per-frame numpy registration; returns (seconds, rigid corrections)."""
    assert p.gSig_filt is not None
    ker = high_pass_kernel(p.gSig_filt).astype(np.float32)
    hp_t = cv2.filter2D(template, -1, ker, borderType=cv2.BORDER_REFLECT)
    t_freq = np.fft.fft2(hp_t)
    grid = PatchGrid.build(template.shape, p.strides, p.overlaps) if p.pw_rigid else None
    patch_freqs = [np.fft.fft2(q) for q in grid.patches(hp_t)] if grid else []
    h, w = template.shape
    ys, xs = np.mgrid[:h, :w].astype(np.float32)
    m = int(p.max_shifts[0])
    out = np.zeros((n, 2))
    t0 = time.perf_counter()
    for start, block in rec.iter_chunks(32, 0, n):
        for i, frame in enumerate(block.astype(np.float32)):
            hp = cv2.filter2D(frame, -1, ker, borderType=cv2.BORDER_REFLECT)
            lag = register_translation(np.fft.fft2(hp), t_freq, m)
            out[start + i] = -lag
            if grid is None:
                mat = np.float32([[1, 0, -lag[1]], [0, 1, -lag[0]]])
                cv2.warpAffine(
                    frame, mat, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
                )
                continue
            d = p.max_deviation_rigid
            lags = [
                np.clip(
                    register_translation(np.fft.fft2(q), tf, m + d),
                    lag - d,
                    lag + d,
                )
                for q, tf in zip(grid.patches(hp), patch_freqs, strict=True)
            ]
            field = -np.asarray(lags, np.float32).reshape(*grid.grid_shape, 2)
            dy = cv2.resize(field[..., 0], (w, h), interpolation=cv2.INTER_CUBIC)
            dx = cv2.resize(field[..., 1], (w, h), interpolation=cv2.INTER_CUBIC)
            cv2.remap(frame, xs - dx, ys - dy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return time.perf_counter() - t0, out


# --- stages ----------------------------------------------------------------------------


def run_stage(
    rec: MiniscopeRecording, out: Path, p: MotionParams, template: np.ndarray | None
) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    with ArrayStoreWriter(out, rec.shape, np.float32) as writer:
        report = motion_correct(rec, rec.n_frames, rec.frame_shape, p, writer, template=template)
        writer.commit()
    return time.perf_counter() - t0, report


def rss_stage(folder: str, out: str, pw: bool) -> dict[str, Any]:
    """Subprocess entry point: template + correction into a store, then clean up."""
    rec = open_miniscope(folder)
    seconds, _ = run_stage(rec, Path(out), params_for(rec.frame_shape[0], pw), None)
    shutil.rmtree(out, ignore_errors=True)
    return {"n_frames": rec.n_frames, "fps": rec.n_frames / seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, < 1 min")
    ap.add_argument("--frames", type=int)
    ap.add_argument("--size", type=int)
    ap.add_argument(
        "--baseline-frames", type=int, nargs=2, help="prefix for rigid and pw baselines"
    )
    ap.add_argument("--rss-frames", type=int, nargs=2)
    ap.add_argument("--no-rss", action="store_true")
    args = ap.parse_args()
    size = args.size or (256 if args.quick else 608)
    n = args.frames or (300 if args.quick else 2000)
    n_base_rigid, n_base_pw = args.baseline_frames or ((60, 20) if args.quick else (200, 30))
    rss_lengths = args.rss_frames or ([300, 1200] if args.quick else [2000, 8000])
    rec = open_miniscope(ensure_movie(n, size))
    motion = true_motion(n, size)
    work = OUT / "motion_work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    t_decode = time.perf_counter()
    for _ in rec.iter_chunks(64, prefetch=True):
        pass
    t_decode = time.perf_counter() - t_decode
    rigid_p, pw_p = params_for(size, False), params_for(size, True)
    t0 = time.perf_counter()
    template = estimate_template(rec, n, rec.frame_shape, rigid_p)
    t_template = time.perf_counter() - t0
    t_rigid, rep_rigid = run_stage(rec, work / "rigid.npyd", rigid_p, template)
    shutil.rmtree(work / "rigid.npyd")
    t_pw, rep_pw = run_stage(rec, work / "pw.npyd", pw_p, template)
    shutil.rmtree(work / "pw.npyd")
    tb_rigid, base_rigid = baseline_motion(rec, n_base_rigid, template, rigid_p)
    tb_pw, _ = baseline_motion(rec, n_base_pw, template, pw_p)

    fps = {
        "decode_only": n / t_decode,
        "rigid": n / t_rigid,
        "pw_rigid": n / t_pw,
        "baseline_rigid": n_base_rigid / tb_rigid,
        "baseline_pw_rigid": n_base_pw / tb_pw,
    }
    err = {
        "rigid": shift_error(rep_rigid["shifts_rigid"], motion),
        "pw_rigid": shift_error(rep_pw["shifts_rigid"], motion),
        "baseline_rigid": shift_error(base_rigid, motion[:n_base_rigid]),
    }
    print(f"# motion correction, {size}x{size}, {n} frames (decode included), 2 shared cores")
    print(f"template: {t_template:.1f} s")
    print(f"{'variant':30s} {'frames/s':>9s} {'vs baseline':>12s} {'median err px':>14s}")
    print(f"{'decode only':30s} {fps['decode_only']:9.1f}")
    for name, base in (("rigid", "baseline_rigid"), ("pw_rigid", "baseline_pw_rigid")):
        print(f"{name:30s} {fps[name]:9.1f} {fps[name] / fps[base]:11.1f}x {err[name]:14.3f}")
    print(
        f"{'baseline rigid (' + str(n_base_rigid) + ' frames)':30s} {fps['baseline_rigid']:9.1f}"
        f" {'':12s} {err['baseline_rigid']:14.3f}"
    )
    print(f"{'baseline pw (' + str(n_base_pw) + ' frames)':30s} {fps['baseline_pw_rigid']:9.1f}")
    qc = {
        name: {
            "mean_corr_before": round(r["mean_corr_before"], 4),
            "mean_corr_after": round(r["mean_corr_after"], 4),
            "crispness_before": round(r["crispness_before"], 1),
            "crispness_after": round(r["crispness_after"], 1),
        }
        for name, r in (("rigid", rep_rigid), ("pw_rigid", rep_pw))
    }
    for name, q in qc.items():
        print(
            f"{name}: corr to template {q['mean_corr_before']} -> {q['mean_corr_after']}, "
            f"crispness {q['crispness_before']} -> {q['crispness_after']}"
        )

    memory: dict[str, Any] = {}
    if not args.no_rss:
        from _memory import measure

        print(
            f"\n{'stage':10s} {'frames':>7s} {'peak RSS MB':>12s} {'peak anon MB':>13s} {'fps':>7s}"
        )
        for pw in (False, True):
            name = "pw_rigid" if pw else "rigid"
            for length in rss_lengths:
                folder = ensure_movie(length, size)
                stats = measure(
                    "bench_motion:rss_stage",
                    {
                        "folder": str(folder),
                        "out": str(work / f"rss_{name}_{length}.npyd"),
                        "pw": pw,
                    },
                )
                m = {
                    "peak_rss_mb": round(stats["peak_rss_mb"], 1),
                    "peak_anon_mb": round(stats["peak_anon_mb"], 1),
                    "fps": round(stats["result"]["fps"], 1),
                }
                memory[f"{name}_{length}"] = m
                print(
                    f"{name:10s} {length:7d} {m['peak_rss_mb']:12.1f} {m['peak_anon_mb']:13.1f} "
                    f"{m['fps']:7.1f}"
                )
        print("(RSS includes memory-mapped store pages; anon is held memory)")
    shutil.rmtree(work, ignore_errors=True)
    summary = {
        "bench": "motion",
        "size": size,
        "frames": n,
        "baseline_frames": [n_base_rigid, n_base_pw],
        "template_s": round(t_template, 2),
        "fps": {k: round(v, 1) for k, v in fps.items()},
        "speedup_rigid": round(fps["rigid"] / fps["baseline_rigid"], 1),
        "speedup_pw_rigid": round(fps["pw_rigid"] / fps["baseline_pw_rigid"], 1),
        "median_error_px": {k: round(v, 3) for k, v in err.items()},
        "qc": qc,
        "memory": memory,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
