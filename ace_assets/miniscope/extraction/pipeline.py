"""CNMF-E source extraction for 1-photon movies, streamed and memory-bounded.

Stages (each a pass over frames read in ``chunk_frames`` blocks; the movie is never held):

0. scan: mean image, per-frame means, value range, NaN/inf frames (``nan_policy``),
   taken in the same read as 1.;
1. initialisation movie: frames binned by ``tsub`` (raised as needed so it has at most
   ``max_init_frames`` frames and a patch of it fits ``init_memory_mb``) and pixels by
   ``ssub``, written to a temporary tiled file;
2. per patch (``rf``/``stride``; ``rf=None`` = whole field): correlation x PNR seeding
   (:mod:`.seeding`); seeds belong to the patch whose core holds them;
3. ring-model background (:mod:`.background`) fitted on the initialisation movie, then
   ``n_init_iter`` A/C/merge/background iterations on that movie;
4. ``n_iter`` full-resolution passes (empty: one at ``ssub = 1``, two otherwise; see
   :attr:`.ExtractionParams.full_passes`): traces (deconvolved with OASIS), footprints
   (HALS, except after the last pass), merging, background refit;
5. SNR and r-values; a candidate is kept only if it passes every rule of :mod:`.quality`
   (``min_SNR`` as a hard floor, footprint shape against ``gSig``, a trace not periodic
   at the denoiser's stripe frequencies or at one of its own); rejected ones and their
   reasons go to ``info["rejected"]``.

Memory bound (float32): initialisation ``~4 x patch_pixels x T_init`` (T_init <=
``max_init_frames``, and limited by ``init_memory_mb``); a full-resolution pass
``~3 x H x W x chunk_frames`` (frames read ahead, one tile cut), per-component box sums on
the background grid (``N x`` a box of the footprint's reach plus twice the ring radius,
float64, one or two per pass) and per-tile accumulators ``~pixels x components nearby``;
the ring fit, ring features on the background grid (``(1 + 2 ring_harmonics) x
H/ssub_B x W/ssub_B x 64``); outputs ``C, S, C_raw`` and the pass's ``A^T (Y - B)`` and
``G^T X`` are ``N x T`` each — the only terms that grow with the movie. Measured:
608 x 608, 350 neurons, 1000 and 2000 frames, chunk_frames=200: peak RSS 1.57 GB both.
Disk: the initialisation movie twice (raw and filtered), ``2 x T_init x H/ssub x W/ssub x 4``
bytes in ``workdir`` (removed at the end).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ace_assets.errors import AceInputError
from ace_assets.io.prefetch import prefetched
from ace_assets.io.threads import one_blas_thread, ordered_map

from .background import RingGeometry, RingModel, fit_ring_model
from .deconvolution import ar_from_decay, deconvolve
from .evaluation import event_exceptionality_snr
from .merging import merge_components
from .movie import (
    FloatFrames,
    StatsSum,
    TiledCache,
    as_movie,
    bin_mean,
    block_reduce_mean,
    build_init_cache,
    close_caches,
    describe_frames,
    movie_fps,
    patch_cache_tile,
    scan_movie,
)
from .params import ExtractionParams
from .quality import Quality, Rules, assess, describe
from .result import ExtractionResult, compute_contours, empty_result
from .seeding import seed_patch
from .summary_images import center_psf_kernel, centred_cn_pnr, pixel_noise_robust
from .updates import (
    TemporalResult,
    active_weights,
    allowed_masks,
    clean_footprints,
    component_r_values,
    footprint_centers,
    make_tiles,
    normalize_footprints,
    run_pass,
    update_spatial,
    update_temporal,
)

Progress = Callable[[str], None]
DUPLICATE_COSINE = 0.85  # footprints this similar are one neuron (del_duplicates)


# ------------------------------------------------------------------ geometry helpers


def _axis_windows(n: int, size: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(start, stop, core_start, core_stop) windows along one axis; cores tile ``[0, n)``."""
    if size >= n:
        return [(0, n, 0, n)]
    step = max(1, size - overlap)
    starts = list(range(0, n - size + 1, step))
    if starts[-1] + size < n:
        starts.append(n - size)
    wins = [(s, s + size) for s in starts]
    out = []
    for i, (a, b) in enumerate(wins):
        lo = 0 if i == 0 else (wins[i - 1][1] + a) // 2
        hi = n if i == len(wins) - 1 else (b + wins[i + 1][0]) // 2
        out.append((a, b, lo, hi))
    return out


