"""Merge components that overlap in space and whose traces correlate above ``merge_thr``
(and, with ``del_duplicates``, near-identical footprints).

Groups are the connected components of the graph "footprints share a pixel AND trace
correlation > merge_thr" (CaImAn's ``merge_components``). A group is replaced by the rank-1
non-negative approximation of ``sum_j a_j c_j^T``, computed with ``A_group`` and
``C_group`` only (never pixels x frames): ``c = (a^T A_g) C_g / |a|^2``,
``a = A_g (C_g c^T) / |c|^2``. The merged component keeps the smallest original id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components


@dataclass
class MergeResult:
    a: sp.csc_matrix
    c_raw: np.ndarray  # merged raw traces (not yet deconvolved)
    ids: np.ndarray
    merged: list[list[int]]  # groups of original ids that were merged
    changed: np.ndarray  # bool per output component: needs re-deconvolution


def trace_correlations(c: np.ndarray) -> np.ndarray:
    x = c.astype(np.float64) - c.mean(axis=1, keepdims=True)
    nrm = np.sqrt((x * x).sum(axis=1))
    nrm[nrm == 0] = np.inf
    x /= nrm[:, None]
    return x @ x.T


def merge_components(
    a: sp.csc_matrix,
    c: np.ndarray,
    c_raw: np.ndarray,
    ids: np.ndarray,
    thr: float,
    *,
    dup_thr: float | None = None,
    iters: int = 10,
) -> MergeResult:
    """Merge overlapping, correlated components; ``c`` (denoised) decides, ``c_raw`` merges.

    ``dup_thr`` (``del_duplicates``): also merge footprints whose cosine similarity is at
    least this, whatever their traces — one neuron initialised twice splits its events
    between the copies, so their traces need not correlate.
    """
    a = sp.csc_matrix(a, dtype=np.float32)
    n = a.shape[1]
    if n < 2:
        return MergeResult(a, c_raw.copy(), ids.copy(), [], np.zeros(n, dtype=bool))
    gram = (a.T @ a).toarray().astype(np.float64)
    overlap = gram > 0
    corr = trace_correlations(c)
    graph = overlap & (corr > thr)
    if dup_thr is not None:
        nrm = np.sqrt(np.maximum(np.diag(gram), 1e-30))
        graph |= gram / np.outer(nrm, nrm) >= dup_thr
    np.fill_diagonal(graph, False)
    n_groups, labels = connected_components(sp.csr_matrix(graph), directed=False)
    if n_groups == n:
        return MergeResult(a, c_raw.copy(), ids.copy(), [], np.zeros(n, dtype=bool))
    sizes = np.bincount(labels, minlength=n_groups)
    keep_idx = np.flatnonzero(sizes[labels] == 1)
    cols = [a[:, keep_idx]]
    traces = [c_raw[keep_idx]]
    new_ids = list(ids[keep_idx])
    changed = [False] * len(keep_idx)
    groups = []
    for g in np.flatnonzero(sizes > 1):
        members = np.flatnonzero(labels == g)
        ag_full = a[:, members]
        rows = np.unique(ag_full.indices)  # work on the group's pixels only
        ag = sp.csc_matrix(ag_full[rows])
        cg = c_raw[members].astype(np.float64)
        weights = np.sqrt(np.asarray(ag.multiply(ag).sum(axis=0)).ravel())
        cc = (weights[:, None] * cg).sum(axis=0)
        av = np.asarray(ag @ (cg @ cc) / max(cc @ cc, 1e-12)).ravel()
        for _ in range(iters):
            av = np.maximum(av, 0)
            if not np.any(av > 0):
                break
            cc = (np.asarray(ag.T @ av).ravel() @ cg) / max(av @ av, 1e-12)
            av = np.asarray(ag @ (cg @ cc)).ravel() / max(cc @ cc, 1e-12)
        av = np.maximum(av, 0)
        nrm = np.sqrt(av @ av)
        if nrm > 0:
            av /= nrm
            cc *= nrm
        col = sp.csc_matrix(
            (av.astype(np.float32), (rows, np.zeros(len(rows), dtype=np.int64))),
            shape=(a.shape[0], 1),
        )
        cols.append(col)
        traces.append(cc.astype(np.float32)[None])
        new_ids.append(int(ids[members].min()))
        changed.append(True)
        groups.append(sorted(int(i) for i in ids[members]))
    a_new = sp.hstack(cols, format="csc").astype(np.float32)
    a_new.eliminate_zeros()
    return MergeResult(
        a_new,
        np.concatenate(traces, axis=0).astype(np.float32),
        np.asarray(new_ids, dtype=np.int64),
        groups,
        np.asarray(changed, dtype=bool),
    )
