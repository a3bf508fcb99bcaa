"""The movie chain as the assets call it: denoise -> preprocess -> motion -> extraction.

Shared by the benches that time the whole chain on a Miniscope folder, with the defaults
an empty analysis_parameters.csv row gives. Imports ``ace_assets`` when called, so a bench
can run it against another checkout (a directory put first on ``sys.path``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def phase_of(message: str) -> str:
    """Extraction's progress message without its counters ("seeding patch 3/100" ->
    "seeding patch", "full-resolution pass 1/2 (300 components)" -> "full-resolution pass")."""
    head = message.split(" (")[0]
    if head.startswith("seeding"):  # "seeding patch i/N" before 2026-11, "seeding N patches"
        return "seeding"
    words = [w for w in head.split() if not any(ch.isdigit() for ch in w)]
    return " ".join(words)


def preprocessed_store_kind(source_dtype: np.dtype) -> dict[str, bool]:
    """How the preprocessed_movie asset stores its movie: exactly as frames and per-frame
    gains where it can (since 2026-11-28), else float16 (and always before)."""
    from ace_assets.miniscope import preprocess

    decide = getattr(preprocess, "output_is_frame_affine", None)
    if decide is not None and decide(None, source_dtype):
        return {"frame_affine": True}
    return {"compact": True}


def run_chain(folder: str, workdir: str, out_npz: str) -> dict[str, float]:
    """Stage wall and CPU seconds, and extraction's by phase (``phase:<name>_s`` and
    ``phase:<name>_cpu_s``, from its progress messages); sources, traces and shifts saved
    to ``out_npz`` (npz)."""
    from ace_assets.catalog.stage_params import group_defaults
    from ace_assets.io.miniscope import open_miniscope
    from ace_assets.io.store import ArrayStoreWriter
    from ace_assets.miniscope.denoise import denoise_movie
    from ace_assets.miniscope.extraction import extract
    from ace_assets.miniscope.motion import motion_correct
    from ace_assets.miniscope.preprocess import output_shape, preprocess_movie

    rec = open_miniscope(folder)
    n, (h, w), fps = rec.n_frames, rec.frame_shape, rec.frame_rate
    work = Path(workdir)
    times: dict[str, float] = {}
    clock = [time.perf_counter(), time.process_time()]

    def lap(stage: str) -> None:
        now = [time.perf_counter(), time.process_time()]
        times[f"{stage}_s"] = now[0] - clock[0]
        times[f"{stage}_cpu_s"] = now[1] - clock[1]
        clock[:] = now

    with ArrayStoreWriter(work / "denoised.npyd", (n, h, w), np.uint8, {"fps": fps}) as wr:
        den = denoise_movie(rec, n, (h, w), fps, group_defaults("denoise"), wr)
        denoised = wr.commit()
    lap("denoise")
    shape = output_shape(n, (h, w))
    pre_store = preprocessed_store_kind(denoised.stored_dtype)
    with ArrayStoreWriter(work / "pre.npyd", shape, np.float32, {"fps": fps}, **pre_store) as wr:
        preprocess_movie(
            denoised, n, (h, w), fps, group_defaults("preprocess"), wr, scratch_dir=work
        )
        pre = wr.commit()
    lap("preprocess")
    with ArrayStoreWriter(work / "mc.npyd", shape, np.float32, {"fps": fps}, compact=True) as wr:
        mot = motion_correct(pre, n, (h, w), group_defaults("motion"), wr, scratch_dir=work)
        corrected = wr.commit()
    lap("motion")
    marks: list[tuple[str, float, float]] = []

    def progress(message: str) -> None:
        marks.append((phase_of(message), time.perf_counter(), time.process_time()))

    progress("start")
    res = extract(
        corrected,
        group_defaults("extraction"),
        fps=fps,
        workdir=work,
        stripe_frequencies_hz=den.stripe_frequencies_hz or None,
        progress=progress,
    )
    progress("end")
    for (name, w0, c0), (_, w1, c1) in zip(marks, marks[1:], strict=False):
        for key, value in ((f"phase:{name}_s", w1 - w0), (f"phase:{name}_cpu_s", c1 - c0)):
            times[key] = times.get(key, 0.0) + value
    lap("extraction")
    np.savez(
        out_npz,
        centers=np.asarray(res.centers, dtype=np.float64),
        C=np.asarray(res.C, dtype=np.float32),
        shifts=np.asarray(mot.shifts_rigid, dtype=np.float64),
    )
    return times