def patch_windows(
    dims: tuple[int, int], rf: int | None, stride: int | None
) -> list[tuple[int, int, int, int, int, int, int, int]]:
    """Patches ``(y0, y1, x0, x1, cy0, cy1, cx0, cx1)``: window and core (CaImAn's rf/stride:
    half-size and overlap)."""
    h, w = dims
    if rf is None:
        return [(0, h, 0, w, 0, h, 0, w)]
    size = 2 * rf
    ov = stride or 0
    return [
        (y[0], y[1], x[0], x[1], y[2], y[3], x[2], x[3])
        for y in _axis_windows(h, size, ov)
        for x in _axis_windows(w, size, ov)
    ]


def _odd(v: float) -> int:
    v = max(1, int(round(v)))
    return v if v % 2 else v + 1


def _pnr_scale(ssub: int, tsub_user: int, tsub_eff: int) -> float:
    """Factor on ``min_pnr`` for the binned initialisation movie.

    CaImAn multiplies ``min_pnr`` by ``sqrt(tsub * ssub^2)``; we keep that for the binning
    the user asked for. Extra binning forced by ``max_init_frames`` lowers the measured PNR
    (transients are averaged and their fast part counts as noise): measured on synthetic
    AR(1) data, PNR falls roughly as ``1 / sqrt`` of the extra factor, so the threshold
    follows it.
    """
    extra = tsub_eff / max(tsub_user, 1)
    return ssub * math.sqrt(tsub_user) / math.sqrt(max(extra, 1.0))


def _bin_traces(c: np.ndarray, k: int, n_out: int) -> np.ndarray:
    if k == 1:
        return c[:, :n_out].astype(np.float32)
    return bin_mean(c, k, axis=1)[:, :n_out]


def _resample_footprints(
    a: sp.csc_matrix, src: tuple[int, int], dst: tuple[int, int], factor: int, up: bool
) -> sp.csc_matrix:
    """Footprints between the full grid and the ``ssub``-binned grid (nearest / block mean)."""
    if factor == 1:
        return sp.csc_matrix(a)
    hs, ws = src
    hd, wd = dst
    cols = []
    for k in range(a.shape[1]):
        img = np.asarray(a[:, k].toarray()).reshape(hs, ws)
        if up:
            big = np.kron(img, np.ones((factor, factor), np.float32))[:hd, :wd]
        else:
            big = block_reduce_mean(img[None], factor)[0][:hd, :wd]
        cols.append(sp.csc_matrix(big.reshape(-1, 1).astype(np.float32)))
    if not cols:
        return sp.csc_matrix((hd * wd, 0), dtype=np.float32)
    return sp.hstack(cols, format="csc")


# ------------------------------------------------------------------ the model state


class _State:
    """Components being refined on one grid."""

    def __init__(self, a, c, c_raw, ids, dims):
        self.a = sp.csc_matrix(a, dtype=np.float32)
        self.c = c.astype(np.float32)
        self.c_raw = c_raw.astype(np.float32)
        self.ids = np.asarray(ids, dtype=np.int64)
        self.dims = dims
        self.temporal: TemporalResult | None = None
        self.merged: list[list[int]] = []

    @property
    def n(self) -> int:
        return self.a.shape[1]

    def keep(self, idx: np.ndarray) -> None:
        self.a = sp.csc_matrix(self.a[:, idx])
        self.c = self.c[idx]
        self.c_raw = self.c_raw[idx]
        self.ids = self.ids[idx]
        if self.temporal is not None:
            t = self.temporal
            self.temporal = TemporalResult(
                t.c[idx], t.s[idx], t.c_raw[idx], t.sn[idx], t.g[idx], t.baseline[idx]
            )


