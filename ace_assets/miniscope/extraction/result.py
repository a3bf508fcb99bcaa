"""The extraction result: arrays, a no-pickle npz round trip, curation, contours.

Pixel order in ``A`` is row-major (``index = y * width + x``, numpy's ``reshape(H, W)``),
not CaImAn's Fortran order. Footprints have unit L2 norm; ``C`` is in the matching units.
``ids`` are the original component numbers and never change: curation removes
components but keeps the others' ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import scipy.sparse as sp

from ace_assets.errors import AceInputError
from ace_assets.io.jsonio import dumps_json, loads_json
from ace_assets.io.store import atomic_save_npz, load_npz

RESULT_FILE = "extraction.npz"
FORMAT_VERSION = 1


@dataclass
class ExtractionResult:
    """CNMF-E output for one movie (N components, T frames, H x W pixels)."""

    A: sp.csc_matrix  # (H*W, N) float32
    C: np.ndarray  # (N, T) float32 denoised traces
    S: np.ndarray  # (N, T) float32 deconvolved spike estimates
    C_raw: np.ndarray  # (N, T) float32 raw traces (C + residual, baseline removed)
    sn: np.ndarray  # (N,) noise SD of each raw trace
    g: np.ndarray  # (N, p) AR coefficients
    baseline: np.ndarray  # (N,) baseline removed from each raw trace
    centers: np.ndarray  # (N, 2) (y, x) centres of mass
    snr: np.ndarray  # (N,) event exceptionality SNR (CaImAn's fitness -> z)
    r_values: np.ndarray  # (N,) spatial consistency
    ids: np.ndarray  # (N,) int64 original component ids
    dims: tuple[int, int]
    fps: float
    b0: np.ndarray  # (H, W) constant background
    background_mean: np.ndarray  # (T,) spatial mean of the background per frame
    ring_weights: np.ndarray  # (J, hb, wb) ring-model weights (background grid)
    correlation_image: np.ndarray  # (H, W)
    pnr_image: np.ndarray  # (H, W)
    contours: list[np.ndarray] = field(default_factory=list)  # (n_i, 2) (y, x) per comp
    warnings: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_components(self) -> int:
        return int(self.A.shape[1])

    @property
    def n_frames(self) -> int:
        return int(self.C.shape[1])

    def footprints(self) -> np.ndarray:
        """Dense (N, H, W) footprints (small movies / plots only)."""
        h, w = self.dims
        return np.asarray(self.A.T.toarray()).reshape(-1, h, w)

    def contour_image(self) -> np.ndarray:
        """(H, W) int32 image: component index + 1 on each contour pixel, 0 elsewhere."""
        h, w = self.dims
        img = np.zeros((h, w), dtype=np.int32)
        for k, cont in enumerate(self.contours):
            if len(cont) == 0:
                continue
            pts = np.round(cont[:, ::-1]).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(img, [pts], True, int(k + 1), 1)
        return img

    def save(self, path_dir: str | Path) -> Path:
        return save_result(self, path_dir)


def empty_result(
    dims: tuple[int, int],
    n_frames: int,
    fps: float,
    *,
    p: int,
    warnings: list[str],
    params: dict[str, Any],
    b0: np.ndarray | None = None,
    correlation_image: np.ndarray | None = None,
    pnr_image: np.ndarray | None = None,
    info: dict[str, Any] | None = None,
) -> ExtractionResult:
    h, w = dims
    z2 = np.zeros((0, n_frames), dtype=np.float32)
    z1 = np.zeros(0, dtype=np.float64)
    return ExtractionResult(
        A=sp.csc_matrix((h * w, 0), dtype=np.float32),
        C=z2,
        S=z2.copy(),
        C_raw=z2.copy(),
        sn=z1,
        g=np.zeros((0, max(p, 0))),
        baseline=z1.copy(),
        centers=np.zeros((0, 2)),
        snr=z1.copy(),
        r_values=z1.copy(),
        ids=np.zeros(0, dtype=np.int64),
        dims=(h, w),
        fps=float(fps),
        b0=np.zeros(dims, np.float32) if b0 is None else b0.astype(np.float32),
        background_mean=np.zeros(n_frames, dtype=np.float32),
        ring_weights=np.zeros((0, 0, 0), dtype=np.float32),
        correlation_image=(
            np.zeros(dims, np.float32) if correlation_image is None else correlation_image
        ),
        pnr_image=np.zeros(dims, np.float32) if pnr_image is None else pnr_image,
        contours=[],
        warnings=list(warnings),
        params=dict(params),
        info=dict(info or {}),
    )


def compute_contours(a: sp.csc_matrix, dims: tuple[int, int], energy: float = 0.9):
    """Outline of the pixels holding ``energy`` of each footprint's squared mass."""
    h, w = dims
    a = sp.csc_matrix(a)
    out = []
    for k in range(a.shape[1]):
        rows = a.indices[a.indptr[k] : a.indptr[k + 1]]
        vals = a.data[a.indptr[k] : a.indptr[k + 1]]
        if len(rows) == 0:
            out.append(np.zeros((0, 2), dtype=np.float32))
            continue
        order = np.argsort(vals)[::-1]
        cum = np.cumsum(vals[order].astype(np.float64) ** 2)
        n_keep = int(np.searchsorted(cum, energy * cum[-1])) + 1
        keep = rows[order[:n_keep]]
        ys, xs = keep // w, keep % w
        y0, x0 = int(ys.min()), int(xs.min())  # the footprint's box, not the whole frame
        mask = np.zeros((int(ys.max()) - y0 + 1, int(xs.max()) - x0 + 1), np.uint8)
        mask[ys - y0, xs - x0] = 1
        cnts, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE, offset=(x0, y0))
        if not cnts:
            out.append(np.zeros((0, 2), dtype=np.float32))
            continue
        best = max(cnts, key=len)
        xy = best.reshape(-1, 2).astype(np.float32)
        out.append(xy[:, ::-1].copy())  # (y, x)
    return out


