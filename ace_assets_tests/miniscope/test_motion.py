"""Rigid and piecewise-rigid registration recover known synthetic motion."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ace_assets.errors import AceInputError
from ace_assets.io.store import ArrayStore, ArrayStoreWriter
from ace_assets.miniscope.chunks import ArraySink
from ace_assets.miniscope.motion import MotionParams, estimate_template, motion_correct
from ace_assets.miniscope.registration import (
    HighPass,
    PatchGrid,
    ShiftField,
    high_pass,
    high_pass_kernel,
    subpixel_offsets,
)

H = W = 128
PAD = 24
RIGID = MotionParams(pw_rigid=False, max_shifts=(8, 8), gSig_filt=(3.0, 3.0))
PW = MotionParams(
    pw_rigid=True,
    max_shifts=(8, 8),
    gSig_filt=(3.0, 3.0),
    strides=(32, 32),
    overlaps=(16, 16),
    max_deviation_rigid=4,
)


def make_scene(seed: int = 0) -> np.ndarray:
    """A 1-photon-like field: vignetted background plus many small cells, with margin."""
    rng = np.random.default_rng(seed)
    size = H + 2 * PAD
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    scene = 50 + 40 * np.exp(-((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / (2 * 70.0**2))
    for _ in range(120):
        cy, cx = rng.uniform(0, size, 2)
        scene += rng.uniform(15, 50) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 2.5**2))
    return scene.astype(np.float32)


def render(scene: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Frame whose content is the scene moved by (dy, dx) (scalars or (H, W) fields)."""
    ys, xs = np.mgrid[:H, :W].astype(np.float32)
    map_x = (xs + PAD - dx).astype(np.float32)
    map_y = (ys + PAD - dy).astype(np.float32)
    return cv2.remap(scene, map_x, map_y, cv2.INTER_CUBIC)


def rigid_movie(n: int = 100, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scene = make_scene(seed)
    walk = np.cumsum(rng.normal(0, 0.8, (n, 2)), axis=0)
    moves = np.clip(walk - np.median(walk, axis=0), -6, 6)
    frames = np.stack([render(scene, m[0], m[1]) for m in moves])
    frames += rng.normal(0, 2.0, frames.shape).astype(np.float32)
    return frames, moves, scene


def run(frames: np.ndarray, params: MotionParams, **kw: object) -> tuple[np.ndarray, dict]:
    sink = ArraySink(frames.shape, np.float32)
    report = motion_correct(frames, len(frames), frames.shape[1:], params, sink, **kw)
    return sink.array, report


def test_subpixel_fit_exact_on_gaussian_peak() -> None:
    for true in (-0.4, -0.1, 0.0, 0.25, 0.49):
        x = np.array([-1.0, 0.0, 1.0]) - true
        m, c, p = np.exp(-(x**2) / (2 * 1.7**2))
        assert subpixel_offsets(c, m, p) == pytest.approx(true, abs=1e-9)


def test_high_pass_kernel_is_zero_mean_band_pass() -> None:
    ker = high_pass_kernel((7.0, 7.0))
    assert ker.shape == (21, 21) and abs(ker.sum()) < 1e-9
    flat = np.full((40, 40), 100.0, np.float32)
    assert np.abs(high_pass(flat, (3.0, 3.0))).max() < 1e-3
    # the padded-DFT version equals CaImAn's filter2D with reflecting borders
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:70, :90]
    frame = 100 * np.exp(-((yy - 10) ** 2 + (xx - 80) ** 2) / 800.0) + rng.normal(0, 5, yy.shape)
    for gsig in [(3.0, 3.0), (7.0, 5.0)]:
        fast = HighPass((70, 90), gsig).apply(frame)
        np.testing.assert_allclose(fast, high_pass(frame, gsig), atol=2e-3)