def _iterate(
    state: _State,
    chunks_fn: Callable[[], Any],
    n_frames: int,
    ring: RingModel,
    prm: ExtractionParams,
    *,
    g: np.ndarray | None,
    p: int,
    gsiz: tuple[int, int],
    update_a: bool,
    want_r: bool,
) -> tuple[np.ndarray | None, np.ndarray]:
    """One pass + temporal update (+ spatial update and merge). Returns (r_values, bg_mean)."""
    state.a, (state.c,), _ = normalize_footprints(state.a, state.c)
    dims = state.dims
    centers = footprint_centers(state.a, dims)
    dil = max(1, int(round(min(prm.gSig) / 2)))
    mask = allowed_masks(
        state.a, dims, centers, dilate=dil, max_radius=(gsiz[0] * 0.75, gsiz[1] * 0.75)
    )
    tiles = make_tiles(mask, dims, prm.tile_size)
    active = active_weights(state.c) if want_r else None
    c_prev = state.c
    pres = run_pass(chunks_fn(), n_frames, state.a, c_prev, ring, tiles, mask=mask, active=active)
    tr = update_temporal(
        pres.u_c, state.a, c_prev, p=p, g=g, s_min=prm.s_min, s_min_sd=prm.s_min_sd
    )
    r_values = None
    if want_r and active is not None:
        r_values = component_r_values(state.a, c_prev, active, pres, tiles, dims)
    state.temporal = tr
    state.c = tr.c
    state.c_raw = tr.c_raw
    if update_a:
        a_new = update_spatial(state.a, c_prev, pres, tiles, mask, dims)
        a_new = clean_footprints(a_new, dims)
        npix = np.diff(a_new.indptr)
        state.a = a_new
        state.keep(np.flatnonzero((npix >= prm.min_pixel) & (state.c.max(axis=1) > 0)))
        _merge(state, prm, g=g, p=p)
    return r_values, pres.background_mean


def _merge(state: _State, prm: ExtractionParams, *, g: np.ndarray | None, p: int) -> None:
    if state.n < 2:
        return
    mres = merge_components(
        state.a,
        state.c,
        state.c_raw,
        state.ids,
        prm.merge_thr,
        dup_thr=DUPLICATE_COSINE if prm.del_duplicates else None,
    )
    if not mres.merged:
        return
    c_new = np.zeros_like(mres.c_raw)
    kept_c = {int(i): k for k, i in enumerate(state.ids)}
    for j in range(mres.a.shape[1]):
        if mres.changed[j]:
            dec = deconvolve(mres.c_raw[j], p=p, g=g, s_min=prm.s_min, s_min_sd=prm.s_min_sd)
            c_new[j] = dec.c
        else:
            c_new[j] = state.c[kept_c[int(mres.ids[j])]]
    state.a = mres.a
    state.c = c_new
    state.c_raw = mres.c_raw
    state.ids = mres.ids
    state.temporal = None
    state.merged.extend(mres.merged)


# ------------------------------------------------------------------ entry point


def _as_params(params: ExtractionParams | Mapping[str, Any] | None) -> ExtractionParams:
    if params is None:
        return ExtractionParams()
    if isinstance(params, ExtractionParams):
        params.validate()
        return params
    if isinstance(params, Mapping):
        return ExtractionParams.from_dict(params)
    raise AceInputError(f"expected ExtractionParams or a dict of parameters, got {type(params)}")


