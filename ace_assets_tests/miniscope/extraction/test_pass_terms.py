"""A pass with the ring background folded into box sums equals one that forms ``B``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ace_assets.miniscope.extraction.background import (
    RingGeometry,
    RingModel,
    block_reduce_mean,
    decimation_matrix,
    upsample,
)
from ace_assets.miniscope.extraction.pass_terms import BoxRing, upsample_matrices
from ace_assets.miniscope.extraction.updates import (
    allowed_masks,
    footprint_centers,
    make_tiles,
    run_pass,
)


def _blobs(rng: np.random.Generator, dims: tuple[int, int], n: int) -> sp.csc_matrix:
    h, w = dims
    yy, xx = np.mgrid[0:h, 0:w]
    cols = []
    for _ in range(n):
        cy, cx = rng.uniform(2, h - 2), rng.uniform(2, w - 2)
        img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 1.8**2))
        img[img < 0.05] = 0
        cols.append(img.ravel())
    return sp.csc_matrix(np.stack(cols, axis=1).astype(np.float32))


def _explicit(frames, a, c, ring, tiles, active):
    """The definition: form ``B = b0 + U F (D(Y - b0) - A_ds C)`` and take the products."""
    geom = ring.geometry
    h, w = geom.dims
    a_ds = decimation_matrix((h, w), geom.factor) @ a
    z = frames - ring.b0
    xd = block_reduce_mean(z, geom.factor)
    xd = xd - (a_ds @ c).T.reshape(xd.shape)
    bfd = ring.fluctuation_ds(xd.astype(np.float32)).astype(np.float64)
    r = z - upsample(bfd.astype(np.float32), (h, w))
    u_c = np.zeros(c.shape)
    u_a, r_act = [], []
    a_csr = sp.csr_matrix(a)
    for t in tiles:
        pix = t.pixels(w)
        rt = r[:, t.y0 : t.y1, t.x0 : t.x1].reshape(len(frames), -1)
        u_a.append(c[t.comps] @ rt)
        r_act.append(active[t.comps] @ rt)
        u_c[t.comps] += (rt @ a_csr[pix][:, t.comps].toarray()).T
    bg_mean = bfd.reshape(len(frames), -1).mean(axis=1) + ring.b0.mean()
    return u_c, u_a, r_act, bg_mean


@pytest.mark.parametrize(
    ("dims", "factor", "radius", "reach"),
    [((37, 45), 2, 3, 5.0), ((30, 26), 1, 4, 5.0), ((40, 40), 2, 3, 2.5)],
)
def test_pass_equals_explicit_background(dims, factor, radius, reach):
    """``reach`` 2.5 px leaves footprint pixels in tiles that do not list the component:
    the model still subtracts them, the products do not see them."""
    rng = np.random.default_rng(3)
    h, w = dims
    t_len, n = 23, 7
    a = _blobs(rng, dims, n)
    c = rng.gamma(1.0, 2.0, (n, t_len)).astype(np.float32)
    geom = RingGeometry(dims, factor, radius, 2)
    hb, wb = geom.bg_dims
    weights = rng.normal(0, 0.3, (5, hb, wb)).astype(np.float32)
    b0 = (100 + 20 * rng.random(dims)).astype(np.float32)
    ring = RingModel(geom, weights, b0)
    # a smooth background plus the sources plus noise
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.sin(yy / 7.0)[None] * np.cos(xx / 9.0)[None] * rng.normal(5, 1, (t_len, 1, 1))
    frames = b0 + bg + (a @ c).T.reshape(t_len, h, w) + rng.normal(0, 1, (t_len, h, w))
    frames = frames.astype(np.float32)
    centers = footprint_centers(a, dims)
    mask = allowed_masks(a, dims, centers, dilate=1, max_radius=(reach, reach))
    tiles = make_tiles(mask, dims, 16 if reach > 3 else 8)
    active = (c > np.median(c, axis=1, keepdims=True)).astype(np.float32)
    active /= active.sum(axis=1, keepdims=True)

    chunks = [(t0, frames[t0 : t0 + 6]) for t0 in range(0, t_len, 6)]
    got = run_pass(iter(chunks), t_len, a, c, ring, tiles, mask=mask, active=active)
    u_c, u_a, r_act, bg_mean = _explicit(frames.astype(np.float64), a, c, ring, tiles, active)

    scale = np.abs(u_c).max()
    assert np.abs(got.u_c - u_c).max() < 2e-4 * scale
    np.testing.assert_allclose(got.background_mean, bg_mean, rtol=0, atol=1e-3)
    a_dense = a.toarray()
    m_dense = mask.toarray()
    for ti, t in enumerate(tiles):
        pix = t.pixels(w)
        for loc, k in enumerate(t.comps):
            need = m_dense[pix, k] | (a_dense[pix, k] != 0)
            for acc, ref in ((got.u_a, u_a), (got.r_act, r_act)):
                row, want = acc[ti][loc], ref[ti][loc]
                assert np.all(np.isfinite(row[need]))  # delivered wherever it is read
                tol = 2e-4 * np.abs(want).max()
                assert np.abs(row[need] - want[need]).max() < tol


def test_upsample_matrices_reproduce_the_resize():
    rng = np.random.default_rng(0)
    for bg, dims in (((19, 23), (37, 45)), ((15, 13), (30, 26)), ((8, 8), (8, 8))):
        x = rng.normal(size=bg).astype(np.float32)
        uy, ux = upsample_matrices(bg, dims)
        np.testing.assert_allclose(uy @ x @ ux.T, upsample(x[None], dims)[0], atol=1e-5)


def test_box_ring_adjoint_is_the_transpose():
    """<F x, v> == <x, F^T v> on the whole grid, and F matches the ring features."""
    rng = np.random.default_rng(1)
    geom = RingGeometry((40, 34), 2, 3, 2)
    hb, wb = geom.bg_dims
    ring = RingModel(geom, rng.normal(size=(5, hb, wb)).astype(np.float32), np.zeros((40, 34)))
    box_ring = BoxRing(ring)
    x, v = rng.normal(size=(hb, wb)), rng.normal(size=(hb, wb))
    full = (0, hb, 0, wb)
    fx = box_ring.forward(x, full)
    np.testing.assert_allclose(
        fx, ring.fluctuation_ds(x[None].astype(np.float32))[0], rtol=1e-4, atol=1e-4
    )
    assert abs(np.vdot(fx, v) - np.vdot(x, box_ring.adjoint(v, full))) < 1e-9 * np.abs(fx).sum()
