"""Motion-correction throughput, rigid and piecewise-rigid, vs a straightforward baseline.

On the synthetic 608x608 V4 session of bench_denoise (random-walk rigid motion
of up to 3 px, known per frame), denoised first as in the pipeline (cached in
bench/out/ as a uint8 ArrayStore), with the CSV template's settings
(max_shifts 15, gSig_filt 7, strides 48, overlaps 24, max_deviation_rigid 7):

* ``template``  — estimate_template (300 images from 10 stretches spread over the
  movie, 2 refinements from confident images);
* ``rigid``, ``pw_rigid`` — ace_assets.miniscope.motion.motion_correct streaming the
  denoised store into a compact (float16) ArrayStore, as the asset does (template
  estimation not included): two passes (measure, then warp) around the shift tracking;
* ``before``    — with ``--before REF``, ``motion_correct`` as it was at git ``REF``
  (imported from that revision's source into a temporary module, writing float32 as it
  then did), on the same store and template, in the same process: the speed change;
* ``baseline``  — the same registration written the textbook way, per frame in
  numpy: CaImAn's high-pass with cv2.filter2D, complex np.fft.fft2 of the frame,
  cross-power with the template, ifft2, bounded argmax, 10x upsampled-DFT
  refinement (skimage's register_translation, as NoRMCorre uses), cv2 warp; for
  pw-rigid the same per patch. Run on a prefix (per-frame cost does not depend
  on length).

Accuracy is the median |estimated correction + true motion| after removing the
constant offset of the template. Peak memory of each stage at two movie
lengths comes from fresh subprocesses (bench/_memory.py). The machine has 2
cores shared with other jobs: absolute rates move with the load.

    python bench/bench_motion.py            # 608x608, 2000 frames; RSS at 2000 vs 8000
    python bench/bench_motion.py --quick    # 256x256, 300 frames; RSS at 300 vs 1200
    python bench/bench_motion.py --before 2f2162c --no-rss   # speed vs that revision

``--family``: accuracy instead, at default settings (SPECS) on every member of the harder
family, rendered without bands (as if denoise were perfect; ``--bands 0.1`` leaves 10% of
them) but with the wireless corruptions: rigid error median / p95 / max (px, unusable
frames left out), frames flagged low-confidence, pooled, interpolated, and crispness.

    python bench/bench_motion.py --family --frames 1000 [--before 2f2162c]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_denoise import OUT, ensure_movie, synth_config  # noqa: E402

from ace_assets.io.miniscope import open_miniscope  # noqa: E402
from ace_assets.io.store import ArrayStore, ArrayStoreWriter  # noqa: E402
from ace_assets.miniscope.denoise import denoise_movie  # noqa: E402
from ace_assets.miniscope.motion import (  # noqa: E402
    MotionParams,
    estimate_template,
    motion_correct,
)
from ace_assets.miniscope.registration import PatchGrid, high_pass_kernel  # noqa: E402


def params_for(size: int, pw: bool) -> MotionParams:
    if size >= 608:
        return MotionParams(pw_rigid=pw)  # the catalog defaults
    s = max(16, int(48 * size / 608))
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


def denoised_store(n: int, size: int) -> ArrayStore:
    """The denoised movie the motion stage sees in the pipeline, made once and reused."""
    path = OUT / f"denoised_{size}px_{n}f.npyd"
    if (path / "data.npy").is_file():
        store = ArrayStore(path)
        if store.shape == (n, size, size):
            return store
    rec = open_miniscope(ensure_movie(n, size))
    params = {"centerHalfHeightToLeave": int(round(90 * size / 608))}
    with ArrayStoreWriter(path, rec.shape, np.uint8) as writer:
        denoise_movie(rec, rec.n_frames, rec.frame_shape, rec.frame_rate, params, writer)
        writer.commit()
    return ArrayStore(path)


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
    store: ArrayStore, n: int, template: np.ndarray, p: MotionParams
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
    d = p.max_deviation_rigid
    out = np.zeros((n, 2))
    t0 = time.perf_counter()
    for start in range(0, n, 32):
        block = store.read(start, min(start + 32, n))
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
            lags = [
                np.clip(register_translation(np.fft.fft2(q), tf, m + d), lag - d, lag + d)
                for q, tf in zip(grid.patches(hp), patch_freqs, strict=True)
            ]
            field = -np.asarray(lags, np.float32).reshape(*grid.grid_shape, 2)
            dy = cv2.resize(field[..., 0], (w, h), interpolation=cv2.INTER_CUBIC)
            dx = cv2.resize(field[..., 1], (w, h), interpolation=cv2.INTER_CUBIC)
            cv2.remap(frame, xs - dx, ys - dy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return time.perf_counter() - t0, out


# --- stages ----------------------------------------------------------------------------


def run_stage(
    store: ArrayStore,
    out: Path,
    p: MotionParams,
    template: np.ndarray | None,
    module: Any = None,
) -> tuple[float, Any]:
    """Correct ``store`` into ``out``: with ``module`` (an earlier revision), as it then did.

    Returns the seconds taken and the report: a :class:`MotionReport`, or the dict an
    earlier revision returned.
    """
    t0 = time.perf_counter()
    if module is not None:
        old = module.MotionParams.from_mapping(
            {k: v for k, v in p.__dict__.items() if k in module.MotionParams.__dataclass_fields__}
        )
        with ArrayStoreWriter(out, store.shape, np.float32) as writer:
            report = module.motion_correct(
                store, store.n_frames, store.shape[1:], old, writer, template=template
            )
            writer.commit()
        return time.perf_counter() - t0, report
    with ArrayStoreWriter(out, store.shape, np.float32, compact=True) as writer:
        report = motion_correct(
            store,
            store.n_frames,
            store.shape[1:],
            p,
            writer,
            template=template,
            scratch_dir=out.parent,
        )
        writer.commit()
    return time.perf_counter() - t0, report


def report_fields(report: Any) -> dict[str, Any]:
    """A motion report by field name: this revision's MotionReport or an earlier one's dict."""
    return report if isinstance(report, dict) else vars(report)


def module_at(ref: str, tmp: Path) -> Any:
    """``ace_assets/miniscope/motion.py`` as it was at git ``ref``, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{ref}:ace_assets/miniscope/motion.py"],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = tmp / f"motion_{ref}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"motion_{ref}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def rss_stage(store: str, out: str, pw: bool) -> dict[str, Any]:
    """Subprocess entry point: template + correction into a store, then clean up."""
    source = ArrayStore(store)
    seconds, _ = run_stage(source, Path(out), params_for(source.shape[1], pw), None)
    shutil.rmtree(out, ignore_errors=True)
    return {"n_frames": source.n_frames, "fps": source.n_frames / seconds}


