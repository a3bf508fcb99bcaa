"""Greedy seeding of neurons from the correlation x peak-to-noise image (CNMF-E init).

Per patch of the initialisation movie (held in memory: patch pixels x init frames):

1. filter, centre, compute PNR and the thresholded correlation image;
2. candidate seeds are local maxima of ``cn * pnr`` with ``cn >= min_corr`` and
   ``pnr >= min_pnr``, visited best first;
3. for a seed, in a box of +-gSiz: the trace ``c`` is the mean of the filtered pixels that
   correlate > 0.9 with the seed; the footprint ``a`` is the regression of the raw box on
   ``[c, local background (median of uncorrelated pixels), 1]``, kept non-negative,
   decreasing away from the peak and connected;
4. ``a c`` is subtracted from the raw and (filtered) data and the images are recomputed
   around the seed, so neighbours of a found neuron are judged on the residual; pixels
   above half the footprint's maximum are no longer seeds.

This follows CaImAn's ``init_neurons_corr_pnr``/``extract_ac`` step for step.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from .deconvolution import deconvolve, noise_psd
from .summary_images import (
    center_psf_kernel,
    correlation_pnr,
    median_of_rows,
    thresholded_correlations,
)

MIN_CORR_NEURON = 0.9
MAX_CORR_BG = 0.3
MAX_BG_PIXELS = 200


@dataclass
class Seed:
    """One initialised component, footprint stored in its box (patch coordinates)."""

    y0: int
    x0: int
    footprint: np.ndarray  # (bh, bw) float32
    trace: np.ndarray  # denoised (T,) float32
    trace_raw: np.ndarray
    center: tuple[int, int]  # seed pixel (y, x) in patch coordinates


@dataclass
class PatchSeeds:
    seeds: list[Seed]
    cn: np.ndarray
    pnr: np.ndarray


def circular_constraint(img: np.ndarray) -> np.ndarray:
    """Zero pixels below half max where intensity grows away from the peak."""
    out = img.copy()
    ys, xs = np.nonzero(out)
    if len(ys) == 0:
        return out
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    sub = out[y0:y1, x0:x1]
    if sub.shape[0] < 2 or sub.shape[1] < 2:
        return out
    py, px = np.unravel_index(int(np.argmax(sub)), sub.shape)
    vmax = sub[py, px]
    gy, gx = np.gradient(sub)
    yy, xx = np.mgrid[0 : sub.shape[0], 0 : sub.shape[1]]
    outward_rising = (gx * (px - xx) + gy * (py - yy)) < 0
    sub[outward_rising & (sub < vmax / 2)] = 0
    out[y0:y1, x0:x1] = sub
    return out


def connectivity_constraint(img: np.ndarray, thr: float = 0.01) -> np.ndarray:
    """Keep only the connected region (above ``thr`` x max) that contains the peak."""
    if not np.any(img > 0):
        return img
    mask = img > thr * img.max()
    labels, n = ndimage.label(mask)
    if n <= 1:
        return np.where(mask, img, 0).astype(img.dtype)
    peak = np.unravel_index(int(np.argmax(img)), img.shape)
    keep = labels == labels[peak]
    return np.where(keep, img, 0).astype(img.dtype)


def extract_ac(
    filtered_box: np.ndarray, raw_box: np.ndarray, ind_ctr: int, dims: tuple[int, int]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Footprint and raw trace of the neuron at ``ind_ctr`` of a (T, pixels) box.

    The correlations with the centre come from one product with the uncentred box (the
    centre's centred trace sums to zero) and each pixel's sum of squares, so the box is
    never centred and normalised as a whole: only the neuron's own pixels are.
    """
    t = filtered_box.shape[0]
    mean = filtered_box.mean(axis=0)
    sq = np.einsum("tp,tp->p", filtered_box, filtered_box) - t * mean * mean
    norm = np.sqrt(np.maximum(sq, 0.0))
    norm[norm == 0] = 1
    fc = filtered_box[:, ind_ctr] - mean[ind_ctr]
    corr = (fc @ filtered_box) / (norm * norm[ind_ctr])
    neuron = corr > MIN_CORR_NEURON
    bg = corr < MAX_CORR_BG
    cols = np.flatnonzero(neuron)
    f_neuron = (filtered_box[:, cols] - mean[cols]) / norm[cols]
    ci = f_neuron.mean(axis=1).astype(np.float32) if len(cols) else np.zeros(t, np.float32)
    if not np.any(ci) or float(ci @ ci) == 0:
        return None, None
    if bg.any():
        idx = np.flatnonzero(bg)
        idx = idx[:: max(1, len(idx) // MAX_BG_PIXELS)]  # a median needs no more
        y_bg = median_of_rows(raw_box[:, idx])
    else:
        y_bg = np.ones(len(ci), dtype=np.float32)
    x = np.stack([ci, y_bg, np.ones_like(ci)], axis=1).astype(np.float32)
    xx = (x.T @ x).astype(np.float64)
    xy = (x.T @ raw_box).astype(np.float64)
    try:
        coef = np.linalg.solve(xx + 1e-10 * np.trace(xx) * np.eye(3), xy)
    except np.linalg.LinAlgError:
        coef = np.linalg.lstsq(xx, xy, rcond=None)[0]
    ai = coef[0].reshape(dims)
    ai[ai < 0] = 0
    ai = connectivity_constraint(circular_constraint(ai))
    sn = float(noise_psd(ci))
    dif = np.concatenate([[-1.0], np.diff(ci)])
    sel = (dif >= 0) & (dif < sn)
    b = float(np.median(ci[sel])) if sel.any() else float(np.median(ci))
    return ai.astype(np.float32), (ci - b).astype(np.float32)


def seed_patch(
    data: np.ndarray,
    *,
    gSig: tuple[int, int],
    gSiz: tuple[int, int],
    min_corr: float,
    min_pnr: float,
    center_psf: bool = True,
    thresh_init: float = 2.0,
    allowed: np.ndarray | None = None,
    excluded: np.ndarray | None = None,
    max_number: int | None = None,
    min_pixel: int = 3,
    p: int = 1,
    g: np.ndarray | None = None,
    s_min_sd: float = 3.0,
    filtered: np.ndarray | None = None,
    noise: np.ndarray | None = None,
    images: tuple[np.ndarray, np.ndarray] | None = None,
) -> PatchSeeds:
    """Greedy CNMF-E initialisation of one (T, h, w) block; ``data`` is modified in place.

    ``allowed`` (bool (h, w)) marks pixels that may be seeds (the patch core): a neuron
    whose peak lies outside it belongs to another patch. ``excluded`` (bool (h, w)) marks
    pixels that are no data at all (the frame border, ``border_pix``). ``filtered``: the
    block already spatially filtered (modified in place). ``noise``: its per-pixel noise SD,
    when computed once for the whole field (overlapping patches then skip it); ``images``
    its correlation and PNR images, likewise.
    """
    t, h, w = data.shape
    cn, pnr, filtered, noise = correlation_pnr(
        data,
        gSig,
        center_psf=center_psf,
        thresh_init=thresh_init,
        filtered=filtered,
        noise=noise,
        images=images,
    )
    cn_out, pnr_out = cn.copy(), pnr.copy()
    kernel = center_psf_kernel(gSig, center_psf)
    raw = data
    gy, gx = int(gSiz[0]), int(gSiz[1])

    v_search = cn * pnr
    v_search[(cn < min_corr) | (pnr < min_pnr)] = 0
    searched = v_search <= 0
    if excluded is not None:
        searched |= excluded
    # pixels outside the core keep their values, so a neuron whose peak lies in a
    # neighbouring patch's core is not seeded again here at the core's edge (where the
    # local maximum would move once its true peak is hidden)
    outside = np.zeros_like(searched) if allowed is None else ~allowed
    min_v = min_corr * min_pnr
    ii, jj = np.meshgrid(np.arange(w), np.arange(h))
    tie = ((ii * 10 + jj) * 1e-5).astype(np.float32)
    dil = max(1, int(round(gy / 4.0)))
    dil_kernel = np.ones((dil, dil), np.uint8)
    seeds: list[Seed] = []
    limit = np.inf if max_number is None else max_number
    searching = limit > 0
    while searching:
        v_search[(cn < min_corr) | (pnr < min_pnr)] = 0
        v_search = cv2.medianBlur(v_search.astype(np.float32), 3) + tie
        v_search[searched] = 0
        v_max = cv2.dilate(v_search, dil_kernel)
        v_max[(v_search != v_max) | (v_search < min_v)] = 0
        v_max[searched | outside] = 0
        rs, cs = v_max.nonzero()
        if len(rs) == 0:
            break
        order = np.argsort(v_max[rs, cs])[::-1]
        for idx in order:
            r, c = int(rs[idx]), int(cs[idx])
            searched[r, c] = True
            if v_search[r, c] < min_v:
                continue
            d0 = np.diff(filtered[:, r, c])
            if d0.size == 0 or d0.max() < 3 * d0.std():
                v_search[r, c] = 0
                continue
            r0, r1 = max(0, r - gy), min(h, r + gy + 1)
            c0, c1 = max(0, c - gx), min(w, c + gx + 1)
            dims = (r1 - r0, c1 - c0)
            raw_box = raw[:, r0:r1, c0:c1].reshape(t, -1)
            filt_box = filtered[:, r0:r1, c0:c1].reshape(t, -1)
            ind_ctr = (r - r0) * dims[1] + (c - c0)
            ai, ci_raw = extract_ac(filt_box, raw_box, ind_ctr, dims)
            if ai is None or ci_raw is None or int((ai > 0).sum()) < min_pixel:
                continue
            if p > 0:
                dec = deconvolve(ci_raw, p=1, g=None if g is None else g[:1], s_min_sd=s_min_sd)
                ci = dec.c.astype(np.float32)
            else:
                ci = np.maximum(ci_raw, 0).astype(np.float32)
            if not np.any(ci > 0):
                continue
            seeds.append(Seed(r0, c0, ai, ci, ci_raw, (r, c)))
            searched[r0:r1, c0:c1] |= ai > ai.max() / 2
            raw[:, r0:r1, c0:c1] -= ai[None] * ci[:, None, None]
            # filtered data around the neuron
            r2a, r2b = max(0, r - 2 * gy), min(h, r + 2 * gy + 1)
            c2a, c2b = max(0, c - 2 * gx), min(w, c + 2 * gx + 1)
            img = np.zeros((r2b - r2a, c2b - c2a), dtype=np.float32)
            img[r0 - r2a : r1 - r2a, c0 - c2a : c1 - c2a] = ai
            ai_f = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REPLICATE)
            filtered[:, r2a:r2b, c2a:c2b] -= ai_f[None] * ci[:, None, None]
            box = filtered[:, r2a:r2b, c2a:c2b]
            noise_box = noise[r2a:r2b, c2a:c2b]
            pnr_box = box.max(axis=0) / noise_box
            pnr_box[~np.isfinite(pnr_box) | (pnr_box < 0)] = 0
            pnr[r2a:r2b, c2a:c2b] = pnr_box
            # only the +-gSiz box changes its correlations (neighbours one pixel beyond)
            ya, yb = max(r0 - 1, r2a), min(r1 + 1, r2b)
            xa, xb = max(c0 - 1, c2a), min(c1 + 1, c2b)
            cn_box = thresholded_correlations(
                filtered[:, ya:yb, xa:xb], noise[ya:yb, xa:xb], thresh_init
            )
            cn[r0:r1, c0:c1] = cn_box[r0 - ya : r1 - ya, c0 - xa : c1 - xa]
            cn_view = cn[r2a:r2b, c2a:c2b]
            pnr_thr = np.where(pnr_box < min_pnr, 0, pnr_box)
            cn_thr = np.where(cn_view < min_corr, 0, cn_view)
            v_search[r2a:r2b, c2a:c2b] = cn_thr * pnr_thr
            v_search[searched] = 0
            if len(seeds) >= limit:
                searching = False
                break
    return PatchSeeds(seeds, cn_out, pnr_out)