def extract(
    movie: Any,
    params: ExtractionParams | Mapping[str, Any] | None = None,
    *,
    fps: float | None = None,
    workdir: str | Path | None = None,
    source: str | Path | None = None,
    progress: Progress | None = None,
    stripe_frequencies_hz: Sequence[float] | None = None,
) -> ExtractionResult:
    """Run CNMF-E on a motion-corrected movie (``(T, H, W)`` array or ArrayStore-like).

    ``fps`` (else ``params.fps``, else the store's metadata) sets the AR coefficient from
    ``decay_time``. ``workdir`` holds the temporary initialisation movie.
    ``stripe_frequencies_hz``: temporal frequencies at which the denoiser saw stripe bands
    pass a fixed row (its manifest's ``stripe_frequencies_hz``); components whose traces
    concentrate there are rejected (``max_periodic_power``). A movie with no cells (or
    constant) gives an empty result with a warning; bad input raises
    :class:`AceInputError`.
    """
    t_start = time.perf_counter()
    prm = _as_params(params)
    stripes = _stripe_frequencies(stripe_frequencies_hz, source)
    log = progress or (lambda msg: None)
    mv = as_movie(movie)
    shape = tuple(int(v) for v in mv.shape[:3])
    prm.validate_for_movie(shape, source=source)
    n_frames, h, w = shape
    fps = fps or prm.fps or movie_fps(movie)
    if not fps or fps <= 0:
        raise AceInputError(
            "frame rate unknown: pass fps=..., set 'fps' in the parameters, or use a store "
            "whose metadata has 'fps'",
            file=source,
            column="fps",
        )
    fps = float(fps)
    if n_frames < 10:
        raise AceInputError(
            f"the movie has {n_frames} frames; source extraction needs at least 10", file=source
        )
    warnings: list[str] = []
    info: dict[str, Any] = {
        "n_frames": n_frames,
        "dims": [h, w],
        "fps": fps,
        "stripe_frequencies_hz": stripes,
    }
    if prm.use_cnn:
        warnings.append(
            "use_cnn=TRUE ignored: no CNN classifier here; min_SNR, the footprint shape and "
            "the periodicity rules decide"
        )
    if prm.method_deconvolution != "oasis":
        warnings.append(f"method_deconvolution={prm.method_deconvolution!r} run as OASIS")
    chunk = prm.chunk_frames
    p = prm.p

    # ---------------------------------------------------------- initialisation movie
    ssub = prm.ssub
    hs, ws = -(-h // ssub), -(-w // ssub)
    rf_s = None if prm.rf is None else max(1, -(-prm.rf // ssub))
    stride_s = None if prm.stride is None else int(round(prm.stride / ssub))
    windows = patch_windows((hs, ws), rf_s, stride_s)
    patch_px = max((y1 - y0) * (x1 - x0) for y0, y1, x0, x1, *_ in windows)
    cap_mem = int(prm.init_memory_mb * 2**20 / (patch_px * 4 * 4))
    t_cap = max(1, min(prm.max_init_frames, cap_mem))
    tsub = max(prm.tsub, -(-n_frames // t_cap))
    info.update(tsub_effective=tsub, n_patches=len(windows))
    if tsub > prm.tsub and cap_mem < prm.max_init_frames:
        warnings.append(
            f"initialisation binned by {tsub} frames to fit init_memory_mb="
            f"{prm.init_memory_mb:g} for {patch_px} patch pixels; set rf to use patches"
        )
    fps_init = fps / tsub
    g_init = ar_from_decay(prm.decay_time, fps_init, 1) if (prm.decay_time and p > 0) else None
    gsig_s = tuple(max(1, int(round(v / ssub))) for v in prm.gSig)
    gsiz_s = tuple(_odd(v / ssub) for v in prm.gSiz)
    pnr_scale = _pnr_scale(ssub, prm.tsub, tsub)
    min_pnr_eff = prm.min_pnr * pnr_scale
    src = str(source) if source else None

    def build(fill: np.ndarray | None, stats: StatsSum | None) -> tuple[Any, Any]:
        return build_init_cache(
            FloatFrames(mv, fill),
            tsub=tsub,
            ssub=ssub,
            chunk=chunk,
            tile=patch_cache_tile((-(-n_frames // tsub), hs, ws), windows, chunk, prm.tile_size),
            workdir=workdir,
            kernel=center_psf_kernel(gsig_s, prm.center_psf),
            stats=stats,
            source=src,
        )

    # the movie's statistics are taken in the same read as the initialisation movie (one
    # pass over the movie less); a movie with non-finite values is binned again, filled
    caches: tuple[Any, ...] = ()
    if prm.K == 0:
        stats = scan_movie(mv, chunk, source=src)
    else:
        log(f"building initialisation movie (tsub={tsub}, ssub={ssub}; scanning the movie)")
        summed = StatsSum(n_frames, (h, w), src)
        caches = build(None, summed)
        stats = summed.result()
    fill = None
    try:
        if len(stats.nan_frames):
            msg = (
                f"{len(stats.nan_frames)} frame(s) contain NaN/inf values (frames "
                f"{describe_frames(stats.nan_frames)})"
            )
            if prm.nan_policy == "error":
                raise AceInputError(
                    msg + "; fix the motion correction border or set nan_policy='fill' to "
                    "replace them by the pixel means",
                    file=source,
                )
            warnings.append(msg + "; non-finite values replaced by the pixel means")
            fill = stats.mean.astype(np.float32)
        info["nan_frames"] = stats.nan_frames.tolist()[:1000]
        params_dict = prm.to_dict() | {"fps": fps}

        def empty(reason: str, **kw: Any) -> ExtractionResult:
            warnings.append(reason)
            info["seconds"] = time.perf_counter() - t_start
            return empty_result(
                (h, w),
                n_frames,
                fps,
                p=p,
                warnings=warnings,
                params=params_dict,
                b0=stats.mean.astype(np.float32),
                info=info,
                **kw,
            )

        if stats.constant:
            return empty(f"the movie is constant (every value {stats.vmin:g}): no components")
        if prm.K == 0:
            return empty("K=0: no components requested")
        if fill is not None:
            close_caches(*caches)
            caches = ()
            log(f"building initialisation movie (tsub={tsub}, ssub={ssub}; NaN filled)")
            caches = build(fill, None)
        cache, fcache = caches
        frames = FloatFrames(mv, fill)
        # AR(1): g from decay_time (estimated per trace without one); AR(2): always estimated
        g_full = ar_from_decay(prm.decay_time, fps, 1) if (prm.decay_time and p == 1) else None
        # Seeding and the passes run threads of their own beside many mid-sized products: a
        # BLAS pool beside them oversubscribes the cores (on the demo's 1,000 frames, one
        # BLAS thread took 15% less wall and 25% less CPU), and no sum depends on its size
        with one_blas_thread():
            return _run(
                prm,
                frames,
                stats,
                cache,
                fcache,
                windows,
                warnings,
                info,
                params_dict,
                log,
                empty,
                fps=fps,
                fps_init=fps_init,
                g_full=g_full,
                g_init=g_init,
                gsig_s=gsig_s,
                gsiz_s=gsiz_s,
                min_pnr_eff=min_pnr_eff,
                t_start=t_start,
                stripes=stripes,
            )
    finally:
        close_caches(*caches)


def _run(
    prm: ExtractionParams,
    frames: FloatFrames,
    stats: Any,
    cache: TiledCache,
    fcache: TiledCache | None,
    windows: list,
    warnings: list[str],
    info: dict[str, Any],
    params_dict: dict[str, Any],
    log: Progress,
    empty: Callable[..., ExtractionResult],
    *,
    fps: float,
    fps_init: float,
    g_full: np.ndarray | None,
    g_init: np.ndarray | None,
    gsig_s: tuple[int, int],
    gsiz_s: tuple[int, int],
    min_pnr_eff: float,
    t_start: float,
    stripes: list[float],
) -> ExtractionResult:
    n_frames, h, w = frames.shape
    t_init, hs, ws = cache.shape
    ssub, tsub = prm.ssub, info["tsub_effective"]
    chunk = prm.chunk_frames
    p = prm.p
    border = int(math.ceil(prm.border_pix / ssub))

    # ---------------------------------------------------------- seeding per patch
    cn_img = np.zeros((hs, ws), np.float32)
    pnr_img = np.zeros((hs, ws), np.float32)
    cols: list[sp.csc_matrix] = []
    traces: list[np.ndarray] = []
    traces_raw: list[np.ndarray] = []

    # each pixel's noise, correlation and PNR depend on its own filtered trace (and its
    # neighbours') only: computed once here, in blocks of the patch cores (with a pixel of
    # margin for the neighbours), rather than again in every overlapping patch (~1.8x the
    # pixels at rf=40, stride=20)
    log(f"seeding {len(windows)} patches")
    noise_img = cn_seed = pnr_seed = None
    if fcache is not None:
        noise_img = np.zeros((hs, ws), np.float32)
        cn_seed = np.zeros((hs, ws), np.float32)
        pnr_seed = np.zeros((hs, ws), np.float32)

        def core_images(window: tuple[int, ...]) -> tuple[tuple[slice, slice], list[np.ndarray]]:
            _, _, _, _, cy0, cy1, cx0, cx1 = window
            y0, y1, x0, x1 = max(cy0 - 1, 0), min(cy1 + 1, hs), max(cx0 - 1, 0), min(cx1 + 1, ws)
            block = fcache.read_patch(y0, y1, x0, x1)
            block -= block.mean(axis=0)
            noise = pixel_noise_robust(block).astype(np.float32)
            cn, pnr = centred_cn_pnr(block, noise, prm.thresh_init)
            core = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
            return (slice(cy0, cy1), slice(cx0, cx1)), [v[core] for v in (noise, cn, pnr)]

        for at, values in ordered_map(core_images, windows):
            for image, value in zip((noise_img, cn_seed, pnr_seed), values, strict=True):
                image[at] = value

    def seed_window(window: tuple[int, ...]) -> Any:
        y0, y1, x0, x1, cy0, cy1, cx0, cx1 = window
        block = cache.read_patch(y0, y1, x0, x1)
        fblock = fcache.read_patch(y0, y1, x0, x1) if fcache is not None else None
        allowed = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        allowed[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = True
        excluded = None
        if border:
            gy = np.arange(y0, y1)[:, None]
            gx = np.arange(x0, x1)[None, :]
            excluded = ~((gy >= border) & (gy < hs - border) & (gx >= border) & (gx < ws - border))
        return seed_patch(
            block,
            gSig=gsig_s,
            gSiz=gsiz_s,
            min_corr=prm.min_corr,
            min_pnr=min_pnr_eff,
            center_psf=prm.center_psf,
            thresh_init=prm.thresh_init,
            allowed=allowed,
            excluded=excluded,
            max_number=prm.K,
            min_pixel=prm.min_pixel,
            p=p,
            g=g_init,
            s_min_sd=prm.s_min_sd,
            filtered=fblock,
            noise=None if noise_img is None else noise_img[y0:y1, x0:x1],
            images=None
            if cn_seed is None or pnr_seed is None
            else (cn_seed[y0:y1, x0:x1], pnr_seed[y0:y1, x0:x1]),
        )

    # patches are seeded independently (each reads its own window), on every core; the
    # results are taken in patch order, so seeds and their ids do not depend on threads
    seeded = zip(windows, ordered_map(seed_window, windows), strict=True)
    for pi, (window, res) in enumerate(seeded):
        log(f"seeding patch {pi + 1}/{len(windows)} done")
        y0, y1, x0, x1, cy0, cy1, cx0, cx1 = window
        core = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
        cn_img[cy0:cy1, cx0:cx1] = res.cn[core]
        pnr_img[cy0:cy1, cx0:cx1] = res.pnr[core]
        for s in res.seeds:
            bh, bw = s.footprint.shape
            ys, xs = np.nonzero(s.footprint)
            rows = (ys + s.y0 + y0) * ws + (xs + s.x0 + x0)
            cols.append(
                sp.csc_matrix(
                    (s.footprint[ys, xs], (rows, np.zeros(len(rows), dtype=np.int64))),
                    shape=(hs * ws, 1),
                )
            )
            traces.append(s.trace)
            traces_raw.append(s.trace_raw)
    cn_full = _upsample_image(cn_img, ssub, (h, w))
    pnr_full = _upsample_image(pnr_img, ssub, (h, w))
    info["n_seeds"] = len(cols)
    if not cols:
        return empty(
            f"no neurons found: no seed pixel reached min_corr={prm.min_corr:g} and "
            f"min_pnr={prm.min_pnr:g} (largest correlation {float(cn_img.max()):.2f}; "
            f"largest PNR {float(pnr_img.max()):.1f} on the binned initialisation movie, "
            f"where the threshold is {min_pnr_eff:.1f})",
            correlation_image=cn_full,
            pnr_image=pnr_full,
        )
    state = _State(
        sp.hstack(cols, format="csc"),
        np.vstack(traces),
        np.vstack(traces_raw),
        np.arange(len(cols)),
        (hs, ws),
    )

    # ---------------------------------------------------------- background on the init movie
    bgf = prm.ssub_B
    radius = max(1, int(round(prm.ring_size_factor * prm.gSiz[0] / (ssub * bgf))))
    geom_init = RingGeometry((hs, ws), bgf, radius, prm.ring_harmonics)
    mean_init = block_reduce_mean(stats.mean.astype(np.float32)[None], ssub)[0]

    def fit_ring(a_s: sp.csc_matrix, c_s: np.ndarray) -> RingModel:
        b0 = mean_init - np.asarray(a_s @ c_s.mean(axis=1)).reshape(hs, ws)
        return fit_ring_model(
            prefetched(cache.chunks(chunk)), geom_init, a_s, c_s, b0, tsub=prm.tsub_B
        )

    log("fitting ring background on the initialisation movie")
    ring = fit_ring(state.a, state.c)
    for it in range(prm.n_init_iter):
        log(f"initialisation iteration {it + 1}/{prm.n_init_iter} ({state.n} components)")
        _iterate(
            state,
            lambda: prefetched(cache.chunks(chunk)),
            t_init,
            ring,
            prm,
            g=g_init,
            p=min(p, 1),
            gsiz=tuple(v / ssub for v in prm.gSiz),
            update_a=True,
            want_r=False,
        )
        if state.n == 0:
            break
        if prm.update_background_components:
            ring = fit_ring(state.a, state.c)
    info["n_after_init"] = state.n
    if state.n == 0:
        return empty(
            "no components survived initialisation", correlation_image=cn_full, pnr_image=pnr_full
        )

    # ---------------------------------------------------------- full resolution
    a_full = _resample_footprints(state.a, (hs, ws), (h, w), ssub, up=True)
    c_full = np.repeat(state.c, tsub, axis=1)[:, :n_frames]
    full = _State(
        a_full, c_full, np.repeat(state.c_raw, tsub, axis=1)[:, :n_frames], state.ids, (h, w)
    )
    full.merged = list(state.merged)
    bg_factor = ssub * bgf

    def full_ring(current_ring: RingModel) -> RingModel:
        b0 = stats.mean.astype(np.float32) - np.asarray(full.a @ full.c.mean(axis=1)).reshape(h, w)
        return current_ring.rebased((h, w), bg_factor, b0)

    ring_full = full_ring(ring)
    r_values = np.full(full.n, np.nan)
    bg_mean = np.zeros(n_frames, np.float32)
    n_passes = prm.full_passes
    info["n_iter_effective"] = n_passes
    for it in range(n_passes):
        last = it == n_passes - 1
        log(f"full-resolution pass {it + 1}/{n_passes} ({full.n} components)")
        r, bg_mean = _iterate(
            full,
            lambda: prefetched(frames.chunks(chunk)),
            n_frames,
            ring_full,
            prm,
            g=g_full,
            p=p,
            gsiz=prm.gSiz,
            update_a=not last,
            want_r=last,
        )
        if r is not None:
            r_values = r
        if full.n == 0:
            break
        if not last:
            if prm.update_background_components:
                a_s = _resample_footprints(full.a, (h, w), (hs, ws), ssub, up=False)
                ring = fit_ring(a_s, _bin_traces(full.c, tsub, t_init))
            ring_full = full_ring(ring)
    info["merged_ids"] = full.merged
    if full.n == 0 or full.temporal is None:
        return empty(
            "no components survived the updates", correlation_image=cn_full, pnr_image=pnr_full
        )

    # ---------------------------------------------------------- quality and acceptance
    tr = full.temporal
    n_snr = max(1, int(math.ceil((prm.decay_time or 0.4) * fps)))
    snr = event_exceptionality_snr(tr.c_raw, n_snr)
    rules = Rules(
        min_snr=prm.min_SNR,
        gsig=(float(prm.gSig[0]), float(prm.gSig[1])),
        max_elongation=prm.max_footprint_elongation,
        max_size=prm.max_footprint_size,
        min_size=prm.min_footprint_size,
        max_periodic_power=prm.max_periodic_power,
        decay_time=prm.decay_time,
    )
    quality = assess(
        full.a, (h, w), tr.c_raw, snr, r_values, fps, rules, stripe_frequencies_hz=stripes
    )
    keep = quality.keep
    info["n_candidates"] = int(full.n)
    _record_rejections(info, quality, full.a, full.ids, (h, w))
    idx = np.flatnonzero(keep)
    a_out = sp.csc_matrix(full.a[:, idx], dtype=np.float32)
    centers = footprint_centers(a_out, (h, w))
    info["kept_quality"] = [describe(quality, int(k)) for k in idx]
    info["seconds"] = time.perf_counter() - t_start
    if len(idx) == 0:
        counts = ", ".join(f"{r}: {n}" for r, n in info["rejected_counts"].items() if n)
        warnings.append(
            f"all {full.n} candidate components were rejected ({counts}); see min_SNR, "
            "max_footprint_elongation, max_footprint_size, min_footprint_size, "
            "max_periodic_power"
        )
    return ExtractionResult(
        A=a_out,
        C=tr.c[idx].astype(np.float32),
        S=tr.s[idx].astype(np.float32),
        C_raw=tr.c_raw[idx].astype(np.float32),
        sn=tr.sn[idx],
        g=tr.g[idx] if tr.g.size else np.zeros((len(idx), max(p, 0))),
        baseline=tr.baseline[idx],
        centers=centers,
        snr=snr[idx],
        r_values=r_values[idx],
        ids=full.ids[idx],
        dims=(h, w),
        fps=fps,
        b0=ring_full.b0.astype(np.float32),
        background_mean=bg_mean.astype(np.float32),
        ring_weights=ring_full.weights.astype(np.float32),
        correlation_image=cn_full,
        pnr_image=pnr_full,
        contours=compute_contours(a_out, (h, w)),
        warnings=warnings,
        params=params_dict,
        info=info,
    )


def _stripe_frequencies(freqs: Sequence[float] | None, source: str | Path | None) -> list[float]:
    out = []
    for f in freqs or ():
        try:
            v = float(f)
        except (TypeError, ValueError):
            v = math.nan
        if not (math.isfinite(v) and v > 0):
            raise AceInputError(
                f"stripe_frequencies_hz must be positive frequencies in Hz, got {f!r}; it "
                "comes from the denoised_movie manifest (re-materialize denoised_movie)",
                file=source,
            )
        out.append(v)
    return out


def _record_rejections(
    info: dict[str, Any],
    quality: Quality,
    a: sp.csc_matrix,
    ids: np.ndarray,
    dims: tuple[int, int],
    max_contour_points: int = 64,
) -> None:
    """Rejected candidates with their reasons, measurements and outline (for the figure)."""
    rej = np.flatnonzero(~quality.keep)
    a_rej = sp.csc_matrix(a[:, rej])
    contours = compute_contours(a_rej, dims)
    centers = footprint_centers(a_rej, dims)
    rows = []
    for j, k in enumerate(rej):
        cont = contours[j]
        step = max(1, -(-len(cont) // max_contour_points))
        rows.append(
            {
                "id": int(ids[k]),
                "reasons": quality.reasons[k],
                "center": [round(float(v), 2) for v in centers[j]],
                **describe(quality, int(k)),
                "contour": np.round(cont[::step], 1).tolist(),
            }
        )
    info["rejected"] = rows
    info["rejected_counts"] = quality.counts()
    info["stripe_frequencies_untested_hz"] = [round(f, 4) for f in quality.periodicity.untested_hz]
    info["auto_rejected_ids"] = [r["id"] for r in rows]


def _upsample_image(img: np.ndarray, factor: int, dims: tuple[int, int]) -> np.ndarray:
    if factor == 1:
        return img.astype(np.float32)
    return np.kron(img, np.ones((factor, factor), np.float32))[: dims[0], : dims[1]]