# ------------------------------------------------------------------ persistence

_ARRAYS = (
    "C",
    "S",
    "C_raw",
    "sn",
    "g",
    "baseline",
    "centers",
    "snr",
    "r_values",
    "ids",
    "b0",
    "background_mean",
    "ring_weights",
    "correlation_image",
    "pnr_image",
)


def save_result(result: ExtractionResult, path_dir: str | Path) -> Path:
    """Write ``<path_dir>/extraction.npz`` atomically (arrays only; JSON for the rest)."""
    path_dir = Path(path_dir)
    a = sp.csc_matrix(result.A)
    lens = np.array([len(c) for c in result.contours], dtype=np.int64)
    pts = (
        np.concatenate([c for c in result.contours if len(c)], axis=0).astype(np.float32)
        if lens.sum()
        else np.zeros((0, 2), np.float32)
    )
    meta = {
        "format_version": FORMAT_VERSION,
        "dims": list(result.dims),
        "fps": result.fps,
        "warnings": list(result.warnings),
        "params": result.params,
        "info": result.info,
    }
    arrays = {name: np.asarray(getattr(result, name)) for name in _ARRAYS}
    arrays.update(
        A_data=a.data.astype(np.float32),
        A_indices=a.indices.astype(np.int64),
        A_indptr=a.indptr.astype(np.int64),
        A_shape=np.asarray(a.shape, dtype=np.int64),
        contour_lengths=lens,
        contour_points=pts,
        meta_json=np.array(dumps_json(meta, indent=None)),
    )
    return atomic_save_npz(path_dir / RESULT_FILE, **arrays)


def load_result(path_dir: str | Path) -> ExtractionResult:
    """Read a result written by :func:`save_result` (no pickle)."""
    path_dir = Path(path_dir)
    path = path_dir / RESULT_FILE if path_dir.is_dir() else path_dir
    if not path.is_file():
        raise AceInputError("no extraction result here (expected extraction.npz)", file=path)
    try:
        z = load_npz(path)
        meta = loads_json(str(z["meta_json"]))
        shape = tuple(int(v) for v in z["A_shape"])
        a = sp.csc_matrix((z["A_data"], z["A_indices"], z["A_indptr"]), shape=shape)
    except (KeyError, ValueError, OSError) as exc:
        raise AceInputError(f"not a readable extraction result: {exc}", file=path) from exc
    lens = z["contour_lengths"]
    pts = z["contour_points"]
    bounds = np.concatenate([[0], np.cumsum(lens)])
    contours = [pts[bounds[i] : bounds[i + 1]] for i in range(len(lens))]
    kwargs = {name: z[name] for name in _ARRAYS}
    return ExtractionResult(
        A=a,
        dims=tuple(meta["dims"]),
        fps=float(meta["fps"]),
        contours=contours,
        warnings=list(meta.get("warnings", [])),
        params=dict(meta.get("params", {})),
        info=dict(meta.get("info", {})),
        **kwargs,
    )


# ------------------------------------------------------------------ curation


def apply_rejections(result: ExtractionResult, rejected_ids: Any) -> ExtractionResult:
    """A new result without the components whose original ids are in ``rejected_ids``.

    Ids of the kept components are unchanged, so a curation list stays valid however often
    it is applied. Unknown ids are an error (a stale list for another extraction).
    """
    rejected = np.asarray(list(rejected_ids) if rejected_ids is not None else [], dtype=np.int64)
    known = set(int(i) for i in result.ids)
    prior = set(int(i) for i in result.info.get("curated_rejected_ids", []))
    unknown = sorted(int(i) for i in rejected if int(i) not in known and int(i) not in prior)
    if unknown:
        raise AceInputError(
            f"rejected component id(s) {unknown} do not exist in this extraction "
            f"(ids are {sorted(known)[:20]}{'...' if len(known) > 20 else ''})",
            column="rejected_ids",
        )
    keep = ~np.isin(result.ids, rejected)
    idx = np.flatnonzero(keep)
    info = dict(result.info)
    info["curated_rejected_ids"] = sorted(prior | set(int(i) for i in rejected))
    if len(info.get("kept_quality", [])) == result.n_components:  # one entry per component
        info["kept_quality"] = [info["kept_quality"][i] for i in idx]
    return ExtractionResult(
        A=sp.csc_matrix(result.A[:, idx]),
        C=result.C[idx],
        S=result.S[idx],
        C_raw=result.C_raw[idx],
        sn=result.sn[idx],
        g=result.g[idx],
        baseline=result.baseline[idx],
        centers=result.centers[idx],
        snr=result.snr[idx],
        r_values=result.r_values[idx],
        ids=result.ids[idx],
        dims=result.dims,
        fps=result.fps,
        b0=result.b0,
        background_mean=result.background_mean,
        ring_weights=result.ring_weights,
        correlation_image=result.correlation_image,
        pnr_image=result.pnr_image,
        contours=[result.contours[i] for i in idx] if result.contours else [],
        warnings=list(result.warnings),
        params=dict(result.params),
        info=info,
    )