def test_rigid_shifts_recovered_subpixel() -> None:
    frames, moves, scene = rigid_movie()
    out, report = run(frames, RIGID)
    est = report.shifts_rigid
    assert est.shape == (len(frames), 2) and est.dtype == np.float32
    err = est + moves  # the correction is minus the motion, up to the template's offset
    offset = np.median(err, axis=0)
    assert np.abs(offset).max() < 1.0
    assert np.median(np.abs(err - offset)) < 0.3
    assert np.percentile(np.abs(err - offset), 95) < 0.6
    assert report.mean_corr_after > report.mean_corr_before + 0.05
    assert report.crispness_after > 1.2 * report.crispness_before
    assert report.max_shift == pytest.approx(np.abs(est).max())
    # with the true template there is no offset at all
    truth_template = scene[PAD : PAD + H, PAD : PAD + W]
    _, exact = run(frames, RIGID, template=truth_template)
    assert np.median(np.abs(exact.shifts_rigid + moves)) < 0.3


def test_template_refinement_sharpens() -> None:
    frames, _, scene = rigid_movie(n=80, seed=4)
    truth = scene[PAD : PAD + H, PAD : PAD + W]
    inner = (slice(10, -10), slice(10, -10))

    def r(a: np.ndarray) -> float:
        return float(np.corrcoef(a[inner].ravel(), truth[inner].ravel())[0, 1])

    plain = estimate_template(
        frames, 80, (H, W), MotionParams(**{**RIGID.__dict__, "template_iterations": 0})
    )
    refined = estimate_template(frames, 80, (H, W), RIGID)
    assert r(refined) > r(plain) + 0.03 and r(refined) > 0.95


def test_max_shifts_bound() -> None:
    scene = make_scene(2)
    frames = np.stack([render(scene, 0.0, 0.0)] * 5 + [render(scene, 0.0, 10.0)] * 5)
    params = MotionParams(pw_rigid=False, max_shifts=(4, 4), gSig_filt=(3.0, 3.0))
    _, report = run(frames, params, template=frames[0])
    assert np.abs(report.shifts_rigid).max() <= 4.0 + 1e-6
    _, report = run(
        frames, MotionParams(**{**params.__dict__, "max_shifts": (12, 12)}), template=frames[0]
    )
    assert report.shifts_rigid[-1, 1] == pytest.approx(-10.0, abs=0.3)


