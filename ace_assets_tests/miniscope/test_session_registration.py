"""Cross-session registration on generated sessions of one animal: the same cells are found
again after the field of view shifts and turns, cells that appear or vanish stay apart, and
unrelated sessions share (almost) nothing.

Summary images are the correlation images of the rendered movies (background texture,
bands, noise, motion included); footprints are the true ones, each distorted, with a few
cells missed and a few spurious blobs added, as an extraction would deliver them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.ndimage import map_coordinates

from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope
from ace_assets.demo.sessions_synth import SessionChange, related_session
from ace_assets.miniscope.extraction.summary_images import correlation_pnr
from ace_assets.miniscope.footprint_matching import max_distance
from ace_assets.miniscope.session_alignment import SessionTransform, align_session
from ace_assets.miniscope.session_registry import Session, register_sessions


@dataclass(frozen=True)
class Found:
    """A session as an extraction reports it, and which true neuron each component is."""

    session: Session
    truth_index: np.ndarray  # per component: the generator's neuron, -1 for a spurious one


def extracted(
    movie: SyntheticMiniscope,
    key: int,
    seed: int,
    *,
    crop: tuple[int, int, int, int] | None = None,
    miss: float = 0.05,
    n_spurious: int = 2,
) -> Found:
    """Correlation image of the movie, and perturbed true footprints (some missed)."""
    rng = np.random.default_rng(seed)
    frames = movie.frames(0, movie.n_frames).astype(np.float32)
    r = movie.config.neuron_radius
    gsig = (int(round(r)), int(round(r)))
    image = correlation_pnr(frames, gsig)[0]
    fps = movie.footprints
    keep = np.flatnonzero(rng.uniform(size=len(fps)) >= miss)
    h, w = movie.height, movie.width
    yy, xx = np.mgrid[0:h, 0:w]
    blobs = []
    for _ in range(n_spurious):
        cy, cx = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
        blobs.append(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2)))
    stack = [fps[k] * rng.uniform(0.7, 1.3, size=(h, w)) for k in keep] + blobs
    stack = [np.where(f > 0.05 * f.max(), f, 0.0) for f in stack]
    truth_index = np.r_[keep, np.full(n_spurious, -1)].astype(np.int64)
    y0, x0 = 0, 0
    if crop is not None:
        x0, y0, x1, y1 = crop
        image = image[y0:y1, x0:x1]
        stack = [f[y0:y1, x0:x1] for f in stack]
    order = rng.permutation(len(stack))  # component order says nothing about the truth
    a = sp.csc_matrix(np.stack([stack[i].ravel() for i in order], axis=1))
    ids = np.arange(len(order)) + 100 * key
    return Found(Session(key, a, ids, image, origin=(y0, x0)), truth_index[order])


def scores(
    found: list[Found], same_as: list[np.ndarray], gsig: float
) -> tuple[float, float, int, dict]:
    """Precision and recall of the pairs the registration puts under one global id.

    ``same_as[k]``: per neuron of session k, the index of the same neuron in session 0
    (-1: not there). A true pair is two components, in session 0 and k, of the same cell.
    Pairs with a spurious component (no neuron: an extraction error) are counted apart, as
    the demo's scoring does (:mod:`ace_assets.demo.registration_truth`).
    """
    reg = register_sessions([f.session for f in found], gsig)
    table = reg.table
    ref = found[0]
    tp = n_found = n_true = with_spurious = 0
    for k in range(1, len(found)):
        f = found[k]
        ref_truth = {int(c): int(t) for c, t in zip(ref.session.ids, ref.truth_index, strict=True)}
        mov_truth = {int(c): int(t) for c, t in zip(f.session.ids, f.truth_index, strict=True)}
        ref_cell = {t: c for c, t in ref_truth.items() if t >= 0}
        true_pairs = {
            (ref_cell[int(same_as[k][t])], c)
            for c, t in mov_truth.items()
            if t >= 0 and same_as[k][t] >= 0 and int(same_as[k][t]) in ref_cell
        }
        by_id = table.groupby("global_id")
        found_pairs = set()
        for _, rows in by_id:
            sessions = dict(zip(rows["session"], rows["component"], strict=True))
            if ref.session.key in sessions and f.session.key in sessions:
                found_pairs.add((int(sessions[ref.session.key]), int(sessions[f.session.key])))
        real = {p for p in found_pairs if ref_truth[p[0]] >= 0 and mov_truth[p[1]] >= 0}
        with_spurious += len(found_pairs - real)
        tp += len(true_pairs & real)
        n_found += len(real)
        n_true += len(true_pairs)
    precision = tp / max(n_found, 1)
    recall = tp / max(n_true, 1)
    info = {"reg": reg, "tp": tp, "n_true": n_true, "with_spurious": with_spurious}
    return precision, recall, n_found, info


CASES = {
    "128 blobs, 5 px and 3 deg": (
        MiniscopeSynthConfig(height=128, width=128, n_frames=300, n_neurons=30, seed=1),
        SessionChange(shift=(5.0, -7.0), rotation_deg=3.0),
        3.0,
    ),
    "200x260 vessels, 18 px and -5 deg": (
        MiniscopeSynthConfig(
            height=200,
            width=260,
            n_frames=300,
            n_neurons=45,
            neuron_radius=4.0,
            texture="vessels",
            seed=2,
        ),
        SessionChange(shift=(-12.0, 18.0), rotation_deg=-5.0, shared_fraction=0.6),
        4.0,
    ),
    "160 flat, small cells, 1 px and 1 deg": (
        MiniscopeSynthConfig(
            height=160,
            width=160,
            n_frames=300,
            n_neurons=40,
            neuron_radius=2.5,
            texture="flat",
            seed=3,
        ),
        SessionChange(shift=(1.0, 1.5), rotation_deg=1.0, shared_fraction=0.9),
        2.5,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_cells_found_across_two_sessions(name: str) -> None:
    base_cfg, change, gsig = CASES[name]
    base = SyntheticMiniscope(base_cfg)
    related = related_session(base, change, seed=base_cfg.seed + 50)
    other = SyntheticMiniscope(related.config)
    found = [extracted(base, 1, 10), extracted(other, 2, 11)]
    precision, recall, n_found, info = scores(found, [np.array([]), related.same_as], gsig)
    assert info["n_true"] >= 10, info
    assert precision >= 0.95 and recall >= 0.9, (precision, recall, info["tp"], n_found)
    assert info["with_spurious"] <= 2  # at most the spurious blobs of one session
    reg = info["reg"]
    t = reg.transforms[2]
    # the estimated turn is the generator's (the reference maps onto the moved session)
    assert t.angle_deg == pytest.approx(change.rotation_deg, abs=0.5)
    matched = reg.table[(reg.table["session"] == 2) & reg.table["distance_px"].notna()]
    assert (matched["distance_px"] <= max_distance(gsig)).all()
    assert matched["confidence"].between(0, 1).all()


def test_a_smooth_deformation_is_followed_by_the_bounded_field() -> None:
    """The tissue also warps by up to 2 px (2/3 of a neuron size): the non-rigid field
    takes it up, so matched centres end within a pixel or so."""
    base_cfg = MiniscopeSynthConfig(
        height=256, width=256, n_frames=300, n_neurons=90, texture="vessels", seed=1
    )
    change = SessionChange(shift=(8.0, -5.0), rotation_deg=2.0, warp_amplitude=2.0)
    base = SyntheticMiniscope(base_cfg)
    related = related_session(base, change, seed=51)
    found = [extracted(base, 1, 10), extracted(SyntheticMiniscope(related.config), 2, 11)]
    precision, recall, _, info = scores(found, [np.array([]), related.same_as], 3.0)
    assert precision >= 0.95 and recall >= 0.9, (precision, recall, info["tp"], info["n_true"])
    t = info["reg"].transforms[2]
    assert t.field is not None and np.abs(t.field).max() <= 2 * 3.0
    rigid = align_session(found[0].session.image, found[1].session.image, 3.0, nonrigid=False)
    assert t.correlation > rigid.correlation + 0.02
    matched = info["reg"].table.query("session == 2")["distance_px"].dropna()
    assert matched.median() < 1.0, matched.describe()


def test_transform_round_trip() -> None:
    """to_reference inverts to_moving, the non-rigid field included."""
    gy, gx = np.linspace(10, 90, 4), np.linspace(10, 110, 5)
    yy, xx = np.meshgrid(gy, gx, indexing="ij")
    field = np.stack([1.5 * np.sin(xx / 30), -1.2 * np.cos(yy / 25)])
    t = SessionTransform(
        (100, 120), 4.0, (3.0, -6.0), (2.0, 5.0), field=field, grid_y=gy, grid_x=gx
    )
    pts = np.random.default_rng(0).uniform([0, 0], [100, 120], size=(200, 2))
    assert np.abs(t.to_reference(t.to_moving(pts)) - pts).max() < 1e-3
    # warp() samples the moving image where to_moving says
    image = np.random.default_rng(1).normal(size=(110, 130)).astype(np.float32)
    image = cv2.GaussianBlur(image, (0, 0), 3)
    warped = t.warp(image)
    inner = pts[(pts[:, 0] > 15) & (pts[:, 0] < 85) & (pts[:, 1] > 15) & (pts[:, 1] < 105)]
    src = t.to_moving(inner)
    expected = map_coordinates(image, src.T, order=1)
    got = map_coordinates(warped, inner.T, order=1)
    assert np.abs(got - expected).max() < 0.05 * np.abs(image).max()


def test_three_sessions_share_global_ids_and_a_cell_missing_from_the_reference() -> None:
    base_cfg = MiniscopeSynthConfig(height=140, width=140, n_frames=300, n_neurons=32, seed=7)
    base = SyntheticMiniscope(base_cfg)
    second = related_session(base, SessionChange((4.0, 6.0), 2.0, 0.75), seed=70)
    # the third is the second seen again: its cells are the second's, moved a little more
    movie2 = SyntheticMiniscope(second.config)
    third = related_session(movie2, SessionChange((-3.0, 2.0), -1.5, 0.85), seed=71)
    movie3 = SyntheticMiniscope(third.config)
    found = [extracted(base, 1, 1, miss=0), extracted(movie2, 2, 2, miss=0)]
    found.append(extracted(movie3, 3, 3, miss=0))
    reg = register_sessions([f.session for f in found], 3.0)
    table = reg.table
    comp_truth = {
        (f.session.key, int(c)): int(t)
        for f in found
        for c, t in zip(f.session.ids, f.truth_index, strict=True)
    }
    # cells of session 3 that are session 2's but not the reference's share 2's global id
    hits = total = 0
    for n3, n2 in enumerate(third.same_as):
        if n2 < 0 or second.same_as[n2] >= 0:
            continue
        total += 1
        gid = {
            s: set(table.loc[(table.session == s) & (table.component == c), "global_id"])
            for (s, c), t in comp_truth.items()
            if (s == 2 and t == n2) or (s == 3 and t == n3)
        }
        hits += bool(gid.get(2)) and gid.get(2) == gid.get(3)
    assert total >= 3 and hits / total >= 0.9, (hits, total)
    # every global id is at most one component per session
    assert not table.duplicated(["global_id", "session"]).any()
    wide = reg.wide()
    assert len(wide) == table["global_id"].nunique()
    assert (wide["n_sessions"] >= 1).all() and (wide["n_sessions"] == 3).sum() >= 10


def test_different_crops_of_one_session_map_back() -> None:
    """The same tissue cropped differently: frames of other sizes, matched via the crop corner."""
    base_cfg = MiniscopeSynthConfig(height=128, width=128, n_frames=300, n_neurons=30, seed=5)
    base = SyntheticMiniscope(base_cfg)
    related = related_session(base, SessionChange((3.0, -2.0), 2.0), seed=55)
    other = SyntheticMiniscope(related.config)
    found = [extracted(base, 1, 1), extracted(other, 2, 2, crop=(6, 10, 120, 118))]
    precision, recall, _, info = scores(found, [np.array([]), related.same_as], 3.0)
    assert found[1].session.dims == (108, 114)
    assert precision >= 0.95 and recall >= 0.9, (precision, recall, info["tp"], info["n_true"])


def test_unrelated_sessions_share_no_cells() -> None:
    """Negative control: two animals (independent tissue) -> (almost) no matches."""
    for seed in (21, 22):
        a = SyntheticMiniscope(
            MiniscopeSynthConfig(height=128, width=128, n_frames=300, n_neurons=30, seed=seed)
        )
        b = SyntheticMiniscope(
            MiniscopeSynthConfig(height=128, width=128, n_frames=300, n_neurons=30, seed=seed + 9)
        )
        reg = register_sessions([extracted(a, 1, 1).session, extracted(b, 2, 2).session], 3.0)
        shared = reg.wide()["n_sessions"].eq(2).sum()
        assert shared <= 1, (shared, reg.transforms[2], reg.not_aligned)
        # refused for the right reason: no more close matches than its mirror images make
        assert "another field of view" in reg.not_aligned[2]
        evidence = reg.evidence[2]
        assert evidence["close_matches"] <= evidence["decoy_close_matches"] + 3, evidence


def test_a_session_sharing_few_cells_is_still_recognised() -> None:
    """Only 30% of the cells seen again (9 of 30): enough for the decoy test."""
    base = SyntheticMiniscope(
        MiniscopeSynthConfig(height=128, width=128, n_frames=300, n_neurons=30, seed=4)
    )
    related = related_session(base, SessionChange((5.0, -7.0), 3.0, 0.3), seed=54)
    found = [extracted(base, 1, 10), extracted(SyntheticMiniscope(related.config), 2, 11)]
    precision, recall, _, info = scores(found, [np.array([]), related.same_as], 3.0)
    assert info["n_true"] >= 6 and not info["reg"].not_aligned
    assert precision >= 0.95 and recall >= 0.9, (precision, recall, info["tp"], info["n_true"])


def test_one_session_is_a_trivial_table() -> None:
    movie = SyntheticMiniscope(MiniscopeSynthConfig(n_frames=100, n_neurons=10, seed=4))
    found = extracted(movie, 1, 1, miss=0, n_spurious=0)
    reg = register_sessions([found.session], 3.0)
    assert list(reg.table["global_id"]) == list(range(10))
    assert (reg.table["confidence"] == 1.0).all()
    assert reg.wide()["n_sessions"].eq(1).all()