def family(frames: int, bands: float, members: list[str], before: str | None) -> None:
    """Accuracy at default settings on the harder family (see the module docstring)."""
    from ace_assets.catalog.stage_params import group_defaults
    from ace_assets.demo.families import HARD_FAMILY, family_member
    from ace_assets.demo.miniscope_synth import SyntheticMiniscope
    from ace_assets.demo.scoring import rigid_errors, unusable_frames
    from ace_assets.miniscope.chunks import ArraySink

    defaults = group_defaults("motion")
    versions: list[tuple[str, Any]] = [("now", None)]
    tmp = tempfile.TemporaryDirectory()
    if before:
        versions.append((before, module_at(before, Path(tmp.name))))
    rows = []
    for name in members or sorted(HARD_FAMILY):
        movie = SyntheticMiniscope(family_member(name, n_frames=frames))
        data = movie.render(0, frames, bands=False, quantize=not bands)
        if bands:
            data = np.clip(np.rint(data + np.float32(bands) * movie.bands(0, frames)), 0, 255)
            data = data.astype(np.uint8)
        for version, module in versions:
            sink = ArraySink(data.shape, np.float32)
            t0 = time.perf_counter()
            if module is None:
                rep = report_fields(motion_correct(data, frames, data.shape[1:], defaults, sink))
            else:
                known = module.MotionParams.__dataclass_fields__
                old = module.MotionParams.from_mapping(
                    {k: v for k, v in defaults.items() if k in known}
                )
                rep = report_fields(module.motion_correct(data, frames, data.shape[1:], old, sink))
            seconds = time.perf_counter() - t0
            err = rigid_errors(rep["shifts_rigid"], movie.shifts, exclude=unusable_frames(movie))
            row = {
                "member": name,
                "version": version,
                "median_px": round(float(np.median(err)), 3),
                "p95_px": round(float(np.percentile(err, 95)), 3),
                "max_px": round(float(err.max()), 2),
                "low_confidence": int(rep.get("n_low_confidence", -1)),
                "pooled": int(rep.get("n_pooled", -1)),
                "interpolated": int(rep.get("n_interpolated", -1)),
                "crispness": [round(rep["crispness_before"], 1), round(rep["crispness_after"], 1)],
                "fps": round(frames / seconds, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    tmp.cleanup()
    print(f"\n# motion at defaults, {frames} frames, bands x{bands}, corruptions in")
    print(
        f"{'member':17s} {'version':8s} {'median':>7s} {'p95':>6s} {'max':>6s} "
        f"{'low':>5s} {'pool':>5s} {'interp':>6s} {'fps':>6s}"
    )
    for r in rows:
        print(
            f"{r['member']:17s} {r['version']:8s} {r['median_px']:7.3f} {r['p95_px']:6.3f} "
            f"{r['max_px']:6.2f} {r['low_confidence']:5d} {r['pooled']:5d} "
            f"{r['interpolated']:6d} {r['fps']:6.1f}"
        )
    print(json.dumps({"bench": "motion_family", "frames": frames, "bands": bands, "rows": rows}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, < 1 min")
    ap.add_argument("--frames", type=int)
    ap.add_argument("--size", type=int)
    ap.add_argument("--baseline-frames", type=int, nargs=2, help="prefix for rigid and pw")
    ap.add_argument("--rss-frames", type=int, nargs=2)
    ap.add_argument("--no-rss", action="store_true")
    ap.add_argument("--before", metavar="REF", help="also time motion_correct at this git revision")
    ap.add_argument("--family", action="store_true", help="accuracy on the harder family")
    ap.add_argument("--bands", type=float, default=0.0, help="--family: fraction of bands left")
    ap.add_argument("--members", nargs="*", default=[])
    args = ap.parse_args()
    if args.family:
        family(args.frames or 300, args.bands, args.members, args.before)
        return
    size = args.size or (256 if args.quick else 608)
    n = args.frames or (300 if args.quick else 2000)
    n_base_rigid, n_base_pw = args.baseline_frames or ((60, 20) if args.quick else (200, 30))
    rss_lengths = args.rss_frames or ([300, 1200] if args.quick else [2000, 8000])
    store = denoised_store(n, size)
    motion = true_motion(n, size)
    work = OUT / "motion_work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    t_read = time.perf_counter()
    for _ in store.iter_chunks(64):
        pass
    t_read = time.perf_counter() - t_read
    rigid_p, pw_p = params_for(size, False), params_for(size, True)
    t0 = time.perf_counter()
    template = estimate_template(store, n, (size, size), rigid_p)
    t_template = time.perf_counter() - t0
    t_rigid, rep_rigid = run_stage(store, work / "rigid.npyd", rigid_p, template)
    shutil.rmtree(work / "rigid.npyd")
    t_pw, rep_pw = run_stage(store, work / "pw.npyd", pw_p, template)
    shutil.rmtree(work / "pw.npyd")
    before: dict[str, float] = {}
    if args.before:
        with tempfile.TemporaryDirectory() as tmp:
            old = module_at(args.before, Path(tmp))
            for name, p in (("rigid", rigid_p), ("pw_rigid", pw_p)):
                seconds, _ = run_stage(store, work / "old.npyd", p, template, old)
                shutil.rmtree(work / "old.npyd")
                before[name] = n / seconds
    tb_rigid, base_rigid = baseline_motion(store, n_base_rigid, template, rigid_p)
    tb_pw, _ = baseline_motion(store, n_base_pw, template, pw_p)

    fps = {
        "read_store": n / t_read,
        "rigid": n / t_rigid,
        "pw_rigid": n / t_pw,
        "baseline_rigid": n_base_rigid / tb_rigid,
        "baseline_pw_rigid": n_base_pw / tb_pw,
    }
    err = {
        "rigid": shift_error(rep_rigid.shifts_rigid, motion),
        "pw_rigid": shift_error(rep_pw.shifts_rigid, motion),
        "baseline_rigid": shift_error(base_rigid, motion[:n_base_rigid]),
    }
    print(f"# motion correction, {size}x{size}, {n} denoised frames, 2 shared cores")
    print(f"template estimation: {t_template:.1f} s")
    print(f"{'variant':30s} {'frames/s':>9s} {'vs baseline':>12s} {'median err px':>14s}")
    print(f"{'read input store only':30s} {fps['read_store']:9.1f}")
    for name, base in (("rigid", "baseline_rigid"), ("pw_rigid", "baseline_pw_rigid")):
        print(f"{name:30s} {fps[name]:9.1f} {fps[name] / fps[base]:11.1f}x {err[name]:14.3f}")
    label = f"baseline rigid ({n_base_rigid} frames)"
    print(f"{label:30s} {fps['baseline_rigid']:9.1f} {'':12s} {err['baseline_rigid']:14.3f}")
    label = f"baseline pw ({n_base_pw} frames)"
    print(f"{label:30s} {fps['baseline_pw_rigid']:9.1f}")
    for name, rate in before.items():
        label = f"{name} at {args.before}"
        print(f"{label:30s} {rate:9.1f}   now {fps[name] / rate:.2f}x that")
    for name, r in (("rigid", rep_rigid), ("pw_rigid", rep_pw)):
        print(
            f"{name}: {r.n_low_confidence} low-confidence, {r.n_pooled} pooled, "
            f"{r.n_interpolated} interpolated frames of {n}"
        )
    qc = {
        name: {
            "mean_corr_before": round(r.mean_corr_before, 4),
            "mean_corr_after": round(r.mean_corr_after, 4),
            "crispness_before": round(r.crispness_before, 1),
            "crispness_after": round(r.crispness_after, 1),
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
                source = denoised_store(length, size)
                stats = measure(
                    "bench_motion:rss_stage",
                    {
                        "store": str(source.path),
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
                    f"{name:10s} {length:7d} {m['peak_rss_mb']:12.1f} "
                    f"{m['peak_anon_mb']:13.1f} {m['fps']:7.1f}"
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
        "before": {"ref": args.before, "fps": {k: round(v, 1) for k, v in before.items()}},
        "speed_vs_before": {k: round(fps[k] / v, 2) for k, v in before.items()},
        "qc": qc,
        "memory": memory,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