def nonrigid_movie(n: int = 60, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rigid drift plus a smooth wave deformation of up to ~3 px that changes over time."""
    rng = np.random.default_rng(seed)
    scene = make_scene(seed)
    ys, xs = np.mgrid[:H, :W].astype(np.float32)
    fields = np.empty((n, 2, H, W), np.float32)
    frames = np.empty((n, H, W), np.float32)
    for t in range(n):
        a, b = 3.0 * np.sin(0.2 * t + 1), 3.0 * np.cos(0.15 * t)
        rigid = rng.uniform(-2, 2, 2) if t else np.zeros(2)
        fields[t, 0] = rigid[0] + a * np.sin(2 * np.pi * xs / W)
        fields[t, 1] = rigid[1] + b * np.sin(2 * np.pi * ys / H)
        frames[t] = render(scene, fields[t, 0], fields[t, 1])
    frames += rng.normal(0, 1.5, frames.shape).astype(np.float32)
    return frames, fields, scene


def test_pw_rigid_beats_rigid_on_nonrigid_motion() -> None:
    frames, fields, scene = nonrigid_movie()
    truth = scene[PAD : PAD + H, PAD : PAD + W]
    template = truth
    rigid_out, rigid_rep = run(frames, RIGID, template=template)
    patch_sink = ArraySink((len(frames), 4, 4, 2), np.float32)
    pw_out, pw_rep = run(frames, PW, template=template, patch_shift_writer=patch_sink)
    assert pw_rep.patch_grid["starts_y"] == [0, 32, 64, 80]

    # displacement error at the patch centres, against the true field there
    grid = PatchGrid.build((H, W), PW.strides, PW.overlaps)
    cy = np.round(grid.centres_y).astype(int)
    cx = np.round(grid.centres_x).astype(int)
    true_at = -fields[:, :, cy[:, None], cx[None, :]].transpose(0, 2, 3, 1)  # (T, ny, nx, 2)
    pw_err = np.abs(patch_sink.array - true_at)
    rigid_err = np.abs(rigid_rep.shifts_rigid[:, None, None, :] - true_at)
    assert np.median(pw_err) < 0.5 * np.median(rigid_err)
    assert np.median(pw_err) < 0.5

    inner = (slice(None), slice(12, -12), slice(12, -12))

    def corr(movie: np.ndarray) -> float:
        return float(
            np.corrcoef(movie[inner].ravel(), np.broadcast_to(truth, movie.shape)[inner].ravel())[
                0, 1
            ]
        )

    assert corr(pw_out) > corr(rigid_out) + 0.02
    assert pw_rep.mean_corr_after > rigid_rep.mean_corr_after
    assert pw_rep.pw_max_deviation.max() <= PW.max_deviation_rigid + 1e-5


def test_shift_field_interpolates_patch_centres() -> None:
    grid = PatchGrid.build((H, W), (32, 32), (15, 15))  # odd size 47: integer centres
    field = ShiftField((H, W), grid)
    values = np.arange(16, dtype=np.float32).reshape(4, 4)
    full = field.full(values)
    cy = grid.centres_y.astype(int)
    cx = grid.centres_x.astype(int)
    np.testing.assert_array_equal(grid.centres_y, cy)
    np.testing.assert_allclose(full[cy][:, cx], values, atol=1e-5)
    # linear in between, constant beyond the outer centres
    mid = (cy[0] + cy[1]) // 2
    expected = values[0] + (values[1] - values[0]) * (mid - cy[0]) / (cy[1] - cy[0])
    np.testing.assert_allclose(full[mid][cx], expected, atol=1e-5)
    np.testing.assert_allclose(full[0][cx], values[0], atol=1e-5)
    np.testing.assert_allclose(full[-1][cx], values[-1], atol=1e-5)
    # exact bilinear everywhere (a remap of the grid rounded positions to 1/32 of a step)
    rough = np.random.default_rng(0).normal(0, 3, (4, 4)).astype(np.float32)
    rows = np.stack([np.interp(np.arange(H), grid.centres_y, rough[:, j]) for j in range(4)], 1)
    want = np.stack([np.interp(np.arange(W), grid.centres_x, r) for r in rows])
    np.testing.assert_allclose(field.full(rough), want, atol=1e-4)
    map_x, map_y = field.maps(np.stack([rough, -rough], axis=-1))
    np.testing.assert_allclose(map_x, field.base_x + want, atol=1e-4)
    np.testing.assert_allclose(map_y, field.base_y - want, atol=1e-4)


@pytest.mark.parametrize(("border", "check"), [("copy", "finite"), (True, "nan"), (False, "zero")])
def test_border_modes(border: object, check: str) -> None:
    scene = make_scene(5)
    frames = np.stack([render(scene, 0, 0), render(scene, 0, 6.0)])
    params = MotionParams(**{**RIGID.__dict__, "border_nan": border})
    out, _ = run(frames, params, template=frames[0])
    edge = out[1, :, -4:]
    if check == "finite":
        assert np.isfinite(out).all()
    elif check == "nan":
        assert np.isnan(edge).all() and np.isfinite(out[1, 5:-5, 5:100]).all()
    else:
        assert (edge == 0).all()


def test_streams_store_to_store_independent_of_chunking_and_threads(tmp_path: Path) -> None:
    frames, _, _ = rigid_movie(n=40, seed=7)
    with ArrayStoreWriter(tmp_path / "in.npyd", frames.shape, np.float32) as w:
        w.write(0, frames)
        w.commit()
    source = ArrayStore(tmp_path / "in.npyd")
    template = estimate_template(source, 40, (H, W), PW)
    outs, reports = [], []
    for chunk, threads in ((7, 1), (40, 1), (7, 3)):
        name = f"out{chunk}_{threads}.npyd"
        with ArrayStoreWriter(tmp_path / name, frames.shape, np.float32) as w:
            rep = motion_correct(
                source, 40, (H, W), PW, w, template=template, chunk_frames=chunk, threads=threads
            )
            w.commit()
        outs.append(ArrayStore(tmp_path / name).read())
        reports.append(rep)
    np.testing.assert_array_equal(outs[0], outs[1])
    # frames measured and warped on several threads: the same movie and QC, in frame order
    np.testing.assert_array_equal(outs[0], outs[2])
    for field in ("shifts_rigid", "corr_before", "corr_after", "mean_after", "pw_max_deviation"):
        np.testing.assert_array_equal(getattr(reports[0], field), getattr(reports[2], field))


def test_params_from_csv_values() -> None:
    p = MotionParams.from_mapping(
        {
            "max_shifts": (15, 15),
            "gSig_filt": 7,
            "strides": [48, 48],
            "border_nan": "copy",
            "pw_rigid": "",  # an empty cell keeps the default
        }
    )
    assert p.max_shifts == (15, 15) and p.gSig_filt == (7.0, 7.0) and p.pw_rigid is True
    assert MotionParams.from_mapping({"max_shifts": 6}).max_shifts == (6, 6)
    assert MotionParams.from_mapping({"border_nan": "False"}).border_nan is False
    with pytest.raises(AceInputError, match="unknown motion"):
        MotionParams.from_mapping({"maxshift": 3})
    with pytest.raises(AceInputError, match="border_nan"):
        MotionParams.from_mapping({"border_nan": "edge"})
    with pytest.raises(AceInputError, match="too small"):
        MotionParams(strides=(16, 16), overlaps=(8, 8)).validate((128, 128))
    with pytest.raises(AceInputError, match="max_shifts"):
        MotionParams(pw_rigid=False, max_shifts=(40, 40)).validate((64, 64))


def test_template_images_are_the_same_from_random_access_or_a_stream_on_any_threads() -> None:
    """The template's images are read and averaged on threads when the source allows
    random access, and in one stream otherwise (bins of 3 across blocks of 16 frames):
    the same template either way, on 1 or 3 threads."""
    from ace_assets.miniscope.motion_template import build_template

    frames, _, _ = rigid_movie(n=90)
    params = MotionParams(
        pw_rigid=False,
        max_shifts=(8, 8),
        gSig_filt=(3.0, 3.0),
        template_frames=25,
        template_bin=3,
        template_blocks=2,
    )

    def stream():
        return ((s, frames[s : s + 16]) for s in range(0, len(frames), 16))

    made = [
        build_template(src, len(frames), (H, W), params, threads=threads)
        for src in (frames, stream)
        for threads in (1, 3)
    ]
    for template, info in made[1:]:
        np.testing.assert_array_equal(template, made[0][0])
        np.testing.assert_array_equal(info.used, made[0][1].used)
    assert made[0][1].bin == 3


def test_a_frame_measured_from_its_kept_spectrum_is_measured_the_same() -> None:
    """The template's later rounds measure each image from the spectrum kept in the first:
    lag, confidence and window equal a fresh measurement bit for bit, against either half."""
    from ace_assets.miniscope.registrar import Registrar

    frames, _, _ = rigid_movie(n=6, seed=9)
    first, second = (Registrar(frames[i], RIGID) for i in (0, 1))
    for frame in frames[2:]:
        spec = first.spectrum(frame)  # the same spectrum whichever registrar makes it
        np.testing.assert_array_equal(spec, second.spectrum(frame))
        for reg in (first, second):
            fresh, kept = reg.measure(frame, pw=False), reg.measure_spectrum(spec)
            np.testing.assert_array_equal(kept.lag, fresh.lag)
            assert kept.confidence == fresh.confidence
            np.testing.assert_array_equal(kept.window, fresh.window)


@pytest.mark.parametrize("rounds", [1, 3])
def test_templates_refined_over_several_rounds_do_not_depend_on_threads(rounds: int) -> None:
    """With more than one round the spectra kept in scratch feed rounds 2 and on; one round
    keeps none. Either way the template sharpens and is the same on 1 or 3 threads."""
    from ace_assets.miniscope.motion_template import build_template

    frames, _, scene = rigid_movie(n=80, seed=4)
    params = MotionParams(**{**RIGID.__dict__, "template_iterations": rounds})
    made = [build_template(frames, 80, (H, W), params, threads=t) for t in (1, 3)]
    np.testing.assert_array_equal(made[1][0], made[0][0])
    np.testing.assert_array_equal(made[1][1].used, made[0][1].used)
    truth = scene[PAD : PAD + H, PAD : PAD + W][10:-10, 10:-10].ravel()
    assert np.corrcoef(made[0][0][10:-10, 10:-10].ravel(), truth)[0, 1] > 0.95
