"""Scores of a movie chain's output against the generator's ground truth (tests and bench only).

Kept apart from the pipeline, which never knows the truth.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ace_assets.demo.miniscope_synth import SyntheticMiniscope


def band_frames(movie: SyntheticMiniscope, start: int, stop: int) -> np.ndarray:
    """The band component alone, (k, H, W) float32."""
    b = movie.bands(start, stop)
    # a copy: for tilted bands broadcast_to returns a read-only view of the full array
    return np.broadcast_to(b, (stop - start, movie.height, movie.width)).copy()


def stripe_power_kept(
    band_filter: Callable[[np.ndarray], np.ndarray],
    movie: SyntheticMiniscope,
    frames: np.ndarray | None = None,
) -> float:
    """Share of the band power a linear stripe filter lets through: ``|F(bands)|^2 / |bands|^2``.

    ``band_filter`` maps (k, H, W) float32 frames to filtered frames; it must be the linear
    operator the denoiser applied to this movie (e.g. frozen after it was fitted on it), so
    ``F(movie) - F(movie - bands) = F(bands)``. The mean of each frame is removed first:
    it is flicker, not stripes.
    """
    idx = np.arange(movie.n_frames) if frames is None else np.asarray(frames)
    kept = total = 0.0
    for t in idx[:: max(1, len(idx) // 50)]:
        b = band_frames(movie, int(t), int(t) + 1)
        b -= b.mean()
        out = np.asarray(band_filter(b), np.float64)
        out -= out.mean()
        kept += float((out**2).sum())
        total += float((b.astype(np.float64) ** 2).sum())
    return kept / total if total > 0 else 0.0


def neural_signal_lost(
    band_filter: Callable[[np.ndarray], np.ndarray], movie: SyntheticMiniscope
) -> float:
    """Share of the neurons' own signal energy a stripe filter removes (collateral damage)."""
    dense = movie.footprints
    lost = total = 0.0
    for k in range(0, len(dense), max(1, len(dense) // 20)):
        f = dense[k][None].astype(np.float32)
        out = np.asarray(band_filter(f), np.float64)
        lost += float(((out - f) ** 2).sum())
        total += float((f.astype(np.float64) ** 2).sum())
    return lost / total if total > 0 else 0.0


def rigid_errors(
    corrections: np.ndarray, truth_shifts: np.ndarray, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Per-frame error (px) of estimated rigid corrections against the generator's shifts.

    A corrector reports the correction it applies, ``-shift``, relative to its template,
    which sits at some constant offset from the scene: the median offset is removed.
    Frames in ``exclude`` (e.g. black, white or repeated frames) are left out.
    """
    c = np.asarray(corrections, np.float64).reshape(-1, 2)
    s = np.asarray(truth_shifts, np.float64).reshape(-1, 2)
    keep = np.ones(len(c), bool)
    if exclude is not None and len(exclude):
        keep[np.asarray(exclude, np.int64)] = False
    d = c[keep] + s[keep]
    d -= np.median(d, axis=0)
    return np.sqrt((d**2).sum(axis=1))


def unusable_frames(movie: SyntheticMiniscope) -> np.ndarray:
    """Frames whose content is not the scene at that time (black, white, repeated)."""
    kinds = movie.corrupt_kind
    return movie.corrupt_frames[kinds != 1]


def footprint_shape(footprint: np.ndarray) -> tuple[float, float]:
    """(major, minor) standard deviations (px) of a footprint's weight distribution."""
    img = np.clip(np.asarray(footprint, np.float64), 0, None)
    w = img.sum()
    if w <= 0:
        return 0.0, 0.0
    ys, xs = np.indices(img.shape)
    my, mx = (img * ys).sum() / w, (img * xs).sum() / w
    cyy = (img * (ys - my) ** 2).sum() / w
    cxx = (img * (xs - mx) ** 2).sum() / w
    cxy = (img * (ys - my) * (xs - mx)).sum() / w
    ev = np.linalg.eigvalsh(np.array([[cyy, cxy], [cxy, cxx]]))
    return float(np.sqrt(max(ev[1], 0))), float(np.sqrt(max(ev[0], 0)))


def stripe_shaped_sources(
    footprints: np.ndarray, unmatched: np.ndarray, neuron_radius: float, elongation: float = 2.5
) -> list[int]:
    """Unmatched sources that look like stripe segments: elongated or far longer than a cell.

    ``footprints`` is (N, H, W); ``unmatched`` indexes sources that match no true neuron.
    """
    out = []
    for k in np.asarray(unmatched, np.int64):
        major, minor = footprint_shape(footprints[k])
        if minor <= 0 or major / minor >= elongation or major >= 3 * neuron_radius:
            out.append(int(k))
    return out
