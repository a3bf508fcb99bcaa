"""Which footprints of two sessions are the same cell: distance, overlap, one-to-one.

Why: after the fields of view are aligned (:mod:`session_alignment`), a cell seen in both
sessions has footprints at nearly the same place with nearly the same shape, while two
different cells are at least a cell diameter apart. Each pair gets a score
``overlap * (1 - (distance / max_distance)^2)`` (overlap: cosine similarity of the two
footprints on the reference frame; distance: between their centres of mass), pairs
farther than ``max_distance`` or overlapping less than ``MIN_OVERLAP`` are impossible, and
the Hungarian assignment (``scipy.optimize.linear_sum_assignment``) picks the one-to-one
matching of highest total score, as CaImAn's ``register_ROIs`` does with its Jaccard cost.

``max_distance`` comes from the neuron size ``gSig`` (a Gaussian SD in px): cells in one
session are rarely closer than about 3 gSig, so a centre moved by more than
``MAX_DISTANCE_GSIG * gSig`` after alignment is another cell. A match's ``confidence``
is its score less the best score either cell has with any other partner: near 1 for a
well-aligned, isolated cell; near 0 when a neighbour would have done almost as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from ace_assets.miniscope.session_alignment import SessionTransform

#: largest centre distance (in gSig) between two footprints of one cell after alignment
MAX_DISTANCE_GSIG = 2.0
#: smallest footprint cosine similarity of a match
MIN_OVERLAP = 0.3


@dataclass(frozen=True)
class Footprints:
    """Footprints on one frame: unit-norm sparse columns (H*W, N) and centres (N, 2)."""

    A: sp.csc_matrix
    centers: np.ndarray
    dims: tuple[int, int]


def max_distance(gsig: float) -> float:
    """Centre distance (px) beyond which two footprints are never the same cell."""
    return MAX_DISTANCE_GSIG * float(gsig)


def _normalized(a: sp.spmatrix) -> sp.csc_matrix:
    a = sp.csc_matrix(a, dtype=np.float64)
    norms = np.sqrt(np.asarray(a.multiply(a).sum(axis=0))).ravel()
    norms[norms == 0] = 1.0
    return sp.csc_matrix(a @ sp.diags(1.0 / norms))


def on_own_frame(a: sp.spmatrix, dims: tuple[int, int]) -> Footprints:
    """Footprints of a session as stored (row-major pixels), on their own frame."""
    a = _normalized(a)
    h, w = dims
    pix = np.arange(h * w)
    ys, xs = pix // w, pix % w
    mass = np.asarray(a.multiply(a).sum(axis=0)).ravel()
    mass[mass == 0] = 1.0
    sq = a.multiply(a).tocsc()
    centers = np.column_stack([(sq.T @ ys) / mass, (sq.T @ xs) / mass])
    return Footprints(a, centers.reshape(-1, 2), (int(h), int(w)))


def to_reference(a: sp.spmatrix, dims: tuple[int, int], transform: SessionTransform) -> Footprints:
    """A moving session's footprints resampled on the reference frame (bilinear splat).

    Each footprint pixel is mapped by ``transform.to_reference`` and its value spread over
    the four nearest reference pixels; what falls outside the reference frame is dropped.
    Centres are computed from the mapped pixels themselves.
    """
    a = sp.csc_matrix(a, dtype=np.float64)
    h, w = dims
    hr, wr = transform.shape
    coo = a.tocoo()
    pts = transform.to_reference(np.column_stack([coo.row // w, coo.row % w]).astype(float))
    weights = coo.data**2
    n = a.shape[1]
    mass = np.bincount(coo.col, weights=weights, minlength=n)
    safe = np.where(mass > 0, mass, 1.0)
    centers = np.column_stack(
        [
            np.bincount(coo.col, weights=weights * pts[:, 0], minlength=n) / safe,
            np.bincount(coo.col, weights=weights * pts[:, 1], minlength=n) / safe,
        ]
    )
    y0, x0 = np.floor(pts[:, 0]), np.floor(pts[:, 1])
    fy, fx = pts[:, 0] - y0, pts[:, 1] - x0
    rows, cols, vals = [], [], []
    for dy, dx, wgt in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        yy, xx = (y0 + dy).astype(np.int64), (x0 + dx).astype(np.int64)
        ok = (yy >= 0) & (yy < hr) & (xx >= 0) & (xx < wr) & (wgt > 0)
        rows.append(yy[ok] * wr + xx[ok])
        cols.append(coo.col[ok])
        vals.append(coo.data[ok] * wgt[ok])
    out = sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(hr * wr, n)
    )
    out.sum_duplicates()
    return Footprints(_normalized(out), centers.reshape(-1, 2), (int(hr), int(wr)))


@dataclass(frozen=True)
class Matches:
    """One-to-one pairs ``(ref[k], mov[k])`` (indices into the two footprint sets)."""

    ref: np.ndarray
    mov: np.ndarray
    distance_px: np.ndarray
    overlap: np.ndarray
    score: np.ndarray
    confidence: np.ndarray
    #: every candidate pair's centre distance, for the histogram (px, within 2 max_distance)
    candidate_distances: np.ndarray


def match_footprints(ref: Footprints, mov: Footprints, gsig: float) -> Matches:
    """The highest-scoring one-to-one matching of ``mov`` to ``ref`` (see the module doc)."""
    if ref.dims != mov.dims:
        raise ValueError(f"footprints on frames {ref.dims} and {mov.dims}: map them first")
    d_max = max_distance(gsig)
    n_ref, n_mov = ref.A.shape[1], mov.A.shape[1]
    empty = np.zeros(0)
    if n_ref == 0 or n_mov == 0:
        return Matches(empty.astype(int), empty.astype(int), empty, empty, empty, empty, empty)
    dist = np.sqrt(((ref.centers[:, None, :] - mov.centers[None, :, :]) ** 2).sum(-1))
    overlap = np.asarray((ref.A.T @ mov.A).todense())
    score = overlap * np.clip(1.0 - (dist / d_max) ** 2, 0.0, None)
    possible = (dist <= d_max) & (overlap >= MIN_OVERLAP) & (score > 0)
    score = np.where(possible, score, 0.0)
    rows, cols = linear_sum_assignment(-score)
    keep = possible[rows, cols]
    rows, cols = rows[keep], cols[keep]
    chosen = score[rows, cols]
    runner_up = np.zeros(len(rows))
    for k, (i, j) in enumerate(zip(rows, cols, strict=True)):
        others = np.r_[np.delete(score[i], j), np.delete(score[:, j], i)]
        runner_up[k] = others.max() if len(others) else 0.0
    return Matches(
        ref=rows.astype(np.int64),
        mov=cols.astype(np.int64),
        distance_px=dist[rows, cols],
        overlap=overlap[rows, cols],
        score=chosen,
        confidence=np.clip(chosen - runner_up, 0.0, 1.0),
        candidate_distances=dist[dist <= 2 * d_max],
    )
